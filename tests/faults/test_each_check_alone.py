"""Green is proof: against one healthy deployment, every check passes with evidence, also when
it runs alone (it performs the steps it stands on); with its evidence taken away, a check is
skipped or fails, never passes."""

from __future__ import annotations

import shutil

import pytest

from dtr_cache_check.testkit.faults.bench import Outcome
from dtr_cache_check.testkit.faults.catalog import SPEED_CHECKS, TTL_CHECK
from tests.unit.checkfacts import declared

pytestmark = [pytest.mark.docker, pytest.mark.slow]
# Bridge mode runs no swarm: the placement rule cannot be evaluated against nodes (it is in
# the swarm-mode main job, tests/docker/test_main_job.py).
# The topologies' own checks skip on a single cache ("not a chain", "not HA", saying how to
# give the shape); each topology's are proven on its bench (the last tests of this module:
# asking for another bench takes the single one down).
# From the checks' own shape markers: each topology's checks, and the placement rule (swarm).
SHAPED = {f.base: f.shape for f in declared().values() if f.shape}
TOPOLOGY_CHECKS = {shape: {n for n, s in SHAPED.items() if s == shape} for shape in ("chain", "ha")}
# On the bench's LAN the cache cannot be faster than DTR (no gain to observe) and no rehearsal
# is asked for: tests/docker/test_speed_wan.py proves the speed check green under a WAN.
SPEED = {f.base for f in declared().values() if f.hop == "speed"}
NOT_OBSERVABLE_ON_THE_BENCH = set(SHAPED) | SPEED
LOG_CHECKS = {"test_logs_show_the_miss_then_the_hit", "test_no_tls_errors_in_the_cache_logs",
              "test_docker_pull_is_served_by_the_cache",
              "test_containerd_pull_is_served_by_the_cache"}
STACK_RULES = {f.base for f in declared().values() if f.hop == "docker-stack.yml"} | {
    "test_cas_files_are_mounted", "test_tls_files_are_mounted"}  # config rules on the stack


@pytest.fixture(scope="module")
def healthy(bench) -> dict[str, Outcome]:
    return bench.run_checks("healthy-everything", extra=["--ttl-wait", "40"])


def test_the_healthy_run_passes_every_check_with_evidence(healthy):
    failed = [f"{o.name}: {o.first_line}" for o in healthy.values() if o.status != "passed"
              and o.name not in NOT_OBSERVABLE_ON_THE_BENCH]
    assert not failed, "\n".join(failed)
    skipped = {o.name for o in healthy.values() if o.status == "skipped"}
    # The speed check passes only on a gain it measured (the stand-in's Python front can lose
    # to the cache even on the bench's LAN): then its evidence says FASTER.
    gain = healthy["test_pulls_through_the_cache_are_faster"]
    assert gain.status == "skipped" or "FASTER" in gain.evidence, (gain.status, gain.evidence)
    assert skipped | {gain.name} == NOT_OBSERVABLE_ON_THE_BENCH | {gain.name}, skipped
    unsaid = [o.name for o in healthy.values() if o.name in TOPOLOGY_CHECKS["ha"]
              and "--cache-replicas" not in o.first_line]
    assert not unsaid, f"skipped without saying how to give the replicas: {unsaid}"
    assert healthy["test_expired_copy_is_fetched_again"].status == "passed"
    silent = [o.name for o in healthy.values() if o.status == "passed" and not o.evidence]
    assert not silent, f"passed without evidence: {silent}"


def test_every_check_alone_passes_with_positive_evidence(bench, healthy):
    problems = []
    for outcome in sorted(healthy.values(), key=lambda o: o.nodeid):
        if outcome.name in NOT_OBSERVABLE_ON_THE_BENCH:
            continue
        alone = bench.run_checks("alone", select=(outcome.nodeid,),
                                 extra=["--ttl-wait", "40"])
        got = alone.get(outcome.name)
        if got is None or got.status != "passed" or not got.evidence:
            problems.append(f"{outcome.nodeid}: {got.status if got else 'not run'} "
                            f"{got.first_line if got else sorted(alone)} "
                            f"(evidence: {got.evidence if got else ''!r})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("case", "drop", "extra"), [
    ("no-logs", ("--cache-logs", "--dtr-logs"), []),
    ("empty-logs", ("--cache-logs", "--dtr-logs"), ["--cache-logs", "file:/dev/null"]),
])
def test_without_log_evidence_the_log_checks_do_not_pass(bench, case, drop, extra):
    # The TTL and speed checks read no cache log (their wait and measurements cost 30 s here)
    outcomes = bench.run_checks(case, drop=drop, extra=extra, deselect=[TTL_CHECK, SPEED_CHECKS])
    passed = {o.name for o in outcomes.values() if o.status == "passed"}
    assert not passed & LOG_CHECKS, sorted(passed & LOG_CHECKS)
    assert {outcomes[n].status for n in LOG_CHECKS} == {"skipped"}, {
        n: (outcomes[n].status, outcomes[n].first_line) for n in LOG_CHECKS}


