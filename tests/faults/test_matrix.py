"""The fault matrix: every misconfiguration in testkit.faults.catalog is applied to a running
reference deployment, ``pytest checks/`` is pointed at it as at a real DTR, and:

- the expected check fails, its first line naming the hop, the cause (words of the cause
  itself, not only of the fix) and the fix;
- every check id of checks/ is the expected check of at least one fault;
- every other failing check says "consequence of <check>", never a second diagnosis.

The run also regenerates docs/troubleshooting.md (see testkit.faults.doc): the committed page
must equal what the matrix produced, so it cannot drift from what users really see.
"""

from __future__ import annotations

import os
import re

import pytest

from dtr_cache_check.reference.stack.topology import TOPOLOGIES
from dtr_cache_check.testkit.faults.bench import Outcome
from dtr_cache_check.testkit.faults.catalog import FAULTS, SPEED_CHECKS, TTL_CHECK, Fault
from dtr_cache_check.testkit.faults.doc import DOC_PATH, render
from tests.unit.checkfacts import declared

pytestmark = [pytest.mark.docker, pytest.mark.slow]
FAILED = ("failed", "error")
# The speed family's checks: measured only for the faults that judge them.
SPEED = {f.base for f in declared().values() if f.hop == "speed"}


@pytest.fixture(scope="module")
def diagnoses() -> dict[str, Outcome]:
    """fault name -> the diagnosing check's outcome, for the troubleshooting page."""
    return {}


# One bench at a time: the faults of a topology run together (a stable sort keeps the
# catalog's order within each).
ORDERED = sorted(FAULTS, key=lambda f: (TOPOLOGIES.index(f.topology), f.wan is not None,
                                        f.last_on_its_bench))
# Each fault on each cache profile it names, the distribution profile's last (one bench).
RUNS = [(fault, "reference") for fault in ORDERED] + [
    (fault, "distribution") for fault in ORDERED if "distribution" in fault.profiles]


@pytest.mark.parametrize(("fault", "profile"), RUNS,
                         ids=[f.name + ("" if p == "reference" else f"@{p}") for f, p in RUNS])
def test_fault_is_caught_once_and_explained(bench_for, fault: Fault, profile: str, diagnoses):
    bench = bench_for(fault.topology, fault.wan, profile)
    try:
        spec = fault.apply(bench)
        deselect = list(fault.deselect) + ([] if fault.slow_checks else [TTL_CHECK]) + (
            [] if fault.check in SPEED else [SPEED_CHECKS])
        outcomes = bench.run_checks(fault.name, deselect=deselect, select=fault.select,
                                    environment=fault.environment, **spec)
    finally:
        fault.revert(bench)
    found = outcomes.get(fault.check)
    assert found is not None, f"{fault.check} did not run: {sorted(outcomes)}"
    assert found.status in FAILED, f"{fault.check} {found.status} under {fault.name}"
    line = found.first_line
    assert not line.startswith("consequence of"), line
    assert line.startswith("["), f"no hop in: {line}"
    assert "Fix:" in line, f"no fix in: {line}"
    missing = [w for w in fault.words if w.lower() not in line.lower()]
    assert not missing, f"{missing} not in: {line}"
    hop = line[1:line.index("]")]
    cause = line[line.index("]") + 1:].split(" Fix: ", 1)[0].lower()
    assert any(w.lower() in cause for w in fault.words if w.lower() != hop.lower()), (
        f"none of {fault.words} names the cause in: {line}")
    separate = [f"{o.name}: {o.first_line}" for o in outcomes.values()
                if o.status in FAILED and o.name != fault.check
                and not o.first_line.startswith("consequence of")]
    assert not separate, "second diagnoses:\n" + "\n".join(separate)
    if profile == "reference":  # the troubleshooting page quotes the reference run's words
        diagnoses[fault.name] = found


