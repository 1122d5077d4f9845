"""The project's images build offline; the reference cache image serves ``/v2/`` over TLS; the
DTR stand-in image serves ``/ca`` and the ``/v2/`` challenge, proxies to its own distribution, and
stops when that registry dies."""

from __future__ import annotations

import contextlib
import platform
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest
from docker.models.containers import Container

from dtr_cache_check.pki import CertificateAuthority, trust_context, write_seed_certs
from dtr_cache_check.reference import images
from dtr_cache_check.reference.dtr import ADMIN
from dtr_cache_check.reference.seed_templates import cache_config, write_yaml
from dtr_cache_check.testkit.local import free_port, read_password

pytestmark = pytest.mark.docker

UNREACHABLE_UPSTREAM = "https://127.0.0.1:9"
START_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def base_image(client: docker.DockerClient) -> str:
    return images.ensure_base_image(client)


@pytest.fixture(scope="module")
def cache_image(client: docker.DockerClient, base_image: str) -> str:
    return images.ensure_cache_image(client)


@pytest.fixture(scope="module")
def dtr_image(client: docker.DockerClient, base_image: str) -> str:
    return images.ensure_dtr_image(client)


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


def _host_port(container: Container, deadline: float, port: str = "443/tcp") -> int:
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            pytest.fail(f"the container exited at start:\n{_logs(container)}")
        bound = (container.attrs["NetworkSettings"]["Ports"] or {}).get(port) or []
        if bound:
            return int(bound[0]["HostPort"])
        time.sleep(0.2)
    pytest.fail(f"port {port} was never published:\n{_logs(container)}")


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


DTR_PORT = 8443  # inside the container


def _write_dtr_dir(root: Path, host_port: int) -> CertificateAuthority:
    """The stand-in's /dtr: dtr.yml, its TLS certificate (chain) and key, the CA it serves."""
    ca = CertificateAuthority.create("Images Test DTR Root CA")
    issued = ca.intermediate("Images Test DTR Intermediate CA").issue_server(
        ["localhost", "127.0.0.1"])
    issued.write(root / "dtr.cert.pem", root / "dtr.key.pem")
    ca.write_cert(root / "ca.pem")
    write_yaml(root / "dtr.yml", {
        "listen": f"0.0.0.0:{DTR_PORT}",
        "tls": {"certificate": "/dtr/dtr.cert.pem", "key": "/dtr/dtr.key.pem"},
        "ca": "/dtr/ca.pem",
        "registry": "http://127.0.0.1:5000",
        "public_url": f"https://127.0.0.1:{host_port}",
        "state_dir": "/dtr/state",
        "signing_key": "/dtr/state/signing-key.pem",
    })
    return ca


def _get_when_up(container: Container, url: str, verify, deadline: float,
                 **kwargs: object) -> httpx.Response:
    last: Exception | None = None
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            pytest.fail(f"the stand-in exited:\n{_logs(container)}")
        try:
            return httpx.get(url, verify=verify, timeout=5, **kwargs)
        except httpx.TransportError as exc:  # not listening yet
            last = exc
            time.sleep(0.3)
    pytest.fail(f"{url} never answered ({last!r}):\n{_logs(container)}")


@pytest.fixture
def standin(dtr_image: str, run_container, tmp_path: Path):
    """A running stand-in container: (container, base URL, CA, /dtr on the host)."""
    host_port = free_port()
    ca = _write_dtr_dir(tmp_path, host_port)
    container = run_container(
        dtr_image,
        volumes={str(tmp_path): {"bind": "/dtr", "mode": "rw"}},
        ports={f"{DTR_PORT}/tcp": ("127.0.0.1", host_port)},
    )
    return container, f"https://127.0.0.1:{host_port}", ca, tmp_path


def test_dtr_image_serves_ca_and_v2_challenge(standin) -> None:
    container, base, ca, dtr_dir = standin
    verify = trust_context(ca)
    deadline = time.monotonic() + START_TIMEOUT
    response = _get_when_up(container, f"{base}/ca", verify, deadline)
    assert response.status_code == 200, f"{response.text}\n{_logs(container)}"
    assert response.content == ca.cert_pem

    response = httpx.get(f"{base}/v2/", verify=verify, timeout=5)
    assert response.status_code == 401, response.text
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer "), challenge
    assert f'realm="{base}/auth/token"' in challenge, challenge

    # The front reaches the registry in the container: with a token, /v2/ is distribution's.
    password = read_password(dtr_dir / "state" / "users.json", ADMIN)
    token = httpx.get(f"{base}/auth/token", params={"service": "dtr-standin"},
                      auth=(ADMIN, password), verify=verify, timeout=5).json()["token"]
    response = httpx.get(f"{base}/v2/", headers={"Authorization": f"Bearer {token}"},
                         verify=verify, timeout=5)
    assert response.status_code == 200, f"{response.text}\n{_logs(container)}"
    assert response.headers.get("Docker-Distribution-API-Version") == "registry/2.0"
    logs = _logs(container)
    assert '"event": "dtr.registry_ready"' in logs, logs
    assert re.search(r'"msg":"listening on 127\.0\.0\.1:5000', logs.replace(": ", ":")), logs


def test_dtr_container_stops_when_its_registry_dies(standin) -> None:
    container, base, ca, _ = standin
    _get_when_up(container, f"{base}/ca", trust_context(ca), time.monotonic() + START_TIMEOUT)
    killed = container.exec_run(["sh", "-c", "kill -KILL $(pgrep -x docker-registry)"])
    assert killed.exit_code == 0, killed.output
    status = container.wait(timeout=20)
    logs = _logs(container)
    assert '"event": "dtr.registry_exited"' in logs, logs
    assert "docker-registry exited with status 137" in logs, logs
    assert status["StatusCode"] == 0, logs  # the front stops cleanly on the watcher's SIGTERM
