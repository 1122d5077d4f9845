"""The issue's targets, checked against a run's results (reported, never asserted)."""

from __future__ import annotations

import statistics
from typing import Any

FLAT_MS = 5.0          # "flat": p50 grows by less than this (plus 10 % of the no-delay p50)
RSS_LIMIT_MIB = 150.0


def _ok(flag: bool | None) -> str:
    return "n/a" if flag is None else ("yes" if flag else "**no**")


def _cells(hits: list[dict], cache: str, peer: str) -> dict[str, float]:
    """cache/peer throughput ratio by cell label (``64 MiB x32``)."""
    cells: dict[tuple[int, int], dict[str, float]] = {}
    for row in hits:
        cells.setdefault((row["size"], row["clients"]), {})[row["server"]] = row["mib_s"]
    return {f"{size // 2**20} MiB x{clients}": round(c[cache] / c[peer], 2)
            for (size, clients), c in sorted(cells.items()) if c.get(peer) and c.get(cache)}


def targets(results: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    hits = results["hits"]
    # Issue #19's goals: the median cell at least even with distribution, 0.9x nginx.
    for peer, goal, name in (("registry", 1.0, "distribution"), ("nginx", 0.9, "nginx")):
        cells = _cells(hits, "cache-token", peer)
        if not cells:
            continue
        where = min(cells, key=lambda k: cells[k])
        below = [k for k, v in cells.items() if v < goal]
        median = statistics.median(cells.values())
        rows.append([f"hit throughput median >= {goal}x {name} (signed token)",
                     f"median {median:.2f}x, worst {cells[where]:.2f}x ({where}); "
                     f"{len(below)} of {len(cells)} cells below", _ok(median >= goal)])
    stampede = {r["server"]: r for r in results["stampede"]}
    cache, proxy = stampede.get("cache-pull"), stampede.get("registry-proxy")
    if cache:
        rows.append([f"one upstream fetch for {cache['clients']} concurrent misses",
                     f"cache {cache['upstream_gets']} GET(s), "
                     f"{cache['upstream_bytes'] / 2**20:.0f} MiB; distribution proxy "
                     f"{proxy['upstream_gets'] if proxy else '?'} GETs, "
                     f"{proxy['upstream_bytes'] / 2**20 if proxy else 0:.0f} MiB",
                     _ok(cache["upstream_gets"] == 1 and cache["upstream_bytes"] == cache["size"])])
    misses = results["misses"] + results.get("misses_far", [])
    for mode in dict.fromkeys(r["mode"] for r in misses):
        mine = [r for r in misses if r["mode"] == mode]
        ratio = round(statistics.median(r["cache"]["total_s"] for r in mine)
                      / statistics.median(r["direct"]["total_s"] for r in mine), 2)
        rows.append([f"miss <= 1.2x a direct pull ({mode})", f"{ratio:.2f}x", _ok(ratio <= 1.2)])
    distance = [r for r in results["distance"] if r["mode"] == "cache-token"]
    if distance:
        base = min(distance, key=lambda r: r["rtt_ms"])
        far = max(distance, key=lambda r: r["rtt_ms"])
        grew = far["p50_ms"] - base["p50_ms"]
        pull = {r["rtt_ms"]: r["p50_ms"] for r in results["distance"]
                if r["mode"] == "cache-pull"}
        rows.append([f"hit latency flat with {far['rtt_ms']:g} ms added upstream RTT",
                     f"signed token p50 {base['p50_ms']:.1f} -> {far['p50_ms']:.1f} ms; "
                     f"pull-through {pull.get(base['rtt_ms'], 0):.1f} -> "
                     f"{pull.get(far['rtt_ms'], 0):.1f} ms",
                     _ok(grew < FLAT_MS + 0.1 * base["p50_ms"])])
    memory = results["memory"]
    if memory:
        size = memory[0]["size"] // 2**20
        rss = max(r["peak_rss_mib"] or r["peak_sampled_mib"] for r in memory)
        pss = max(r.get("peak_pss_mib") or 0.0 for r in memory)
        processes = max(r.get("processes", 1) for r in memory)
        # With one process RSS is the measure. With several, summed RSS counts every shared
        # page (code, libraries: forked) once per process; PSS, which splits shared pages
        # among their sharers, is what the cache costs the machine, and is what is judged.
        judged = rss if processes == 1 or not pss else pss
        rows.append([f"peak memory < {RSS_LIMIT_MIB:.0f} MiB ({memory[0]['clients']} clients, "
                     f"{size} MiB blob)", f"PSS {pss:.0f} MiB over {processes} processes "
                     f"(their RSS summed: {rss:.0f} MiB)" if processes > 1 else
                     f"RSS {rss:.0f} MiB", _ok(judged < RSS_LIMIT_MIB)])
    return rows
