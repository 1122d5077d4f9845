"""The HA topology's balancer, each variant in front of two tiny TLS backends on a network of its
own: passthrough shows the backends' certificate, takes turns, keeps the query and survives a
dead backend (also with backends found by DNS); terminating shows its own certificate;
strip-query hands the backends no query string."""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import docker
import docker.errors
import pytest
import yaml
from cryptography import x509
from cryptography.x509.verification import VerificationError
from docker.models.containers import Container

from dtr_cache_check import pki
from dtr_cache_check.reference import balancer, images
from dtr_cache_check.reference.seed_templates import cache_config

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BACKEND_PORT = 8443
TEST_LABEL = "org.dtrcache.test"
QUERY = "/v2/alice/app/blobs/sha256:abc?dtr_cache_token=eyJ.a-b_c.sig&other=1%2F2"
# A backend: answers every GET with who it is and the path+query it was asked for. It runs on
# the base image's python3 (no internet: no other image to pull).
BACKEND_PY = f"""\
import http.server, json, os, ssl, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"backend": os.environ["IDENT"], "uri": self.path}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(fmt % args, file=sys.stderr, flush=True)

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/tls/chain.pem", "/tls/key.pem")
server = http.server.ThreadingHTTPServer(("0.0.0.0", {BACKEND_PORT}), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("listening", flush=True)
server.serve_forever()
"""


@dataclass
class Answer:
    chain: list[x509.Certificate]
    status: int
    body: dict


@dataclass
class Certs:
    ca: pki.CertificateAuthority          # signs the "cache" certificate the backends serve
    cache: pki.Issued
    other: pki.Issued                     # the terminating balancer's own, from another CA


@dataclass
class Net:
    name: str
    label: dict[str, str]


@pytest.fixture(scope="module")
def balancer_image(client: docker.DockerClient) -> str:
    return images.ensure_balancer_image(client)


@pytest.fixture(scope="module")
def backend_image(client: docker.DockerClient) -> str:
    """The tiny backends need python3 alone: the base image."""
    return images.ensure_base_image(client)


@pytest.fixture(scope="module")
def cache_image(client: docker.DockerClient) -> str:
    return images.ensure_cache_image(client)


@pytest.fixture(scope="module")
def certs() -> Certs:
    root = pki.CertificateAuthority.create("Balancer Test Root")
    issuing = root.intermediate("Balancer Test Issuing")
    hosts = ["cache", "localhost", "127.0.0.1"]
    other = pki.CertificateAuthority.create("Some Other CA").issue_server(hosts)
    return Certs(ca=root, cache=issuing.issue_server(hosts), other=other)


def _remove_labelled(client: docker.DockerClient, label: dict[str, str]) -> None:
    """Every container and the network this module created (nothing else: by our label)."""
    selector = {"label": [f"{k}={v}" for k, v in label.items()]}
    for container in client.containers.list(all=True, filters=selector):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
    for network in client.networks.list(filters=selector):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()


@pytest.fixture(scope="module")
def net(client: docker.DockerClient) -> Iterator[Net]:
    """A user-defined bridge of this module's own (names resolve there, and Docker's DNS
    answers at 127.0.0.11); removed with every container on it, also after a failure."""
    run = secrets.token_hex(4)
    label = {TEST_LABEL: f"balancer-{run}"}
    name = f"dtrcache-baltest-{run}"
    try:
        client.networks.create(name, driver="bridge", labels=label)
        yield Net(name=name, label=label)
    finally:
        _remove_labelled(client, label)


