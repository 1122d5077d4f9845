"""``down --all`` after a killed run: a swarm deployment under a WAN profile whose record is
gone (its own module: swarm init and leave disturb Docker's DNS on bridge networks in use, so
no other deployment of these tests is up meanwhile)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from dtr_cache_check.reference.stack import Deployment, down, swarm, up
from dtr_cache_check.reference.stack.orphans import down_all
from dtr_cache_check.reference.stack.record import LABEL, PROFILE_VARIABLE
from tests.docker.test_wan import leftovers, probe_from_host

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_down_all_removes_a_swarm_deployment_whose_record_is_gone(engine, tmp_path):
    """A killed run's swarm deployment (stack, tasks, DTR and relay containers, network,
    configs, secrets, the swarm it initialised, the hosts block): ``down --all`` finds it."""
    swarm_before = engine.info()["Swarm"]["LocalNodeState"]
    base = tmp_path / "orphan"
    dep = None
    try:
        dep = up(base, use_swarm=True, wan="inter-region", cache_profile="distribution",
                 progress=lambda m: None)
        assert 0.8 * 0.08 <= probe_from_host(dep.dtr_url)["rtt"] < 0.2
        task = _cache_task(engine, dep)
        assert f"{PROFILE_VARIABLE}=distribution" in task.attrs["Config"]["Env"]
        assert leftovers(engine, dep.id)
        shutil.rmtree(base)   # the run is killed: no record left
        done = subprocess.run([sys.executable, "-m", "dtr_cache_check.reference.stack", "down",
                               "--all", "--dir", str(base)],
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        assert leftovers(engine, dep.id) == [], done.stderr
        assert "removed stack dtr-cache" in done.stderr
        assert engine.info()["Swarm"]["LocalNodeState"] == swarm_before
    finally:
        record = Deployment.load(base) or dep
        down(base, progress=lambda m: None)
        if record is not None:   # a failure after the record was deleted: by its id
            down_all(include_live=True, only={record.id}, progress=lambda m: None)


def _cache_task(engine, dep: Deployment):
    """The cache service's running task container. ``up`` returns once the published port
    answers; the task's container can be between a restart's stop and start then (seen once
    in CI), so give it the time a restart takes, and say the service's state if it never comes."""
    deadline = time.monotonic() + 30
    while True:
        found = engine.containers.list(filters={"label": f"{LABEL}={dep.id}",
                                                "name": "dtr-cache_cache"})
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert found, f"no running cache task: {swarm.service_state(engine, 'dtr-cache_cache')}"
    return found[0]
