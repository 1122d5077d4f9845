"""One fault bench (a running reference deployment) for the whole fault-matrix session."""

from __future__ import annotations

import docker
import docker.errors
import pytest

from dtr_cache_check.testkit.faults.bench import FaultBench


@pytest.fixture(scope="session")
def bench(tmp_path_factory):
    try:
        docker.from_env().ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine ({exc}); start one with .ci/dockerd.sh")
    made = FaultBench(tmp_path_factory.mktemp("fault-bench"))
    yield made
    made.close()