def test_troubleshooting_page_is_what_the_matrix_produced(diagnoses):
    if len(diagnoses) != len(FAULTS):
        pytest.fail(f"only {len(diagnoses)} of {len(FAULTS)} faults were diagnosed: the page "
                    "is rendered from a complete matrix run only")
    page = render(FAULTS, diagnoses)
    if os.environ.get("DTR_CHECK_WRITE_DOCS") == "1":
        DOC_PATH.write_text(page)
    # The page quotes one run's numbers (speeds, byte offsets, inodes, clock readings); the
    # words of every diagnosis and fix must be the same, the numbers may differ.
    assert DOC_PATH.exists() and numbers_masked(DOC_PATH.read_text()) == numbers_masked(page), (
        "docs/troubleshooting.md differs from this matrix run: regenerate it with "
        "DTR_CHECK_WRITE_DOCS=1 python -m pytest tests/faults")


def numbers_masked(text: str) -> str:
    return re.sub(r"\d+", "#", text)


def test_every_check_can_be_made_to_fail_first():
    """Every check id in checks/ is some fault's diagnosing check (no check that cannot fail)."""
    import subprocess
    import sys

    from dtr_cache_check.testkit.local import REPO_ROOT

    listed = subprocess.run([sys.executable, "-m", "pytest", "checks/", "--collect-only", "-q",
                             "-p", "no:cacheprovider"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120).stdout
    ids = {line.split("::", 1)[1] for line in listed.splitlines() if "::" in line}
    assert len(ids) >= 50, listed[-2000:]
    uncovered = sorted(ids - {fault.check for fault in FAULTS})
    assert not uncovered, f"checks no fault makes fail: {uncovered}"


# -- the distribution profile, healthy: its bench is the matrix's last ----------------------

HIT = "test_5_first_request_misses_and_second_hits"
LOG_BASED = ("test_logs_show_the_miss_then_the_hit", "test_no_tls_errors_in_the_cache_logs",
             "test_docker_pull_is_served_by_the_cache",
             "test_containerd_pull_is_served_by_the_cache")


@pytest.fixture(scope="module")
def distribution_bench(bench_for):
    return bench_for("single", None, "distribution")


def test_a_distribution_built_cache_is_ready_only_on_what_others_observe(distribution_bench):
    """The cache shows what Mirantis's closed build shows (no X-Cache, no events of ours,
    distribution's log lines): READY, the hit proven by its storage and DTR's logs."""
    outcomes = distribution_bench.run_checks(
        "distribution-healthy", deselect=[SPEED_CHECKS, TTL_CHECK])
    failed = [f"{o.name}: {o.first_line}" for o in outcomes.values() if o.status in FAILED]
    assert not failed, failed
    hit = outcomes[HIT]
    assert hit.status == "passed" and "X-Cache" not in hit.evidence, hit.evidence
    assert "cache's storage" in hit.evidence and "DTR's logs" in hit.evidence, hit.evidence
    assert outcomes["test_no_tls_errors_in_the_cache_logs"].status == "passed"


def test_without_storage_dtr_logs_or_metrics_the_hit_is_not_proven(distribution_bench):
    outcomes = distribution_bench.run_checks(
        "distribution-unproven", drop=("--cache-host", "--dtr-logs"),
        select=(f"checks/test_06_pull_cycle.py::{HIT}",))
    hit = outcomes[HIT]
    assert hit.status == "skipped", hit
    assert all(option in hit.first_line for option in ("--cache-host", "--dtr-logs",
                                                       "--cache-metrics")), hit.first_line


def test_with_dtrs_logs_given_as_the_caches_no_log_based_check_passes(distribution_bench):
    dtr = f"docker:{distribution_bench.dep.container_name('dtr')}"
    outcomes = distribution_bench.run_checks(
        "distribution-dtr-logs", extra=["--cache-logs", dtr],
        select=tuple(f"checks/{f}::{n}" for f, n in (
            ("test_07_log_evidence.py", LOG_BASED[0]), ("test_07_log_evidence.py", LOG_BASED[1]),
            ("test_09_docker_client.py", LOG_BASED[2]),
            ("test_11_containerd_client.py", LOG_BASED[3]))))
    passed = [name for name in LOG_BASED if outcomes[name].status == "passed"]
    assert not passed, passed
