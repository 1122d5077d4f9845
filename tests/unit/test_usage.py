"""Usage errors: a missing or inconsistent option names itself before any check runs (no
traceback), and a dependency between checks that names no check is an error at collection."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dtr_cache_check.harness import facts
from dtr_cache_check.testkit.local import REPO_ROOT


def run_checks(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DTR_CHECK_")}
    return subprocess.run([sys.executable, "-m", "pytest", "checks/", "-q", "-p",
                           "no:cacheprovider", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, env={**clean, **(env or {})})


@pytest.mark.parametrize(("args", "env", "words"), [
    (["--dtr-user", "alice"], {}, ["no password for --dtr-user alice",
                                   "DTR_CHECK_DTR_PASSWORD"]),
    (["--dtr-user", "alice", "--other-user", "bob"], {"DTR_CHECK_DTR_PASSWORD": "pw"},
     ["--other-user bob has no password", "DTR_CHECK_OTHER_PASSWORD"]),
    ([], {}, ["--dtr-user is missing"]),
    (["--dtr-user", "a", "--cache-logs", "journal:x"], {"DTR_CHECK_DTR_PASSWORD": "pw"},
     ["--cache-logs", "docker:CONTAINER"]),
    (["--dtr-user", "a", "--dtr-ca", "/nonexistent/ca.pem"], {"DTR_CHECK_DTR_PASSWORD": "pw"},
     ["--dtr-ca /nonexistent/ca.pem: no such file"]),
    (["--files-only"], {}, ["--files-only needs the files"]),
])
def test_a_bad_option_is_a_usage_error_naming_it(args, env, words):
    done = run_checks("--dtr-url", "https://dtr.example.invalid", *args, env=env)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout[-2000:] + done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_a_plain_http_dtr_url_is_refused():
    done = run_checks("--dtr-url", "http://dtr.example.invalid", "--dtr-user", "a",
                      env={"DTR_CHECK_DTR_PASSWORD": "pw"})
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "give an https://host[:port] URL" in done.stderr


def test_the_real_checks_declare_no_problem():
    from tests.unit.checkfacts import declared

    assert facts.problems(list(declared().values())) == []


def test_a_deployment_directory_without_a_config_is_a_usage_error(tmp_path):
    (tmp_path / "certs").mkdir()
    done = run_checks("--files-only", "--deploy-dir", str(tmp_path))
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "no config.yml or config.yaml in it" in done.stderr