def test_without_a_stack_file_the_stack_rules_do_not_pass(bench):
    deploy_dir = bench.deploy_dir("no-stack")
    (deploy_dir / "docker-stack.yml").unlink()
    outcomes = bench.run_checks("no-stack", deploy_dir=deploy_dir,
                                select=("checks/test_01_config.py",))
    shutil.rmtree(deploy_dir)
    not_skipped = {n: outcomes[n].status for n in STACK_RULES if outcomes[n].status != "skipped"}
    assert not not_skipped, not_skipped


def test_without_dtrs_key_the_expired_token_check_waits_out_a_real_token(bench):
    """As against a real DTR (nobody has its signing key): the check keeps DTR's own redirect,
    waits for its ``exp`` within --ttl-wait and sees it refused."""
    from dtr_cache_check.testkit.faults.actions import restore_dtr_and_cache, short_lived_redirects

    try:
        spec = short_lived_redirects(4)(bench)
        outcomes = bench.run_checks("expired-waited", select=(
            "checks/test_10_security.py::test_expired_token_gets_nothing",), **spec)
    finally:
        restore_dtr_and_cache(bench)
    got = outcomes["test_expired_token_gets_nothing"]
    assert got.status == "passed", got.first_line
    assert "DTR's own token" in got.evidence and "after it expired" in got.evidence, got.evidence


HOST_RULE = "test_http_host_is_covered_by_the_certificate"


def test_without_the_certificate_file_the_host_rule_reads_the_served_certificate(bench):
    """When the certificate file cannot be read (no --cache-host, and the deployment directory
    lost the file: the seed's cleanup), http.host is judged against the certificate the cache
    serves: the right one passes, saying so, and one for another name fails."""
    from dtr_cache_check.testkit.faults.actions import restore_cache, with_cache_cert

    deploy_dir = bench.deploy_dir("no-cert-file")
    (deploy_dir / "certs" / "cache.cert.pem").unlink()
    select = (f"checks/test_01_config.py::{HOST_RULE}",)
    right = bench.run_checks("no-cert-file", deploy_dir=deploy_dir, select=select,
                             drop=("--cache-host",))[HOST_RULE]
    try:
        with_cache_cert(hosts=["cache.elsewhere.example"])(bench)
        wrong = bench.run_checks("no-cert-file-wrong-san", deploy_dir=deploy_dir, select=select,
                                 drop=("--cache-host",))[HOST_RULE]
    finally:
        restore_cache(bench)
        shutil.rmtree(deploy_dir)
    assert right.status == "passed", right.first_line
    assert "served by https://" in right.evidence and "covered by SAN" in right.evidence, (
        right.evidence)
    assert wrong.status == "failed", (wrong.status, wrong.evidence)
    assert "cache.elsewhere.example" in wrong.first_line, wrong.first_line


# Last in this file: each takes the bench before it down (one bench at a time).
# The whole suite on each topology is READY in tests/docker/test_topologies.py, and every fault
# of the matrix on a topology's bench shows no check failing but its own: here, each of the
# topology's own checks alone.
OWN_FILES = {"chain": "checks/test_12_chain.py", "ha": "checks/test_13_ha.py"}


@pytest.mark.parametrize("topology", sorted(TOPOLOGY_CHECKS))
def test_on_its_topology_each_topology_check_alone_passes_with_evidence(bench_for, topology):
    bench = bench_for(topology)
    problems = []
    for name in sorted(TOPOLOGY_CHECKS[topology]):
        alone = bench.run_checks(f"{topology}-alone",
                                 select=(f"{OWN_FILES[topology]}::{name}",))
        got = alone.get(name) or next((o for o in alone.values()
                                       if o.name.startswith(name + "[")), None)
        if got is None or got.status != "passed" or not got.evidence:
            problems.append(f"{name} alone: {got.status if got else 'not run'} "
                            f"{got.first_line if got else sorted(alone)}")
    assert not problems, "\n".join(problems)
