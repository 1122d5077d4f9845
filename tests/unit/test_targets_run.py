"""Several caches in one run: a check standing on ``target`` runs once per cache of --targets
(the id carries the cache's name; one target keeps the plain ids), each cache has its own
verdict and the run's is the worst, results.json and the HTML matrix list every cache, and
under ``-n 2 --dist loadgroup`` the controller's reports hold every worker's results.

The checks here are a stand-in file of a tiny fake suite that contacts nothing (the harness
treats it as the checks: its conftest points ``paths.checks_dir`` at it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dtr_cache_check.pki import CertificateAuthority
from dtr_cache_check.testkit.local import REPO_ROOT

CONFTEST = """
from pathlib import Path

from dtr_cache_check import paths

HERE = Path(__file__).resolve().parent
paths.checks_dir = lambda: HERE / "checks"   # the harness judges this fake suite
paths.work_dir = lambda: HERE
"""

CHECKS = """
import pytest

pytestmark = pytest.mark.hop("client->cache")


def test_knows_its_cache(target, evidence):
    evidence.summary.append(f"judged {target.cache_name} at {target.cache_url}")
    assert target.cache_url.startswith("https://127.0.0.1:")


def test_europe_is_down(target):
    assert target.cache_name != "europe", "[client->cache] europe is down. Fix: start it."


def test_stands_on_nothing():
    pass


@pytest.mark.essential("hit evidence")
def test_hit_is_not_observable_here(target):
    pytest.skip("no logs in this fake suite")
"""

TARGETS = """
dtr-url: https://127.0.0.1:9
dtr-ca: ca.pem
caches:
  - name: asia
    url: https://127.0.0.1:10
    user: alice
    password-env: FAKE_ASIA_PASSWORD
  - name: europe
    url: https://127.0.0.1:11
    user: carol
    password-file: europe.pw
"""
SECRETS = {"asia": "asia-password-3f9c2e71", "europe": "europe-password-8b1d44a0"}


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "test_fake.py").write_text(CHECKS)
    (tmp_path / "targets.yml").write_text(TARGETS)
    (tmp_path / "europe.pw").write_text(SECRETS["europe"])
    CertificateAuthority.create().write_cert(tmp_path / "ca.pem")
    return tmp_path


def run(suite: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTR_CHECK_")}
    env.update(PYTHONPATH=str(REPO_ROOT), FAKE_ASIA_PASSWORD=SECRETS["asia"])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "checks", "-v", "-p", "no:cacheprovider",
         "--html", str(suite / "out" / "report.html"),
         "--junitxml", str(suite / "out" / "junit.xml"), *args],
        cwd=suite, env=env, capture_output=True, text=True, timeout=120)


def outputs(suite: Path) -> tuple[dict, str, str]:
    out = suite / "out"
    return (json.loads((out / "results.json").read_text()), (out / "report.html").read_text(),
            (out / "junit.xml").read_text())


def assert_both_caches(suite: Path, done: subprocess.CompletedProcess) -> None:
    results, page, junit = outputs(suite)
    ids = sorted(c["id"].split("::", 1)[1].split("@", 1)[0] for c in results["checks"])
    assert ids == ["test_europe_is_down[asia]", "test_europe_is_down[europe]",
                   "test_hit_is_not_observable_here[asia]",
                   "test_hit_is_not_observable_here[europe]",
                   "test_knows_its_cache[asia]", "test_knows_its_cache[europe]",
                   "test_stands_on_nothing"], done.stdout
    names = {(c["cache"], c["name"]): c["outcome"] for c in results["checks"]}
    assert names[("asia", "test_europe_is_down")] == "passed"
    assert names[("europe", "test_europe_is_down")] == "failed"
    evidence = {c["cache"]: c["evidence"] for c in results["checks"]
                if c["name"] == "test_knows_its_cache"}
    assert evidence == {"asia": "judged asia at https://127.0.0.1:10",
                        "europe": "judged europe at https://127.0.0.1:11"}
    assert results["verdict"]["word"] == "NOT READY"  # europe failed: the worst word wins
    assert results["verdict"]["caches"] == {"asia": "NOT PROVEN", "europe": "NOT READY"}
    assert [r["cache"] for r in results["verdict"]["roots"]] == ["europe"]
    assert set(results["caches"]) == {"asia", "europe"}
    assert len(results["caches"]["europe"]["checks"]) == 3
    matrix = page[page.index('id="dtr-matrix"'):]
    # The file's order, whichever worker finished first.
    assert list(results["verdict"]["caches"]) == ["asia", "europe"]
    assert 0 < matrix.index('data-cache="asia"') < matrix.index('data-cache="europe"')
    assert '<code>test_europe_is_down</code>' in matrix
    assert 'class="dtr-cell dtr-failed"' in matrix and 'class="dtr-cell dtr-passed"' in matrix
    assert 'data-target="checks/test_fake.py::test_europe_is_down[europe]' in matrix
    assert 'name="test_knows_its_cache[asia]' in junit
    assert 'name="test_knows_its_cache[europe]' in junit
    for text in (done.stdout, done.stderr, page, junit, json.dumps(results)):
        assert not any(secret in text for secret in SECRETS.values())


def test_every_check_runs_once_per_cache_with_the_cache_in_its_id(suite):
    done = run(suite, "--targets", "targets.yml")
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout + done.stderr
    assert "test_fake.py::test_knows_its_cache[asia] PASSED" in done.stdout
    assert "test_fake.py::test_knows_its_cache[europe] PASSED" in done.stdout
    assert "test_fake.py::test_europe_is_down[europe] FAILED" in done.stdout
    assert "test_fake.py::test_stands_on_nothing PASSED" in done.stdout  # no target: once
    assert "  asia: NOT PROVEN" in done.stdout and "  europe: NOT READY" in done.stdout
    assert_both_caches(suite, done)


def test_one_target_keeps_the_plain_ids_and_no_matrix(suite):
    done = run(suite, "--dtr-url", "https://127.0.0.1:9", "--cache-url", "https://127.0.0.1:10",
               "--cache-name", "asia", "--dtr-user", "alice", "--dtr-ca", "ca.pem",
               "--dtr-password-file", "europe.pw")
    assert "test_fake.py::test_knows_its_cache PASSED" in done.stdout, done.stdout + done.stderr
    results, page, _junit = outputs(suite)
    assert "caches" not in results and {c["cache"] for c in results["checks"]} == {None}
    assert 'id="dtr-matrix"' not in page


def test_the_reference_deployment_refuses_workers(suite):
    done = run(suite, "-n", "2")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "-n/--tx (pytest-xdist) needs external targets" in done.stderr


@pytest.mark.slow
def test_workers_keep_each_cache_together_and_the_controller_reports_all(suite):
    done = run(suite, "--targets", "targets.yml", "-n", "2", "--dist", "loadgroup")
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout + done.stderr
    assert "2 workers" in done.stdout
    workers = {}
    for line in done.stdout.splitlines():  # "[gw0] PASSED checks/test_fake.py::x[asia]@asia"
        if line.startswith("[gw") and "@" in line:
            workers.setdefault(line.rsplit("@", 1)[1].split()[0], set()).add(line[1:4])
    assert set(workers) >= {"asia", "europe"} and all(len(w) == 1 for w in workers.values())
    assert "  asia: NOT PROVEN" in done.stdout and "  europe: NOT READY" in done.stdout
    assert_both_caches(suite, done)
