"""distribution's Prometheus counters for a pull-through cache, as its source names them
(registry/proxy/proxymetrics.go, metrics/prometheus.go; docker/go-metrics appends ``_total``
to a counter), served on the debug listener (``http.debug.addr``, ``prometheus.path``), and
where distribution stores a blob (registry/storage/paths.go: blobDataPathSpec)."""

from __future__ import annotations

# Each counter carries a label type="blob" or type="manifest".
REQUESTS = "registry_proxy_requests_total"
HITS = "registry_proxy_hits_total"
MISSES = "registry_proxy_misses_total"
PULLED_BYTES = "registry_proxy_pulled_bytes_total"
PUSHED_BYTES = "registry_proxy_pushed_bytes_total"
BLOB = {"type": "blob"}


def blob_data_path(root: str, digest: str) -> str:
    """``<root>/docker/registry/v2/blobs/<algorithm>/<first two hex>/<hex>/data``."""
    algorithm, _, hexdigest = digest.partition(":")
    return (f"{root.rstrip('/')}/docker/registry/v2/blobs/{algorithm}/{hexdigest[:2]}/"
            f"{hexdigest}/data")
