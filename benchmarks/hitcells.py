"""``python -m benchmarks.hitcells``: hit cells alone, repeated, for A/B work on the hit path.

The full benchmark's hit table takes the best of 2 short rounds per cell; on a 2-core machine
shared with other work that is too noisy to see a 10% change. This runs only the hit cells
asked for (``--sizes 1,64 --clients 1,8``), each ``--rounds`` times in alternating server
order, and prints per cell the median server CPU seconds per GiB (the figure that does not
depend on the machine's other load) and the median MiB/s with the cache's ratio to nginx and
distribution measured in the same rounds. ``--perf SECONDS``: also ``perf record`` the
signed-token cache's processes during one extra 1-client run of the largest size, for
``perf report`` (``perf-hit.data`` in ``--out``, git-ignored). ``--baseline DIR``: also a
signed-token cache run from the ``cache_under_test`` in DIR (e.g. a ``git worktree`` of the
commit before a change), as server ``cache-base``: before and after measured in the same rounds.
``--memory MIB``: then the memory measurement of the full benchmark (32 clients, a cold then a
warm blob of MIB) for each signed-token cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dtr_cache_check.testkit.local import start_cache

from . import hits, memory, wrk
from .__main__ import REPORTS, log
from .servers import Lab, open_lab

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> list[int]:
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += [int(child), *_children(int(child))]
    return found


def _baseline(lab: Lab, code: Path) -> None:
    """A signed-token cache running the ``cache_under_test`` found in ``code``."""
    lab.add("cache-base", start_cache(
        lab.workdir, lab.leaf, upstreams=[lab["dtr"].url], cas=[lab.ca_file],
        name="cache-base", env={"PYTHONPATH": f"{code}{os.pathsep}{ROOT}"}), path="/health")


def _urls(lab: Lab, blob: Any, servers: list[str]) -> dict[str, str]:
    urls = hits.hit_urls(lab, blob)
    if "cache-base" in servers:
        urls["cache-base"] = lab.token_url(blob, lab["cache-base"])
    return {k: urls[k] for k in servers}


def cells(sizes: list[int], clients: list[int], servers: list[str], rounds: int,
          duration: int, perf: int, out: Path,
          baseline: Path | None = None, memory_mib: int = 0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="dtr-hitcells-"))
    try:
        _measure(workdir, sizes, clients, servers, rounds, duration, perf, out, rows,
                 baseline, memory_mib)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def _measure(workdir: Path, sizes: list[int], clients: list[int], servers: list[str],
             rounds: int, duration: int, perf: int, out: Path,
             rows: list[dict[str, Any]], baseline: Path | None, memory_mib: int) -> None:
    with open_lab(workdir) as lab:
        if baseline is not None:
            _baseline(lab, baseline)
        for mib in sizes:
            blob = lab.seed(mib * MIB)
            urls = _urls(lab, blob, servers)
            hits.warm(lab, urls)
            for n in clients:
                runs: dict[str, list[dict[str, Any]]] = {k: [] for k in servers}
                for round_ in range(rounds):
                    for key in servers[:: -1 if round_ % 2 else 1]:
                        runs[key].append(hits._window(lab, key, urls[key], n, duration))
                row: dict[str, Any] = {"mib": mib, "clients": n}
                for key, got in runs.items():
                    row[key] = {"mib_s": statistics.median(c["mib_s"] for c in got),
                                "cpu_s_per_gib": statistics.median(
                                    c["server_cpu_s_per_gib"] for c in got),
                                "errors": sum(c["errors"] for c in got)}
                rows.append(row)
                log(_line(row, servers))
        if memory_mib:
            blob = lab.seed(memory_mib * MIB)
            for key in [k for k in servers if k in ("cache-token", "cache-base")]:
                rows.append({"memory": key, "rows": memory.peak_rss(lab, blob, 32, log, key)})
        if perf:
            pid = lab["cache-token"].process.pid
            pids = ",".join(str(p) for p in [pid, *_children(pid)])
            data = out / "perf-hit.data"
            out.mkdir(parents=True, exist_ok=True)
            recorder = subprocess.Popen(["perf", "record", "-g", "-F", "999", "-p", pids,
                                         "-o", str(data), "--", "sleep", str(perf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            wrk.run(urls["cache-token"], 1, perf - 1)
            recorder.wait(60)
            log(f"perf data: {data}")


def _line(row: dict[str, Any], servers: list[str]) -> str:
    text = f"{row['mib']:>4} MiB x{row['clients']:<2}"
    for key in servers:
        cell = row[key]
        text += f" | {key} {cell['mib_s']:6.0f} MiB/s {cell['cpu_s_per_gib']:.3f} s/GiB"
    for peer in ("nginx", "registry", "cache-base"):
        if peer in row and "cache-token" in row:
            text += f" | token/{peer} {row['cache-token']['mib_s'] / row[peer]['mib_s']:.2f}x"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hitcells", description=__doc__)
    parser.add_argument("--sizes", default="1,64", help="blob sizes, MiB")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--servers", default="nginx,registry,cache-token")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=2, help="seconds per run")
    parser.add_argument("--memory", type=int, default=0, help="blob MiB for the memory run")
    parser.add_argument("--perf", type=int, default=0, help="seconds of perf record")
    parser.add_argument("--out", type=Path, default=REPORTS)
    parser.add_argument("--baseline", type=Path, help="a tree whose cache_under_test is the "
                        "before (server cache-base)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not wrk.available():
        parser.error("needs wrk")
    if args.perf and shutil.which("perf") is None:
        parser.error("--perf needs perf")
    servers = args.servers.split(",")
    if args.baseline is not None and "cache-base" not in servers:
        servers.append("cache-base")
    rows = cells([int(s) for s in args.sizes.split(",")],
                 [int(c) for c in args.clients.split(",")], servers, args.rounds,
                 args.duration, args.perf, args.out, args.baseline, args.memory)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hitcells.json").write_text(json.dumps(rows, indent=1))
    for row in rows:
        print(_line(row, servers) if "memory" not in row else
              f"memory {row['memory']}: " + "; ".join(
                  f"{r['phase']} peak PSS {r['peak_pss_mib']:.0f} MiB, RSS {r['peak_rss_mib']:.0f}"
                  f" MiB, {r['complete']}/{r['clients']} complete" for r in row["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
