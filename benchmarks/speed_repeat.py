"""The speed verdict's own repeatability: the same A/B (a far DTR, a near cache, on loopback)
measured ``--runs`` times gives the same verdict, with the spread of its measured ratio; and
what one measurement costs in time (the speed family's share of a run).

``python -m benchmarks.speed_repeat [--runs 5] [--rounds 3] [--images 1x4MiB,8x256KiB]
[--cache-far]`` writes ``reports/bench/speed-repeat.md`` and ``.json`` and the chart of the
last run (``speed-chart.html``); every server it starts is stopped, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.speed_loopback import TEST_WAN, deployment
from dtr_cache_check.harness.speedchart import speed_chart_svg
from dtr_cache_check.probes.speed import parse_shapes
from dtr_cache_check.probes.speed_pull import measure
from dtr_cache_check.reference.wan import profile

REPORTS = Path(__file__).resolve().parent.parent / "reports" / "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", default="1x4MiB,8x256KiB,20x16KiB")
    parser.add_argument("--cache-far", action="store_true",
                        help="the cache as far as DTR (the control: never FASTER)")
    parser.add_argument("--wan", default=None, help="a WAN profile of reference.wan (default: "
                        "40 ms, 32 Mbit/s)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    shapes = parse_shapes(args.images)
    workdir = Path(tempfile.mkdtemp(prefix="speed-repeat-"))
    runs = []
    try:
        wan = profile(args.wan) if args.wan else TEST_WAN
        with deployment(workdir, cache_far=args.cache_far, wan=wan) as built:
            direct, cache = built.sides()
            for n in range(args.runs):
                began = time.monotonic()
                result = measure(shapes, args.rounds, direct=direct, cache=cache,
                                 publish=built.publish)
                seconds = time.monotonic() - began
                runs.append({"seconds": round(seconds, 2), **result.as_dict()})
                print(f"run {n + 1}: {seconds:.1f} s, {result.summary()}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    REPORTS.mkdir(parents=True, exist_ok=True)
    setup = {"wan": asdict(wan), "cache_far": args.cache_far,
             "rounds": args.rounds, "images": args.images}
    (REPORTS / "speed-repeat.json").write_text(json.dumps({"setup": setup, "runs": runs},
                                                          indent=1))
    (REPORTS / "speed-repeat.md").write_text(summary(setup, runs))
    (REPORTS / "speed-chart.html").write_text(
        "<!doctype html><meta charset='utf-8'><body>" + speed_chart_svg(runs[-1]) + "</body>")
    print(summary(setup, runs))


def summary(setup: dict, runs: list[dict]) -> str:
    """A markdown table: per shape, the verdicts of every run and the spread of the ratio."""
    lines = [f"# Speed verdict repeatability ({len(runs)} runs)", "",
             f"Setup: {json.dumps(setup)}", "",
             f"Verdicts: {', '.join(r['verdict'] for r in runs)}; seconds per measurement: "
             f"median {statistics.median(r['seconds'] for r in runs):.1f}, max "
             f"{max(r['seconds'] for r in runs):.1f}", "",
             "| shape | verdicts | ratio median | ratio min | ratio max |", "|---|---|---|---|---|"]
    for index, shape in enumerate(runs[0]["shapes"]):
        ratios = [r["shapes"][index]["speedup"] for r in runs]
        verdicts = sorted({r["shapes"][index]["verdict"] for r in runs})
        lines.append(f"| {shape['shape']} | {', '.join(verdicts)} | "
                     f"{statistics.median(ratios):.2f}x | {min(ratios):.2f}x | "
                     f"{max(ratios):.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
