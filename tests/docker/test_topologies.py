"""The reference topologies end to end: ``pytest checks/ --reference-topology X`` is READY for
each, the topology's own checks pass (none skipped), and nothing is left behind; a --targets
file naming the ``regions`` deployment's two caches runs green under ``-n 2 --dist loadgroup``
with the cache x check matrix in the report; swarm mode brings every topology up and down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from dtr_cache_check.reference.stack import Deployment, down, names, up
from dtr_cache_check.testkit.local import REPO_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow]
LABEL = "org.dtrcache.deployment"
# The checks that must pass (not skip) on each topology: its own.
OWN_CHECKS = {
    "ha": "checks/test_13_ha.py",
    "chain": "checks/test_12_chain.py",
}


def _run(argv: list[str], env: dict[str, str] | None = None,
         timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *argv, "-q", "-p", "no:cacheprovider"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _cases(junit: Path) -> list[ET.Element]:
    return list(ET.parse(junit).getroot().iter("testcase"))


def _nothing_left(engine, deployment_id: str) -> None:
    selector = {"label": f"{LABEL}={deployment_id}"}
    assert engine.containers.list(all=True, filters=selector) == []
    assert engine.networks.list(filters=selector) == []
    assert engine.volumes.list(filters=selector) == []
    assert names.entries(deployment_id) == {}


@pytest.mark.parametrize("topology", ["ha", "chain", "regions"])
def test_reference_topology_is_ready(engine, tmp_path, topology):
    state = tmp_path / "state"
    junit, results = tmp_path / "junit.xml", tmp_path / "results.json"
    try:
        done = _run(["checks/", "--reference-topology", topology, "--state-dir", str(state),
                     "--junitxml", str(junit), "--html", str(tmp_path / "report.html"),
                     "--ttl-wait", "40", "--keep-stack"])
    finally:
        dep = Deployment.load(state)
        down(state, progress=lambda message: None)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "READY" in done.stdout and "NOT READY" not in done.stdout, done.stdout[-2000:]
    cases = _cases(junit)
    skipped = {c.get("name") for c in cases if c.find("skipped") is not None}
    own = OWN_CHECKS.get(topology)
    if own:
        mine = [c for c in cases if (c.get("classname") or "").endswith(
            Path(own).stem)]
        assert mine, f"no check of {own} ran"
        assert not [c.get("name") for c in mine if c.get("name") in skipped], skipped
    if topology == "regions":
        verdict = json.loads(results.read_text())
        assert set(verdict["caches"]) == {"region-test", "region-west"}
        assert all(c["verdict"]["word"] == "READY" for c in verdict["caches"].values())
    assert dep is not None and dep.topology == topology and not state.exists()
    _nothing_left(engine, dep.id)


def test_targets_file_of_two_caches_runs_in_parallel(engine, tmp_path):
    """The operator's way to check several caches at once, on the regions deployment."""
    base = tmp_path / "regions"
    dep = up(base, topology="regions", progress=lambda message: None)
    try:
        users = json.loads(dep.users_file.read_text())
        env = {}
        caches = []
        for spec in dep.caches:
            env[f"PW_{spec.user.upper()}"] = users[spec.user]["password"]
            caches.append({"name": spec.name, "url": dep.cache_url_of(spec),
                           "user": spec.user, "password-env": f"PW_{spec.user.upper()}",
                           "logs": dep.logs_of(spec),
                           "deploy-dir": str(dep.cache_deploy_dir(spec)),
                           "ca": str(base / "pki" / "org-root.cert.pem")})
        env["PW_ADMIN"], env["PW_BOB"] = users["admin"]["password"], users["bob"]["password"]
        targets = tmp_path / "targets.yml"
        targets.write_text(yaml.safe_dump({
            "dtr-url": dep.dtr_url, "dtr-ca": str(base / "pki" / "dtr-ca.cert.pem"),
            "dtr-admin-user": "admin", "other-user": "bob",
            "dtr-logs": f"docker:{dep.container_name('dtr')}",
            "caches": caches,
        }))
        env.update(DTR_CHECK_DTR_ADMIN_PASSWORD=env["PW_ADMIN"],
                   DTR_CHECK_OTHER_PASSWORD=env["PW_BOB"])
        junit, html = tmp_path / "junit.xml", tmp_path / "report.html"
        done = _run(["checks/", "--targets", str(targets), "-n", "2", "--dist", "loadgroup",
                     "--junitxml", str(junit), "--html", str(html), "--self-contained-html"],
                    env=env)
    finally:
        down(base, progress=lambda message: None)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "READY: every cache is READY (2 caches)" in done.stdout, done.stdout[-2000:]
    names_in_junit = {c.get("name") for c in _cases(junit)}
    for cache in ("region-test", "region-west"):
        assert any(cache in name for name in names_in_junit), cache
    page = html.read_text()
    assert 'id="dtr-matrix"' in page and "region-west" in page
    assert not [p for p in env.values() if p in page]
    _nothing_left(engine, dep.id)


@pytest.mark.parametrize("topology", ["chain", "regions", "ha"])
def test_swarm_topology_comes_up_and_goes_down(engine, tmp_path, topology):
    """Swarm mode: each cache a stack of its own (the seed's way), reached by name; down
    removes the stacks, the names, and the swarm it initialized."""
    base = tmp_path / "swarm"
    was_active = engine.info()["Swarm"]["LocalNodeState"] == "active"
    dep = None
    try:
        dep = up(base, use_swarm=True, topology=topology, progress=lambda message: None)
        assert dep.state == "up" and dep.named
        for spec in dep.caches:
            assert names.fqdn(dep.id, spec.role) in names.entries(dep.id)
    finally:
        down(base, progress=lambda message: None)
    assert (engine.info()["Swarm"]["LocalNodeState"] == "active") == was_active
    if was_active:  # a swarm of someone else's: our stacks are gone from it
        assert not [s for s in engine.services.list() if s.name.startswith("dtr-cache")]
    assert dep is not None
    _nothing_left(engine, dep.id)
