"""Prometheus counters for the cache, exposed at ``/metrics``: the cache's own
(``dtrcache_*``), and distribution's pull-through counters (``registry_proxy_*``, by type).

distribution's counters mean what registry/proxy/proxymetrics.go makes them mean: a request
is a hit when it is served from local storage, a miss when it is served from the upstream
(``requests`` = ``hits`` + ``misses``); ``pushed_bytes`` adds the blob's size per request,
``pulled_bytes`` what was fetched from the upstream. Where this cache differs from
distribution's proxy: a request that joins a fetch in flight is a miss that pulls nothing (one
fetch serves it), where distribution fetches the blob again for it.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from .multiproc import METRICS_ENV  # set when the cache runs as several processes

PROXY_TYPES = ("blob", "manifest")
PROXY_COUNTERS = {
    "requests": "The number of total incoming proxy request received",
    "hits": "The number of total proxy request hits",
    "misses": "The number of total proxy request misses",
    "pulled_bytes": "The size of total bytes pulled from the upstream",
    "pushed_bytes": "The size of total bytes pushed to the client",
}


class Metrics:
    """The cache's counters, in a registry of their own (one per cache instance)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        disable_created_metrics()  # *_created gauges only add noise to a scrape
        self.registry = CollectorRegistry()
        r = self.registry
        self.hits = Counter("dtrcache_blob_hits", "Blob requests served from local storage",
                            registry=r)
        self.misses = Counter("dtrcache_blob_misses", "Blob requests that started an upstream "
                              "fetch", registry=r)
        self.joins = Counter("dtrcache_blob_joins", "Blob requests that joined an in-flight "
                             "fetch", registry=r)
        self.upstream_bytes = Counter("dtrcache_upstream_bytes", "Blob bytes read from "
                                      "upstreams", registry=r)
        self.served_bytes = Counter("dtrcache_served_bytes", "Blob bytes sent to clients",
                                    registry=r)
        self.expired = Counter("dtrcache_blob_expired", "Blobs removed after blobttl",
                               registry=r)
        self.errors = Counter("dtrcache_errors", "Errors by class", ["kind"], registry=r)
        self.inflight = Gauge("dtrcache_fills_in_flight", "Upstream fetches running",
                              registry=r, multiprocess_mode="livesum")
        # distribution's names and help texts (metrics/prometheus.go: namespace "registry",
        # subsystem "proxy"; prometheus_client appends _total as docker/go-metrics does).
        labelled = {name: Counter(f"registry_proxy_{name}", text, ["type"], registry=r)
                    for name, text in PROXY_COUNTERS.items()}
        # Every series present from the start, at 0 (initPrometheusMetrics): a scrape before
        # the first pull reads 0, not an absent series.
        self._proxy = {(name, kind): counter.labels(type=kind)
                       for name, counter in labelled.items() for kind in PROXY_TYPES}

    def proxy_served(self, kind: str, size: int, hit: bool) -> None:
        """A ``kind`` ("blob", "manifest") request answered: from local storage (``hit``) or
        from the upstream; ``size``: the blob's or manifest's size."""
        self._proxy["requests", kind].inc()
        self._proxy["hits" if hit else "misses", kind].inc()
        self._proxy["pushed_bytes", kind].inc(size)

    def proxy_pulled(self, kind: str, size: int) -> None:
        """``size`` bytes of a ``kind`` fetched from the upstream (a fill, or a manifest)."""
        self._proxy["pulled_bytes", kind].inc(size)

    def _exposed(self) -> CollectorRegistry:
        """This process's registry; with several processes, the sum over all of them."""
        if not os.environ.get(METRICS_ENV):
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry

    def render(self) -> bytes:
        return generate_latest(self._exposed())

    def value(self, name: str) -> float:
        """The current value of an unlabelled metric, over every process."""
        for family in self._exposed().collect():
            for sample in family.samples:
                if sample.name == name:
                    return sample.value
        return 0.0
