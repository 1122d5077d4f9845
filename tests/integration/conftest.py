"""Fixtures for the cache's integration tests: real distribution registries and real caches
as local processes on loopback, with TLS from the test PKI. Everything started is stopped."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dtr_cache_check.pki import CertificateAuthority, Issued, trust_context
from dtr_cache_check.probes.registry import RegistryClient
from dtr_cache_check.reference.dtr import CACHE_SETTING_FIELD
from dtr_cache_check.testkit.local import (
    LocalServer,
    start_cache,
    start_dtr,
    start_registry,
    wait_ready,
)
from dtr_cache_check.testkit.threaded_app import ThreadedApp
from tests.integration.serverkit import CACHES, Stack, TestPKI, wait_debug_ready


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> TestPKI:
    root = CertificateAuthority.create("Integration Root CA")
    leaf = root.intermediate().issue_server(["localhost", "127.0.0.1"])
    ca_path = root.write_cert(tmp_path_factory.mktemp("ca") / "ca.pem")
    return TestPKI(root, leaf, ca_path)


@pytest.fixture
def servers() -> Iterator[list[LocalServer]]:
    """Every server a test starts goes here and is stopped at teardown, pass or fail."""
    started: list[LocalServer] = []
    yield started
    for server in reversed(started):
        server.stop()


@pytest.fixture
def registry(tmp_path, pki, servers) -> LocalServer:
    server = start_registry(tmp_path / "upstream", pki.leaf)
    servers.append(server)
    wait_ready(server, pki.context)
    return server


@pytest.fixture(params=["2", "1"], ids=["2-servers", "1-process"])
def processes(request) -> str:
    """For the tests that must hold in both shapes of the cache: two server processes that
    forward misses to a fetcher process, and everything in one process."""
    return request.param


@pytest.fixture
def make_cache(tmp_path, pki, servers) -> Callable[..., LocalServer]:
    """A cache on loopback; two server processes and a fetcher unless ``processes`` says
    otherwise (fixed, not "auto", so the tests do not depend on the machine's CPU count).
    ``debug=True``: with a debug listener (``http.debug.addr``) at ``server.extra["debug_url"]``
    (plain HTTP), where ``/metrics`` and the detailed ``/health`` are."""
    counter = iter(range(100))

    def make(upstreams: list[str], *, cas: list[Path] | None = None, wait: bool = True,
             tls: Issued | None = None, processes: str = "2", debug: bool = False,
             **kwargs) -> LocalServer:
        from dtr_cache_check.testkit.local import free_port

        kwargs.setdefault("name", f"cache{next(counter)}")
        kwargs["env"] = {"DTRCACHE_PROCESSES": processes, **kwargs.get("env", {})}
        debug_port = free_port() if debug else None
        if debug_port:  # http.debug.addr, as an override: /metrics, the detailed /health
            kwargs["env"]["REGISTRY_HTTP_DEBUG_ADDR"] = f"127.0.0.1:{debug_port}"
        server = start_cache(tmp_path / "caches", tls or pki.leaf, upstreams=upstreams,
                             cas=[pki.ca_path] if cas is None else cas, **kwargs)
        if debug_port:
            server.extra["debug_url"] = f"http://127.0.0.1:{debug_port}"
        servers.append(server)
        if wait:
            wait_ready(server, pki.context, path="/health")
            if debug_port:
                wait_debug_ready(server)
        return server

    return make


@pytest.fixture
def push(pki) -> Callable[..., tuple[str, bytes]]:
    """Push ``size`` random bytes as a blob of ``repo`` to a registry; return (digest, data)."""

    def do(registry: LocalServer, size: int = 256 * 1024, repo: str = "team/app"):
        data = os.urandom(size)
        with RegistryClient(registry.url, verify=pki.context) as client:
            return client.push_blob(repo, data), data

    return do


@pytest.fixture
def client(pki) -> Callable[[LocalServer], RegistryClient]:
    made: list[RegistryClient] = []

    def make(server: LocalServer, **kwargs) -> RegistryClient:
        c = RegistryClient(server.url, verify=pki.context, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


# -- the DTR stand-in stack: registry <- stand-in <- cache, as local processes ----------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("dtr-standin")
    root = CertificateAuthority.create()
    inter = root.intermediate()
    ca_file = root.write_cert(workdir / "ca.pem")
    verify = trust_context(root)
    servers: list[LocalServer] = []
    built: Stack | None = None
    try:
        registry = start_registry(workdir, None)
        servers.append(registry)
        dtr_tls = inter.issue_server(["127.0.0.1", "localhost"])
        dtr = start_dtr(workdir, dtr_tls,
                        ca_pem_path=ca_file, registry_url=registry.url, cache_cas=[ca_file])
        servers.append(dtr)
        wait_ready(registry, False)
        wait_ready(dtr, verify)
        # The cache fetches DTR's keys at start: start it once the stand-in answers.
        cache = start_cache(workdir, inter.issue_server(["127.0.0.1"]), upstreams=[dtr.url],
                            cas=[ca_file])
        servers.append(cache)
        wait_ready(cache, verify)
        built = Stack(workdir, root, ca_file, registry, dtr, cache, verify, dtr_tls)
        yield built
    finally:
        if built is not None:
            built.dtr.stop()  # the restart test replaces the stand-in's process
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def registered(stack: Stack) -> dict:
    """The cache registered by admin, and alice pointing her settings at it."""
    with stack.api("admin") as admin:
        answer = admin.post(CACHES, json={"name": "region-test", "host": stack.cache.url})
        assert answer.status_code == 201, answer.text
        cache = answer.json()
    with stack.api("alice") as alice:
        settings = alice.post("/api/v0/accounts/alice/settings",
                              json={CACHE_SETTING_FIELD: cache["id"]})
        assert settings.status_code == 200, settings.text
    return cache


# -- small fake upstreams, and caches with extra downstream options --------------------------


@pytest.fixture
def fake_upstream(pki) -> Iterator[Callable[..., ThreadedApp]]:
    """``make(app, plain_too=False)``: serve an aiohttp app over HTTPS (the test PKI's leaf)
    from a thread; stopped at teardown."""
    started: list[ThreadedApp] = []

    def make(app, *, plain_too: bool = False) -> ThreadedApp:
        server = ThreadedApp(app, pki.leaf, plain_too=plain_too).start()
        started.append(server)
        return server

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture
def cache_with_options(tmp_path, pki, servers) -> Callable[..., LocalServer]:
    """A cache like ``make_cache``'s whose downstream options also hold ``options``
    (e.g. ``{"minrate": 100, "fetchtimeout": "2s"}``)."""
    import sys

    from dtr_cache_check.reference.seed_templates import cache_config, write_yaml
    from dtr_cache_check.testkit.local import REPO_ROOT, _spawn, free_port

    counter = iter(range(100))

    def make(upstreams: list[str], options: dict, *, processes: str = "2") -> LocalServer:
        name = f"optcache{next(counter)}"
        workdir = tmp_path / "optcaches"
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        cert, key = pki.leaf.write(workdir / f"{name}.cert.pem", workdir / f"{name}.key.pem")
        config = cache_config(
            upstreams=upstreams, cas=[str(pki.ca_path)], blobttl=None,
            addr=f"127.0.0.1:{port}", host=f"https://127.0.0.1:{port}", certificate=str(cert),
            key=str(key), rootdirectory=str(workdir / f"{name}-data"))
        config["middleware"]["registry"][0]["options"].update(options)
        config_path = write_yaml(workdir / f"{name}.yml", config)
        server = _spawn(name, [sys.executable, "-m", "cache_under_test", str(config_path)],
                        workdir, f"https://127.0.0.1:{port}", config_path,
                        env={"PYTHONPATH": str(REPO_ROOT), "DTRCACHE_PROCESSES": processes})
        server.extra["storage"] = workdir / f"{name}-data"
        servers.append(server)
        wait_ready(server, pki.context, path="/health")
        return server

    return make
