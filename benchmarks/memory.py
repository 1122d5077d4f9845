"""Memory (item 5): the cache's peak RSS while 32 clients pull one big blob, cold then warm.

The cache is several processes (server processes and the fetcher); every figure is summed over
all of them. VmHWM (the kernel's high-water mark of resident memory) is reset before each pass
by writing 5 to /proc/<pid>/clear_refs, so each pass reports its own peak (the sum of each
process's peak: an upper bound); RSS and PSS (shared pages split among the processes that
share them) are also sampled.
"""

from __future__ import annotations

import time
from typing import Any

from .blobs import Blob
from .load import Load
from .procstat import cpu_seconds, pss_kib, reset_peak_rss, status_kib, tree
from .servers import Lab

MIB = 1024 * 1024


def peak_rss(lab: Lab, blob: Blob, clients: int, log: Any,
             key: str = "cache-token") -> list[dict[str, Any]]:
    cache = lab[key]
    pid = cache.process.pid
    rows = []
    lab.drop_cached(cache, blob)
    for phase in ("miss: 1 fetch + joins", "hit"):
        url = lab.token_url(blob, cache)  # this cache's host (the registered one's token)
        reset = reset_peak_rss(pid)
        before = status_kib(pid, "VmRSS")
        cpu = cpu_seconds(pid)
        began = time.monotonic()
        running = Load({"mode": "once", "ca": str(lab.ca_file),
                        "requests": [{"url": url}] * clients}).start()
        sampled, pss = before, pss_kib(pid)
        try:
            while running.running:
                sampled = max(sampled, status_kib(pid, "VmRSS"))
                pss = max(pss, pss_kib(pid))
                time.sleep(0.05)
            got = running.result()
        finally:
            running.stop()
        results = got["results"]
        rows.append({
            "phase": phase, "server": key, "size": blob.size, "clients": clients,
            "rss_before_mib": before / 1024,
            "peak_rss_mib": status_kib(pid, "VmHWM") / 1024 if reset else None,
            "peak_sampled_mib": sampled / 1024,
            "peak_pss_mib": pss / 1024,
            "processes": len(tree(pid)),
            "wall_s": time.monotonic() - began,
            "server_cpu_s": cpu_seconds(pid) - cpu,
            "complete": sum(1 for r in results
                            if r.get("status") == 200 and r["bytes"] == blob.size),
            "x_cache": sorted({r.get("x_cache", "") for r in results}),
        })
        log(f"memory {phase:<22} {blob.label} x{clients}: peak RSS "
            f"{rows[-1]['peak_rss_mib'] or rows[-1]['peak_sampled_mib']:.0f} MiB, PSS "
            f"{pss / 1024:.0f} MiB (RSS before {before / 1024:.0f} MiB), "
            f"{rows[-1]['wall_s']:.1f} s")
    return rows
