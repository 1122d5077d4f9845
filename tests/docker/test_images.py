"""The project's images build offline, and the reference cache image serves ``/v2/`` over TLS."""

from __future__ import annotations

import contextlib
import platform
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest
from docker.models.containers import Container

from fixtures import images
from fixtures.pki import CertificateAuthority, trust_context, write_seed_certs
from fixtures.seed import cache_config, write_yaml

pytestmark = pytest.mark.docker

UNREACHABLE_UPSTREAM = "https://127.0.0.1:9"
START_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    try:
        c = docker.from_env()
        c.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine ({exc}); start one with .ci/dockerd.sh")
    yield c
    c.close()


@pytest.fixture(scope="module")
def base_image(client: docker.DockerClient) -> str:
    return images.ensure_base_image(client)


@pytest.fixture(scope="module")
def cache_image(client: docker.DockerClient, base_image: str) -> str:
    return images.ensure_cache_image(client)


def _logs(container: Container) -> str:
    try:
        return container.logs(stdout=True, stderr=True).decode(errors="replace")
    except docker.errors.APIError as exc:
        return f"(no logs: {exc})"


@pytest.fixture
def run_container(client: docker.DockerClient) -> Iterator:
    """Start containers (detached, labelled); every one is removed afterwards, pass or fail."""
    started: list[Container] = []

    def run(image: str, command: list[str] | None = None, **kwargs: object) -> Container:
        name = f"dtrcache-test-{uuid.uuid4().hex[:10]}"
        container = client.containers.run(
            image,
            command,
            name=name,
            detach=True,
            labels={"org.dtrcache.test": "images"},
            **kwargs,
        )
        started.append(container)
        return container

    yield run
    for container in started:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


def test_base_image_has_python3_and_docker_registry(base_image: str, run_container) -> None:
    script = "python3 --version && test -x /usr/bin/docker-registry && docker-registry --version"
    container = run_container(base_image, ["sh", "-c", script])
    status = container.wait(timeout=60)
    out = _logs(container)
    assert status["StatusCode"] == 0, f"base image check failed:\n{out}"
    host = ".".join(platform.python_version_tuple()[:2])
    assert f"Python {host}." in out, f"image Python differs from the host's {host}:\n{out}"
    assert "github.com/docker/distribution 2." in out, out


def _write_deployment(root: Path) -> tuple[Path, Path, CertificateAuthority]:
    """The seed's layout: config.yml and certs/ (cache chain + key, DTR CA). Returns the CA."""
    ca = CertificateAuthority.create("Images Test Root CA")
    issued = ca.intermediate("Images Test Intermediate CA").issue_server(["localhost", "127.0.0.1"])
    certs = root / "certs"
    write_seed_certs(certs, issued, CertificateAuthority.create("Images Test DTR CA"))
    config = write_yaml(root / "config.yml", cache_config(
        upstreams=[UNREACHABLE_UPSTREAM], host="https://localhost", secret="images-test-secret"))
    return config, certs, ca


def _host_port(container: Container, deadline: float) -> int:
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            pytest.fail(f"the cache exited at start:\n{_logs(container)}")
        bound = (container.attrs["NetworkSettings"]["Ports"] or {}).get("443/tcp") or []
        if bound:
            return int(bound[0]["HostPort"])
        time.sleep(0.2)
    pytest.fail(f"port 443 was never published:\n{_logs(container)}")


def test_cache_image_serves_v2_over_tls(cache_image: str, run_container, tmp_path: Path) -> None:
    config, certs, ca = _write_deployment(tmp_path)
    container = run_container(
        cache_image,
        volumes={
            str(config): {"bind": "/config.yml", "mode": "ro"},
            str(certs): {"bind": "/run/secrets", "mode": "ro"},
        },
        ports={"443/tcp": ("127.0.0.1", None)},
    )
    deadline = time.monotonic() + START_TIMEOUT
    url = f"https://127.0.0.1:{_host_port(container, deadline)}/v2/"
    verify = trust_context(ca)
    last: Exception | None = None
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            pytest.fail(f"the cache exited:\n{_logs(container)}")
        try:
            response = httpx.get(url, verify=verify, timeout=5)
            break
        except httpx.TransportError as exc:  # not listening yet
            last = exc
            time.sleep(0.3)
    else:
        pytest.fail(f"{url} never answered ({last!r}):\n{_logs(container)}")
    assert response.status_code == 200, f"{response.text}\n{_logs(container)}"
    assert response.headers.get("Docker-Distribution-API-Version") == "registry/2.0"