def _wait_log(container: Container, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        out = container.logs(stdout=True, stderr=True).decode(errors="replace")
        if text in out:
            return
        if container.status in ("exited", "dead") or time.monotonic() > deadline:
            raise AssertionError(f"{container.name} ({container.status}) never said {text!r}:"
                                 f"\n{out}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def start_backend(client: docker.DockerClient, net: Net, backend_image: str, certs: Certs
                  ) -> Callable[..., Container]:
    def start(ident: str, aliases: list[str]) -> Container:
        container = client.containers.create(
            backend_image, name=f"{net.name}-{ident}", entrypoint=["python3", "/backend.py"],
            command=[], environment={"IDENT": ident}, labels=net.label, detach=True,
            network=net.name,
            networking_config={net.name: client.api.create_endpoint_config(aliases=aliases)})
        files = {"/backend.py": (BACKEND_PY.encode(), 0o444),
                 "/tls/chain.pem": (certs.cache.chain_pem, 0o444),
                 "/tls/key.pem": (certs.cache.key_pem, 0o400)}
        container.put_archive("/", balancer._tar(files))
        container.start()
        _wait_log(container, "listening")
        return container
    return start


@pytest.fixture(scope="module")
def backends(start_backend: Callable[..., Container]) -> dict[str, Container]:
    """Two backends, ``a`` and ``b``, sharing the alias ``replicas`` (a dnsrr service's DNS)."""
    return {ident: start_backend(ident, [f"backend-{ident}", "replicas"]) for ident in "ab"}


@pytest.fixture
def start_balancer(client: docker.DockerClient, net: Net, balancer_image: str
                   ) -> Iterator[Callable[..., tuple[Container, int]]]:
    """Start a balancer (published on a 127.0.0.1 port Docker picks); removed after the test."""
    started: list[Container] = []

    def start(config: balancer.Config, pem: bytes | None = None) -> tuple[Container, int]:
        name = f"{net.name}-balancer-{secrets.token_hex(2)}"
        container = balancer.start(client, config, name=name, network=net.name, pem=pem,
                                   aliases=["cache"], labels=net.label, publish=0)
        started.append(container)
        return container, balancer.published_port(container, config.listen_port)

    yield start
    for container in started:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


def get(port: int, uri: str = QUERY, timeout: float = 5.0) -> Answer:
    """One GET on a new connection (the balancers balance connections), reading the chain the
    server sent; verification is judged afterwards, against the chain."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname="cache") as tls:
        chain = pki.unverified_chain(tls)
        tls.sendall(f"GET {uri} HTTP/1.1\r\nHost: cache\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    try:
        parsed = json.loads(body) if status == 200 else {}
    except json.JSONDecodeError:
        parsed = {}
    return Answer(chain=chain, status=status, body=parsed)


def get_until(port: int, ok: Callable[[Answer], bool], timeout: float = 20.0,
              uri: str = QUERY) -> Answer:
    """Ask until ``ok`` (the balancer may still be resolving or checking its servers)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            answer = get(port, uri)
        except (OSError, ValueError, IndexError) as exc:
            last = exc
        else:
            if ok(answer):
                return answer
            last = answer
        time.sleep(0.3)
    raise AssertionError(f"no good answer in {timeout:.0f} s; last: {last!r}")


def seen_backends(port: int, n: int = 8) -> list[str]:
    return [get(port).body["backend"] for _ in range(n)]


def assert_backend_certificate(answer: Answer, certs: Certs) -> None:
    assert answer.chain[0] == certs.cache.cert, "the client did not see the backends' cert"
    pki.verify_server_chain(answer.chain, [certs.ca.cert], "cache")


def test_passthrough_shows_the_replicas_certificate_takes_turns_and_keeps_the_query(
        backends: dict[str, Container], start_balancer, certs: Certs) -> None:
    config = balancer.render("passthrough", [f"backend-{i}:{BACKEND_PORT}" for i in "ab"])
    _, port = start_balancer(config)
    first = get_until(port, lambda a: a.status == 200)
    assert_backend_certificate(first, certs)
    assert first.body["uri"] == QUERY, "the query string did not reach the backend untouched"
    assert set(seen_backends(port)) == {"a", "b"}, "round robin did not reach both backends"


def test_passthrough_by_dns_finds_every_replica(backends: dict[str, Container], start_balancer,
                                                certs: Certs) -> None:
    config = balancer.render("passthrough", service=f"replicas:{BACKEND_PORT}")
    _, port = start_balancer(config)
    assert_backend_certificate(get_until(port, lambda a: a.status == 200), certs)
    deadline = time.monotonic() + 20
    seen: set[str] = set()
    while seen != {"a", "b"} and time.monotonic() < deadline:
        seen |= set(seen_backends(port, 4))  # slots fill as DNS answers: may take a moment
    assert seen == {"a", "b"}, f"server-template over Docker's DNS found only {seen}"


def test_passthrough_keeps_serving_when_a_backend_dies(
        client: docker.DockerClient, start_backend, start_balancer, certs: Certs) -> None:
    own = {ident: start_backend(ident, [f"backend-{ident}"]) for ident in ("c", "d")}
    config = balancer.render("passthrough", [f"backend-{i}:{BACKEND_PORT}" for i in own])
    container, port = start_balancer(config)
    get_until(port, lambda a: a.status == 200)
    assert set(seen_backends(port)) == {"c", "d"}
    own["d"].kill()
    # the health check takes d out (2 failed checks 1 s apart); until then a connection to d
    # is retried on c (redispatch)
    get_until(port, lambda a: a.body.get("backend") == "c")
    time.sleep(3)
    answers = seen_backends(port, 10)
    assert answers == ["c"] * 10, f"not every request served by the live backend: {answers}"
    log = balancer.logs(client, container.name)
    assert "replicas/replica2 is DOWN" in log, f"haproxy did not mark d down:\n{log[-2000:]}"


def test_terminating_shows_the_balancers_own_certificate(
        backends: dict[str, Container], start_balancer, certs: Certs) -> None:
    config = balancer.render("terminating", [f"backend-{i}:{BACKEND_PORT}" for i in "ab"])
    _, port = start_balancer(config, balancer.pem(certs.other))
    answer = get_until(port, lambda a: a.status == 200)
    assert answer.chain[0] == certs.other.cert
    assert answer.chain[0] != certs.cache.cert
    with pytest.raises(VerificationError):
        pki.verify_server_chain(answer.chain, [certs.ca.cert], "cache")
    assert answer.body["uri"] == QUERY  # only the certificate is wrong here
    assert set(seen_backends(port)) == {"a", "b"}


def test_strip_query_hands_the_backend_no_query(
        backends: dict[str, Container], start_balancer, certs: Certs) -> None:
    config = balancer.render("strip-query", [f"backend-{i}:{BACKEND_PORT}" for i in "ab"])
    _, port = start_balancer(config, balancer.pem(certs.cache))
    answer = get_until(port, lambda a: a.status == 200)
    assert_backend_certificate(answer, certs)  # the certificate looks right...
    path = QUERY.partition("?")[0]
    assert answer.body["uri"] == path, "the query string reached the backend"  # ...the token not


def test_passthrough_health_checks_the_reference_cache(
        client: docker.DockerClient, net: Net, cache_image: str, start_balancer,
        certs: Certs) -> None:
    """Two replicas of the reference cache behind the reference balancer: its HTTPS check of
    ``/health`` finds both up (both in the rotation), and the client gets the cache's cert."""
    config_yml = yaml.safe_dump(cache_config(
        upstreams=["https://127.0.0.1:9"], host="https://cache", secret="balancer-test"))
    files = {"/config.yml": (config_yml.encode(), 0o444),
             "/run/secrets/cache.cert.pem": (certs.cache.chain_pem, 0o444),
             "/run/secrets/cache.key.pem": (certs.cache.key_pem, 0o444),
             "/run/secrets/dtr.cert.pem": (certs.ca.cert_pem, 0o444)}
    for i in (1, 2):
        replica = client.containers.create(
            cache_image, name=f"{net.name}-cache{i}", labels=net.label, detach=True,
            network=net.name, networking_config={
                net.name: client.api.create_endpoint_config(aliases=[f"cache{i}"])})
        replica.put_archive("/", balancer._tar(files))
        replica.start()
    config = balancer.render("passthrough", ["cache1:443", "cache2:443"])
    container, port = start_balancer(config)
    deadline = time.monotonic() + 40
    log = ""
    while time.monotonic() < deadline:
        log = balancer.logs(client, container.name)
        passed = [line for line in log.splitlines() if "Layer7 check passed" in line]
        if all(any(f"replica{i} succeeded" in line for line in passed) for i in (1, 2)):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"haproxy never found both caches healthy:\n{log[-3000:]}")
    answer = get_until(port, lambda a: a.status in (200, 401), uri="/v2/")
    assert_backend_certificate(answer, certs)


def test_passthrough_refuses_a_key(certs: Certs, client: docker.DockerClient) -> None:
    config = balancer.render("passthrough", ["10.0.0.1:443"])
    with pytest.raises(ValueError, match="no certificate or key"):
        balancer.start(client, config, name="never-created", network="none",
                       pem=certs.cache.key_pem)
