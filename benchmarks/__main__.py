"""``python -m benchmarks [--quick]``: the reference cache against distribution and nginx.

Starts every server on loopback in a temp dir, runs the five measurements of the issue, writes
``reports/bench/latest.md`` and ``.json`` (and a timestamped copy), stops every process it
started (by pid) and deletes the temp dir, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import hits, machine, memory, misses, profile, report
from .servers import open_lab

MIB = 1024 * 1024
REPORTS = Path(__file__).resolve().parent.parent / "reports" / "bench"


@dataclass(frozen=True)
class Plan:
    hit_sizes_mib: list[int]
    clients: list[int] = field(default_factory=lambda: [1, 8, 32])
    duration: int = 2
    rounds: int = 2
    miss_mib: int = 64
    miss_repeats: int = 3
    link_mib_s: float = 32.0
    concurrency_clients: list[int] = field(default_factory=lambda: [1, 8, 32])
    stampede_mib: int = 256
    stampede_clients: int = 32
    rtts_ms: list[float] = field(default_factory=lambda: [0, 20, 100])
    latency_requests: int = 20
    memory_mib: int = 512
    memory_clients: int = 32


FULL = Plan(hit_sizes_mib=[1, 64, 512])
QUICK = Plan(hit_sizes_mib=[1, 64], duration=1, miss_repeats=1, concurrency_clients=[1, 8],
             stampede_mib=32, rtts_ms=[0, 100], latency_requests=10, memory_mib=32)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(plan: Plan, mode: str, workdir: Path, profile_to: Path | None) -> dict[str, Any]:
    busy = machine.Busy()
    results: dict[str, Any] = {"meta": {
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "mode": mode,
        "plan": asdict(plan), "machine": machine.describe()}}
    with open_lab(workdir) as lab:
        log(f"servers up in {time.monotonic() - busy.began:.1f} s; seeding blobs")
        by_size = {mib: lab.seed(mib * MIB) for mib in plan.hit_sizes_mib}
        miss_blob, conc_blob = lab.seed(plan.miss_mib * MIB), lab.seed(plan.miss_mib * MIB)
        stampede_blob = lab.seed(plan.stampede_mib * MIB)
        memory_blob = by_size.get(plan.memory_mib) or lab.seed(plan.memory_mib * MIB)
        results["meta"]["tls"] = {name: machine.tls_session(lab[k].url, lab.verify) for name, k
                                  in (("nginx", "nginx"), ("distribution", "registry"),
                                      ("cache", "cache-token"))}
        results["hits"] = hits.throughput(lab, list(by_size.values()), plan.clients,
                                          plan.duration, plan.rounds, log)
        results["misses"] = misses.miss_path(lab, miss_blob, plan.miss_repeats, log)
        results["misses_far"] = misses.over_link(lab, miss_blob, plan.link_mib_s,
                                                 plan.miss_repeats, log)
        results["miss_concurrency"] = misses.concurrency(lab, conc_blob,
                                                         plan.concurrency_clients, log)
        results["stampede"] = misses.against_proxy(lab, stampede_blob, plan.stampede_clients,
                                                   log)
        results["memory"] = memory.peak_rss(lab, memory_blob, plan.memory_clients, log)
        results["distance"] = hits.distance(lab, by_size[min(by_size)], plan.rtts_ms,
                                            plan.latency_requests, log)
        if profile_to is not None:
            results["profile"] = profile.profile(lab, lab.seed(256 * MIB), profile_to, log)
    results["meta"]["busy"] = busy.stop()
    return results


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="smaller blobs (no 512 MiB), shorter cells: under 2 minutes")
    parser.add_argument("--out", type=Path, default=REPORTS, help="report directory")
    parser.add_argument("--profile", action="store_true",
                        help="also sample the cache with py-spy (a hit run and a cold miss)")
    args = parser.parse_args(argv)
    if args.profile and not profile.available():
        parser.error("--profile needs py-spy and wrk (pip install py-spy; apt-get install wrk)")
    signal.signal(signal.SIGTERM, _terminate)
    plan, mode = (QUICK, "quick") if args.quick else (FULL, "full")
    workdir = Path(tempfile.mkdtemp(prefix="dtr-bench-"))
    began = time.monotonic()
    try:
        results = run(plan, mode, workdir, args.out / "profile" if args.profile else None)
    except KeyboardInterrupt:
        log("interrupted: everything started was stopped")
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["meta"]["duration_s"] = round(time.monotonic() - began, 1)
    stamped, latest = report.write(results, args.out)
    print(latest.read_text())
    log(f"{mode} run: {results['meta']['duration_s']} s; report {stamped} and {latest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
