"""The cache's purpose, measured: with DTR far from the user (``--wan``) the speed check says
FASTER, with the per-shape ratios and the break-even size in the terminal, results.json and
the report's chart. (NO GAIN on the LAN, not a pass: tests/docker/test_main_job.py; SLOWER,
the cache far and DTR near: the fault matrix's ``cache-in-the-wrong-region``.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dtr_cache_check.reference.stack import down
from dtr_cache_check.testkit.local import REPO_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow]
SPEED = "checks/test_14_speed.py::test_pulls_through_the_cache_are_faster"
SHAPES = "1x16MiB,8x64KiB"   # one transfer-bound shape, one round-trip-bound


def _speed_run(tmp_path, wan: str) -> tuple[subprocess.CompletedProcess, dict, str]:
    state, out = tmp_path / f"state-{wan}", tmp_path / f"out-{wan}"
    argv = [sys.executable, "-m", "pytest", SPEED, "-q", "-p", "no:cacheprovider",
            "--wan", wan, "--state-dir", str(state), "--speed-images", SHAPES,
            "--html", str(out / "report.html"), "--junitxml", str(out / "junit.xml")]
    try:
        done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=900, env={**os.environ})
    finally:
        down(state, progress=lambda message: None)
    results = json.loads((out / "results.json").read_text())
    return done, results, (out / "report.html").read_text()


def _speed(results: dict) -> tuple[dict, dict]:
    check = next(c for c in results["checks"]
                 if c["name"] == "test_pulls_through_the_cache_are_faster")
    return check, results["verdict"]["measurements"]["speed"]


def test_far_dtr_makes_the_cache_faster_and_says_by_how_much(engine, tmp_path):
    done, results, page = _speed_run(tmp_path, "inter-region")
    check, speed = _speed(results)
    assert check["outcome"] == "passed", (check, done.stdout[-3000:])
    assert speed["verdict"] == "FASTER"
    big = next(s for s in speed["shapes"] if s["shape"] == "1x16MiB")
    assert big["verdict"] == "FASTER" and big["speedup"] >= 1.25
    assert speed["break_even_note"]
    assert "speed: FASTER: 1x16MiB" in done.stdout  # the terminal verdict block
    assert 'class="dtr-speed"' in page and "<svg" in page[page.index('class="dtr-speed"'):]
