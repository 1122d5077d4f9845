"""Hits: throughput side by side (item 1) and hit latency against upstream distance (item 4)."""

from __future__ import annotations

import statistics
from typing import Any

import httpx

from . import load, wrk
from .blobs import Blob
from .nginx import publish
from .procstat import cpu_seconds
from .servers import Lab

# Measured servers, in the order each cell runs them.
HIT_SERVERS = {
    "nginx": "nginx (TLS static file)",
    "registry": "distribution",
    "cache-token": "cache, signed token",
    "cache-pull": "cache, pull-through",
}
MIB = 1024 * 1024


def hit_urls(lab: Lab, blob: Blob) -> dict[str, str]:
    return {
        "nginx": lab["nginx"].url + publish(lab["nginx"], blob),
        "registry": lab.url("registry", blob),
        "cache-token": lab.token_url(blob),
        "cache-pull": lab.url("cache-pull", blob),
    }


def warm(lab: Lab, urls: dict[str, str]) -> None:
    """Fetch through each cache once (a miss), then check the next answer is a hit."""
    caches = [k for k in urls if k.startswith("cache")]
    load.run({"mode": "once", "ca": str(lab.ca_file),
              "requests": [{"url": urls[k]} for k in caches]})
    for key in caches:
        answer = httpx.head(urls[key], verify=lab.verify, timeout=60)
        if answer.headers.get("x-cache") != "HIT":
            raise RuntimeError(f"{key} did not keep the blob: {answer.status_code} "
                               f"{dict(answer.headers)}")


def _window(lab: Lab, key: str, url: str, clients: int, duration: int) -> dict[str, Any]:
    """One timed cell: MiB/s by the client, CPU seconds per GiB by the server."""
    pid = lab[key].process.pid
    before = cpu_seconds(pid)
    if wrk.available():
        window = wrk.run(url, clients, duration)
        rate, errors, tool = window.bytes_per_s, window.errors, window.tool
    else:
        got = load.run({"mode": "window", "url": url, "concurrency": clients,
                        "duration": duration, "ca": str(lab.ca_file)})
        rate, errors, tool = got["bytes"] / got["seconds"], 0, "python"
    cpu = cpu_seconds(pid) - before
    gib = rate * duration / 1024**3
    return {"mib_s": rate / MIB, "errors": errors, "tool": tool,
            "server_cpu_s_per_gib": cpu / gib if gib else None}


def throughput(lab: Lab, blobs: list[Blob], clients: list[int], duration: int, rounds: int,
               log: Any) -> list[dict[str, Any]]:
    """Best of ``rounds`` (server order reversed each round: other load on the machine only
    ever slows a cell down) for every (blob, clients, server)."""
    rows = []
    for blob in blobs:
        urls = hit_urls(lab, blob)  # fresh tokens: they live 300 s
        warm(lab, urls)
        for n in clients:
            runs: dict[str, list[dict[str, Any]]] = {key: [] for key in HIT_SERVERS}
            for round_ in range(rounds):
                for key in list(HIT_SERVERS)[:: -1 if round_ % 2 else 1]:
                    runs[key].append(_window(lab, key, urls[key], n, duration))
            for key, cells in runs.items():
                best = max(cells, key=lambda c: c["mib_s"])
                rows.append({"size": blob.size, "clients": n, "server": key, **best,
                             "rounds_mib_s": [round(c["mib_s"], 1) for c in cells]})
                log(f"hit {blob.label:>7} x{n:<2} {HIT_SERVERS[key]:<24} "
                    + " ".join(f"{c['mib_s']:5.0f}" for c in cells) + " MiB/s")
    return rows


def distance(lab: Lab, blob: Blob, rtts_ms: list[float], requests: int,
             log: Any) -> list[dict[str, Any]]:
    """Hit latency with a round trip added between a cache and its upstream (both modes)."""
    token_line = lab.delay_line(lab["dtr"])
    pull_line = lab.delay_line(lab["registry"])
    far_token = lab.start_cache("cache-token-far", token_line.url)
    lab.start_cache("cache-pull-far", pull_line.url)
    urls = {"cache-token-far": lab.token_url(blob, far_token),
            "cache-pull-far": lab.url("cache-pull-far", blob)}
    warm(lab, urls)
    rows = []
    for rtt in rtts_ms:
        token_line.one_way = pull_line.one_way = rtt / 2000
        for key, url in urls.items():
            got = load.run({"mode": "sequence", "ca": str(lab.ca_file),
                            "requests": [{"url": url}] * (requests + 1)})["results"][1:]
            bad = [r for r in got if r.get("status") != 200 or r.get("x_cache") != "HIT"]
            times = sorted(r["total_s"] * 1000 for r in got)
            rows.append({"mode": key.removesuffix("-far"), "rtt_ms": rtt, "size": blob.size,
                         "p50_ms": statistics.median(times),
                         "p95_ms": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
                         "requests": len(got), "not_hits": len(bad)})
            log(f"distance rtt {rtt:>5.0f} ms {key:<16} p50 {rows[-1]['p50_ms']:7.1f} ms")
    return rows
