"""What the Docker tests share: an engine, or a skip that says how to start one."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import docker.errors
import pytest


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine ({exc}); start one with .ci/dockerd.sh")
    yield client
    client.close()


@pytest.fixture(scope="session")
def client(engine: docker.DockerClient) -> docker.DockerClient:
    """The engine, under the name the image and balancer tests use."""
    return engine
