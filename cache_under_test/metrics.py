"""Prometheus counters for the cache, exposed at ``/metrics``."""

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
