"""Misses: first byte and total time through a cache vs straight from its upstream (item 2),
upstream traffic at any concurrency, and 32 clients on one cold blob vs distribution's proxy
mode (item 3). Upstream fetches and bytes come from the upstream distribution's own log."""

from __future__ import annotations

import time
from typing import Any

from dtr_cache_check.probes.logs import distribution_requests
from dtr_cache_check.testkit.local import LocalServer

from . import load
from .blobs import Blob, blob_path
from .procstat import cpu_seconds, reset_peak_rss, status_kib
from .servers import REPO, Lab

MIB = 1024 * 1024


class UpstreamLog:
    """Blob requests an upstream distribution answered since this mark (its log)."""

    def __init__(self, registry: LocalServer, blob: Blob):
        self.registry, self.path = registry, blob_path(REPO, blob)
        self.mark = len(registry.log_lines())

    def requests(self, method: str) -> list:
        return distribution_requests(self.registry.log_lines()[self.mark:], method, self.path)

    def settle(self, timeout: float = 5.0) -> dict[str, int]:
        """GETs, HEADs and GET bytes, once the count stops changing (logs trail responses)."""
        last, deadline = -1, time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = len(self.requests("GET")) + len(self.requests("HEAD"))
            if count == last and count:
                break
            last = count
            time.sleep(0.3)
        gets = self.requests("GET")
        return {"upstream_gets": len(gets), "upstream_heads": len(self.requests("HEAD")),
                "upstream_bytes": sum(int(g.get("http.response.written", 0)) for g in gets)}


def _once(lab: Lab, url: str, clients: int = 1,
          headers: dict[str, str] | None = None) -> dict[str, Any]:
    return load.run({"mode": "once", "ca": str(lab.ca_file),
                     "requests": [{"url": url, "headers": headers or {}}] * clients})


def miss_path(lab: Lab, blob: Blob, repeats: int, log: Any) -> list[dict[str, Any]]:
    """One client, a cold blob: through each cache and straight from that cache's upstream."""
    modes = [  # (mode, cache, url through it, direct server, its url, headers, upstream log)
        ("pull-through", "cache-pull", lambda: lab.url("cache-pull", blob), "registry",
         lab.url("registry", blob), {}, "registry"),
        ("signed token", "cache-token", lambda: lab.token_url(blob), "dtr",
         lab.url("dtr", blob), {"Authorization": f"Bearer {lab.bearer('bob')}"},
         "registry-http"),
    ]
    rows = []
    for mode, cache, through, direct_server, direct, headers, upstream in modes:
        for attempt in range(repeats):
            lab.drop_cached(lab[cache], blob)
            order = ["direct", "cache"] if attempt % 2 == 0 else ["cache", "direct"]
            got: dict[str, Any] = {}
            for path in order:
                mark = UpstreamLog(lab[upstream], blob)
                front = lab[cache if path == "cache" else direct_server].process.pid
                cpu = cpu_seconds(front)
                if path == "cache":
                    result = _once(lab, through())["results"][0]
                else:
                    result = _once(lab, direct, headers=headers)["results"][0]
                got[path] = {**result, "server_cpu_s": cpu_seconds(front) - cpu,
                             **mark.settle()}
            if got["cache"].get("x_cache") != "MISS" or got["cache"]["bytes"] != blob.size:
                raise RuntimeError(f"{mode}: not a full miss: {got['cache']}")
            rows.append({"mode": mode, "size": blob.size, "attempt": attempt,
                         "direct": got["direct"], "cache": got["cache"]})
            log(f"miss {mode:<13} {blob.label}: ttfb {got['direct']['ttfb_s'] * 1000:.0f} -> "
                f"{got['cache']['ttfb_s'] * 1000:.0f} ms, total {got['direct']['total_s']:.2f}"
                f" -> {got['cache']['total_s']:.2f} s")
    return rows


def over_link(lab: Lab, blob: Blob, rate_mib: float, repeats: int,
              log: Any) -> list[dict[str, Any]]:
    """A miss when the upstream is far, as in a remote region: a cold blob through the cache
    and pulled directly, both over the same link limited to ``rate_mib`` MiB/s."""
    link = lab.slow_link(lab["registry"], rate_mib * MIB)
    url = f"https://127.0.0.1:{link.port}"
    cache = lab.servers.get("cache-link") or lab.start_cache("cache-link", url)
    rows = []
    for attempt in range(repeats):
        lab.drop_cached(cache, blob)
        got: dict[str, Any] = {}
        for path in (["direct", "cache"] if attempt % 2 == 0 else ["cache", "direct"]):
            target = lab.url("cache-link", blob) if path == "cache" else url + blob_path(REPO, blob)
            got[path] = _once(lab, target)["results"][0]
        if got["cache"].get("x_cache") != "MISS" or got["cache"]["bytes"] != blob.size:
            raise RuntimeError(f"over the link: not a full miss: {got['cache']}")
        rows.append({"mode": f"pull-through, {rate_mib:g} MiB/s upstream link", "size": blob.size,
                     "rate_mib_s": rate_mib, "attempt": attempt, **got})
        log(f"miss over a {rate_mib:g} MiB/s link {blob.label}: ttfb "
            f"{got['direct']['ttfb_s'] * 1000:.0f} -> {got['cache']['ttfb_s'] * 1000:.0f} ms, "
            f"total {got['direct']['total_s']:.2f} -> {got['cache']['total_s']:.2f} s")
    return rows


def stampede(lab: Lab, key: str, blob: Blob, clients: int, log: Any) -> dict[str, Any]:
    """``clients`` ask ``key`` at once for ``blob``, cold there; what reached the upstream."""
    server = lab[key]
    if key.startswith("cache"):
        lab.drop_cached(server, blob)
    mark = UpstreamLog(lab["registry"], blob)
    cpu = cpu_seconds(server.process.pid)
    peak_reset = reset_peak_rss(server.process.pid)
    got = _once(lab, lab.url(key, blob), clients)
    results = got["results"]
    complete = sum(1 for r in results if r.get("status") == 200 and r["bytes"] == blob.size)
    row = {"server": key, "size": blob.size, "clients": clients, "complete": complete,
           "wall_s": got["wall_s"], "max_ttfb_s": max(r.get("ttfb_s", 0) for r in results),
           "server_cpu_s": cpu_seconds(server.process.pid) - cpu,
           "peak_rss_mib": status_kib(server.process.pid, "VmHWM") / 1024
           if peak_reset else None,
           "errors": sorted({r["error"] for r in results if "error" in r})[:3],
           **mark.settle()}
    log(f"stampede {key:<15} {blob.label} x{clients}: {row['upstream_gets']} upstream GETs, "
        f"{row['upstream_bytes'] / MIB:.0f} MiB up, {complete}/{clients} complete in "
        f"{row['wall_s']:.1f} s")
    return row


def concurrency(lab: Lab, blob: Blob, clients: list[int], log: Any) -> list[dict[str, Any]]:
    """Upstream bytes for a cold blob at each client count, through the pull-through cache."""
    return [stampede(lab, "cache-pull", blob, n, log) for n in clients]


def against_proxy(lab: Lab, blob: Blob, clients: int, log: Any) -> list[dict[str, Any]]:
    """Item 3: the cache and distribution's pull-through mode, same cold blob, same upstream."""
    if "registry-proxy" not in lab.servers:
        lab.start_proxy_registry()
    return [stampede(lab, key, blob, clients, log) for key in ("cache-pull", "registry-proxy")]
