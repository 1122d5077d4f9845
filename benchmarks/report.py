"""The run's results as markdown tables and JSON under reports/bench/ (git-ignored)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from .hits import HIT_SERVERS
from .targets import targets

MIB = 1024 * 1024


def _size(n: int) -> str:
    return f"{n // MIB} MiB"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def _x(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def _hits(hits: list[dict], plan: dict) -> list[str]:
    cells: dict[tuple[int, int], dict[str, dict]] = {}
    for row in hits:
        cells.setdefault((row["size"], row["clients"]), {})[row["server"]] = row
    rate = [[_size(s), n, *(f"{c[k]['mib_s']:.0f}" for k in HIT_SERVERS),
             _x(c["cache-token"]["mib_s"], c["registry"]["mib_s"]),
             _x(c["cache-token"]["mib_s"], c["nginx"]["mib_s"]),
             _x(c["cache-pull"]["mib_s"], c["registry"]["mib_s"]),
             _x(c["cache-pull"]["mib_s"], c["nginx"]["mib_s"])]
            for (s, n), c in sorted(cells.items())]
    cpu = [[_size(s), n, *(f"{c[k]['server_cpu_s_per_gib']:.2f}" for k in HIT_SERVERS)]
           for (s, n), c in sorted(cells.items())]
    tool = hits[0]["tool"] if hits else "?"
    return [f"### 1. Hit throughput over TLS (MiB/s; {tool}, best of {plan['rounds']} rounds "
            f"of {plan['duration']:g} s per cell)",
            "", "Same file, same certificate, same client. *cache, signed token*: the URL of "
            "DTR's 307 (authorized locally, the deployment's way). *cache, pull-through*: no "
            "token, so each request is first authorized by a HEAD to the upstream "
            "distribution (whose CPU is not in the CPU table).", "",
            *_table(["blob", "clients", *HIT_SERVERS.values(), "token/distr.", "token/nginx",
                     "pull/distr.", "pull/nginx"], rate),
            "Server CPU seconds per GiB served (lower is better; the client uses the rest "
            "of the 2 cores):", "",
            *_table(["blob", "clients", *HIT_SERVERS.values()], cpu)]


def _misses(rows: list[dict], concurrency: list[dict]) -> list[str]:
    out = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        mine = [r for r in rows if r["mode"] == mode]

        def med(path: str, key: str, mine: list[dict] = mine) -> float:
            return statistics.median(r[path].get(key, 0.0) for r in mine)

        far = "link" in mode  # misses.over_link: no CPU or upstream-log columns
        upstream = ("distribution over the link" if far else "distribution"
                    if mode == "pull-through" else "DTR stand-in (bob)")
        out.append([mode, upstream, _size(mine[0]["size"]), len(mine),
                    f"{med('direct', 'ttfb_s') * 1000:.0f}", f"{med('cache', 'ttfb_s') * 1000:.0f}",
                    f"{med('direct', 'total_s'):.2f}", f"{med('cache', 'total_s'):.2f}",
                    _x(med("cache", "total_s"), med("direct", "total_s")),
                    *(["n/a"] * 4 if far else [
                        f"{med('direct', 'server_cpu_s') / mine[0]['size'] * 2**30:.1f}",
                        f"{med('cache', 'server_cpu_s') / mine[0]['size'] * 2**30:.1f}",
                        mine[-1]["cache"]["upstream_gets"],
                        f"{mine[-1]['cache']['upstream_bytes']:,}"])])
    conc = [[r["clients"], r["upstream_gets"], r["upstream_heads"], f"{r['upstream_bytes']:,}",
             "yes" if r["upstream_bytes"] == r["size"] else "NO",
             f"{r['complete']}/{r['clients']}", f"{r['wall_s']:.2f}"] for r in concurrency]
    size = _size(concurrency[0]["size"]) if concurrency else "?"
    return ["### 2. Miss path: a cold blob through the cache vs straight from its upstream "
            "(1 client; medians)", "",
            *_table(["cache mode", "direct from", "blob", "runs", "TTFB direct ms",
                     "TTFB cache ms", "total direct s", "total cache s", "cache/direct",
                     "CPU-s/GiB direct server", "CPU-s/GiB cache", "upstream GETs",
                     "upstream bytes"], out),
            f"Upstream traffic for a cold {size} blob by concurrency (cache, pull-through; "
            "from the upstream distribution's log):", "",
            *_table(["clients", "upstream GETs", "upstream HEADs", "upstream bytes",
                     "= blob size", "complete", "all done s"], conc)]


def _stampede(rows: list[dict]) -> list[str]:
    names = {"cache-pull": "cache (pull-through)", "registry-proxy": "distribution proxy mode"}
    body = [[names.get(r["server"], r["server"]), r["upstream_gets"], r["upstream_heads"],
             f"{r['upstream_bytes'] / MIB:.0f} MiB", f"{r['wall_s']:.1f}",
             f"{r['complete']}/{r['clients']}", f"{r['server_cpu_s']:.1f}",
             f"{r['peak_rss_mib']:.0f}" if r["peak_rss_mib"] else "n/a"] for r in rows]
    head = f"{rows[0]['clients']} clients, one cold {_size(rows[0]['size'])} blob" if rows else ""
    return [f"### 3. Concurrent misses: {head}", "",
            *_table(["server", "upstream GETs", "upstream HEADs", "upstream bytes",
                     "all done s", "complete", "server CPU s", "peak RSS MiB"], body)]


def _distance(rows: list[dict]) -> list[str]:
    by_rtt: dict[float, dict[str, dict]] = {}
    for r in rows:
        by_rtt.setdefault(r["rtt_ms"], {})[r["mode"]] = r
    body = [[f"{rtt:g}", *(f"{m[k]['p50_ms']:.1f} / {m[k]['p95_ms']:.1f}"
                           for k in ("cache-token", "cache-pull"))]
            for rtt, m in sorted(by_rtt.items())]
    size = _size(rows[0]["size"]) if rows else "?"
    return [f"### 4. Hit latency vs upstream distance ({size} hit, sequential, ms p50 / p95)",
            "", *_table(["added RTT ms", "cache, signed token (authorized locally)",
                         "cache, pull-through (HEAD upstream per hit)"], body)]


def _memory(rows: list[dict]) -> list[str]:
    body = [[r["phase"], _size(r["size"]), r["clients"], f"{r['rss_before_mib']:.0f}",
             f"{r['peak_rss_mib']:.0f}" if r["peak_rss_mib"] else "n/a",
             f"{r['peak_sampled_mib']:.0f}", f"{r.get('peak_pss_mib', 0):.0f}",
             r.get("processes", 1), f"{r['complete']}/{r['clients']}",
             f"{r['wall_s']:.1f}"] for r in rows]
    return ["### 5. Cache memory (signed-token cache, summed over its processes)", "",
            *_table(["phase", "blob", "clients", "RSS before MiB",
                     "peak RSS MiB (sum of each process's VmHWM)", "peak RSS sampled MiB",
                     "peak PSS sampled MiB", "processes", "complete", "all done s"], body)]


def _profile(found: dict[str, Any] | None) -> list[str]:
    if not found:
        return []
    out = ["### Profile: the cache's event-loop thread (py-spy --native, share of samples)", ""]
    for name, what in (("hit", "hit, 8 clients (wrk)"), ("miss", "cold miss, 1 client")):
        summary = found.get(name, {})
        rows = [[k, f"{v:.0%}"] for k, v in summary.get("by_frame", {}).items()]
        out += [f"{what}: {summary.get('samples', 0)} samples; by kind: "
                + ", ".join(f"{k} {v:.0%}" for k, v in summary.get("by_kind", {}).items()), "",
                *_table(["running", "share"], rows)]
    return out


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    m, busy = meta["machine"], meta["busy"]
    lines = [f"## Benchmark run {meta['started']} ({meta['mode']})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux "
             f"{m['kernel']}; Python {m['python']}, aiohttp {m['aiohttp']}, uvloop "
             f"{m['uvloop']}; nginx {m['nginx']}; distribution {m['distribution']}; "
             f"{m['openssl']}; client {m['client']}. TLS as negotiated: "
             + "; ".join(f"{k} {v}" for k, v in meta["tls"].items())
             + "; one ECDSA P-256 certificate for all.",
             "",
             f"Run: {busy['wall_s']} s; processes not started by the benchmark used "
             f"{busy['other_cpu_s']} CPU-s ({busy['other_share']:.0%} of the machine; "
             f"interrupts, mostly loopback networking, another {busy['softirq_cpu_s']} "
             f"CPU-s); load average "
             f"{busy['loadavg_start'][0]:.2f} at start, {busy['loadavg_end'][0]:.2f} at end.",
             "", "### Targets", "",
             *_table(["target", "measured", "met"], targets(results)),
             *_hits(results["hits"], meta["plan"]),
             *_misses(results["misses"] + results.get("misses_far", []),
                      results["miss_concurrency"]),
             *_stampede(results["stampede"]), *_distance(results["distance"]),
             *_memory(results["memory"]), *_profile(results.get("profile"))]
    return "\n".join(lines)


def write(results: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """``bench-<stamp>.md/.json`` and ``latest.md/.json`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = results["meta"]["started"].replace(":", "").replace("-", "")
    text, data = markdown(results), json.dumps(results, indent=1, default=str)
    for name in (f"bench-{stamp}-{results['meta']['mode']}", "latest"):
        (directory / f"{name}.md").write_text(text + "\n")
        (directory / f"{name}.json").write_text(data + "\n")
    return directory / f"bench-{stamp}-{results['meta']['mode']}.md", directory / "latest.md"
