"""The installable tool: a wheel built from this checkout installs into a fresh virtual
environment with project-named top-level packages only (no "fixtures", no "checks"), and
``dtr-cache-check`` runs from a directory outside the checkout: ``--help``, and a read-only run
against a reference deployment whose reports land in that directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dtr_cache_check.harness.session import EXIT_NOT_PROVEN
from dtr_cache_check.reference.stack import down, up
from dtr_cache_check.reference.stack.record import CACHE_USER
from dtr_cache_check.testkit.local import REPO_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow]
PROJECT_PACKAGES = {"dtr_cache_check", "dtr_cache_formats", "cache_under_test"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the venv's bin directory) with the wheel installed in a fresh venv."""
    work = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the tracked (and new, not ignored) files: no stale build/ output.
    source = work / "source"
    listed = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-co",
                             "--exclude-standard"], check=True, capture_output=True,
                            text=True).stdout.splitlines()
    for name in listed:
        if (REPO_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(work / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    wheel = next((work / "dist").glob("dtr_cache_check-*.whl"))
    # The dependencies come from this machine's environment (no network needed); the project
    # itself only from the wheel.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(work / "venv")],
                   check=True, timeout=120)
    bin_dir = work / "venv" / "bin"
    subprocess.run([str(bin_dir / "pip"), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return wheel, bin_dir


def test_the_wheel_holds_project_named_packages_and_the_checks(installed):
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == PROJECT_PACKAGES, top
    assert "dtr_cache_check/checks/test_06_pull_cycle.py" in names
    assert "dtr_cache_check/checks/conftest.py" in names
    assert "dtr_cache_check/reference/dtr/Dockerfile" in names
    assert "cache_under_test/Dockerfile" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(entry_points).decode()
    assert "dtr-cache-check = dtr_cache_check.cli:main" in text
    assert "[pytest11]" in text


def test_help_runs_outside_the_checkout(installed, tmp_path):
    _, bin_dir = installed
    done = subprocess.run([str(bin_dir / "dtr-cache-check"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "--dtr-url" in done.stdout and "--files-only" in done.stdout
    where = subprocess.run([str(bin_dir / "python"), "-c",
                            "import dtr_cache_check; print(dtr_cache_check.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert str(bin_dir.parent) in where.stdout, where.stdout  # the installed copy, not ours


def test_a_read_only_run_writes_its_reports_where_it_was_started(installed, engine, tmp_path):
    _, bin_dir = installed
    base = tmp_path / "deployment"
    dep = up(base, progress=lambda message: None)
    outside = tmp_path / "operator"
    outside.mkdir()
    try:
        argv = [str(bin_dir / "dtr-cache-check"), "-q", "--dtr-url", dep.dtr_url,
                "--cache-url", dep.cache_url, "--cache-name", dep.primary.name,
                "--dtr-user", CACHE_USER, "--dtr-ca", str(base / "pki" / "dtr-ca.cert.pem"),
                "--cache-ca", str(base / "pki" / "org-root.cert.pem"),
                "--deploy-dir", str(dep.deploy_dir), "--no-writes",
                # pytest's own arguments pass through: an expression and a node id
                "-k", "trusts_the_server or registered",
                "--deselect", "checks/test_05_registration.py::test_user_points_at_the_cache"]
        env = {**os.environ, "DTR_CHECK_DTR_PASSWORD": dep.password(CACHE_USER)}
        done = subprocess.run(argv, cwd=outside, env=env, capture_output=True, text=True,
                              timeout=600)
    finally:
        down(base, progress=lambda message: None)
    # Read-only: the pull cycle was not run, and says so; NOT PROVEN is never a success.
    assert done.returncode == EXIT_NOT_PROVEN, done.stdout[-4000:] + done.stderr[-2000:]
    assert "NOT PROVEN" in done.stdout
    for name in ("report.html", "junit.xml", "results.json"):
        assert (outside / "reports" / name).is_file(), name
    results = json.loads((outside / "reports" / "results.json").read_text())
    passed = {c["name"] for c in results["checks"] if c["outcome"] == "passed"}
    assert "test_client_trusts_the_server[client->cache]" in passed
    assert "test_cache_is_registered_in_dtr" in passed
    ran = {c["name"] for c in results["checks"]}
    assert "test_user_points_at_the_cache" not in ran and "test_restart_policy" not in ran
    # the prerequisites of the selected checks ran though -k left them out
    assert "test_server_answers_tls[client->DTR]" in passed
    site = bin_dir.parent / "lib"
    assert not list(site.rglob("reports")) and not list(site.rglob(".deploy"))
