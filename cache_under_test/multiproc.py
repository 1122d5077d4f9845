"""What the cache's processes share before any of them imports prometheus_client: the name of
prometheus_client's multiprocess directory variable (a leaf module, so that metrics and
processes both read it without importing each other)."""

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode
