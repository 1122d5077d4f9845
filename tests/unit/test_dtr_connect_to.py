"""The stand-in's ``connect_to``: the registration probe connects to the mapped address but
verifies TLS for the registered host; the config key is validated strictly."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dtr_cache_check.pki import CertificateAuthority, Issued, server_context, trust_context
from dtr_cache_check.reference.dtr.caches import CacheRefused, connect_target, probe
from dtr_cache_check.reference.dtr.config import ConfigError, parse_config

ROOT = CertificateAuthority.create("connect_to Test Root CA")
CA = ROOT.intermediate("connect_to Test Intermediate CA")


@dataclass
class Seen:
    """What the TLS server saw: SNI names and Host headers."""

    sni: list[str | None] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


async def _with_server(issued: Issued, body: Callable[[int, Seen], Awaitable[Any]]) -> Any:
    """Serve ``GET /v2/`` (401 with the registry header) over TLS as ``issued`` on 127.0.0.1
    and run ``body(port, seen)``."""
    seen = Seen()

    async def v2(request: web.Request) -> web.Response:
        seen.hosts.append(request.headers.get("Host", ""))
        return web.json_response({"errors": []}, status=401,
                                 headers={"Docker-Distribution-API-Version": "registry/2.0"})

    ctx = server_context(issued)
    ctx.sni_callback = lambda _sock, name, _ctx: seen.sni.append(name)
    app = web.Application()
    app.router.add_get("/v2/", v2)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        await web.SockSite(runner, sock, ssl_context=ctx).start()
        return await body(sock.getsockname()[1], seen)
    finally:
        await runner.cleanup()
        sock.close()


def _client() -> ssl.SSLContext:
    return trust_context(ROOT)


def _seen(body: Callable[[int, Seen], Awaitable[None]]) -> Callable[[int, Seen], Awaitable[Seen]]:
    """``body`` returning what the server saw."""
    async def run(port: int, seen: Seen) -> Seen:
        await body(port, seen)
        return seen
    return run


def test_probe_connects_to_target_and_verifies_the_registered_name() -> None:
    async def body(port: int, seen: Seen) -> None:
        host = f"https://cache.example:{port}"
        await probe(host, _client(), {f"cache.example:{port}": f"127.0.0.1:{port}"})

    seen = asyncio.run(_with_server(CA.issue_server(["cache.example"]), _seen(body)))
    assert seen.sni == ["cache.example"]
    assert seen.hosts and seen.hosts[0].startswith("cache.example:")


def test_probe_refuses_a_certificate_without_the_registered_name() -> None:
    async def body(port: int, seen: Seen) -> CacheRefused:
        with pytest.raises(CacheRefused) as err:
            await probe(f"https://cache.example:{port}", _client(),
                        {f"cache.example:{port}": f"127.0.0.1:{port}"})
        return err.value

    refused = asyncio.run(_with_server(CA.issue_server(["other.example"]), body))
    assert refused.kind == "hostname mismatch", refused
    message = str(refused)
    assert "not valid for cache.example" in message, message
    assert "per connect_to" in message and "127.0.0.1:" in message, message


def test_ip_registered_cache_is_verified_for_the_ip_not_the_target_name() -> None:
    """The reference deployment: registered as https://127.0.0.1:<published port>, reached by
    name. aiohttp never resolves IP literals, so this is what a resolver-based mapping misses."""
    published = 18443  # never connected to: only the name the cache is registered under

    async def ok(port: int, seen: Seen) -> None:
        await probe(f"https://127.0.0.1:{published}", _client(),
                    {f"127.0.0.1:{published}": f"localhost:{port}"})

    seen = asyncio.run(_with_server(CA.issue_server(["127.0.0.1"]), _seen(ok)))
    assert seen.sni == [None]  # no SNI for an IP address, as the check is against the IP SAN
    assert seen.hosts == [f"127.0.0.1:{published}"]

    async def bad(port: int, seen: Seen) -> CacheRefused:
        with pytest.raises(CacheRefused) as err:
            await probe(f"https://127.0.0.1:{published}", _client(),
                        {f"127.0.0.1:{published}": f"localhost:{port}"})
        return err.value

    refused = asyncio.run(_with_server(CA.issue_server(["localhost"]), bad))
    assert refused.kind == "hostname mismatch", refused


def test_unmapped_hosts_connect_directly() -> None:
    async def body(port: int, seen: Seen) -> None:
        await probe(f"https://127.0.0.1:{port}", _client(), {"cache.example:443": "127.0.0.1:1"})

    seen = asyncio.run(_with_server(CA.issue_server(["127.0.0.1"]), _seen(body)))
    assert len(seen.hosts) == 1


def test_connect_target_normalizes_the_registered_host() -> None:
    mapping = {"cache.example:443": "cache:443", "[::1]:8443": "cache:8443"}
    assert connect_target("https://CACHE.example", mapping) == "cache:443"
    assert connect_target("https://cache.example:443", mapping) == "cache:443"
    assert connect_target("https://[::1]:8443", mapping) == "cache:8443"
    assert connect_target("https://cache.example:8443", mapping) is None
    assert connect_target("https://cache.example", None) is None


@pytest.fixture
def raw(tmp_path: Path) -> dict[str, Any]:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    return {
        "listen": "127.0.0.1:8443",
        "tls": {"certificate": str(tmp_path / "cert.pem"), "key": str(tmp_path / "key.pem")},
        "ca": str(tmp_path / "ca.pem"),
        "registry": "http://127.0.0.1:5000",
        "public_url": "https://127.0.0.1:8443",
        "state_dir": str(tmp_path / "state"),
        "signing_key": str(tmp_path / "state" / "signing-key.pem"),
    }


def test_config_connect_to_is_optional_and_normalized(raw: dict[str, Any]) -> None:
    assert parse_config(raw).connect_to == ()
    raw["connect_to"] = {"127.0.0.1:8444": "cache:443", "Cache.Example:443": "[::1]:443"}
    assert dict(parse_config(raw).connect_to) == {
        "127.0.0.1:8444": "cache:443", "cache.example:443": "[::1]:443"}


@pytest.mark.parametrize(("value", "expected"), [
    (["127.0.0.1:8444"], "connect_to: expected a mapping"),
    ({"127.0.0.1": "cache:443"}, "connect_to['127.0.0.1']: the key must be 'host:port'"),
    ({"https://cache:443": "cache:443"}, "connect_to['https://cache:443']: the key"),
    ({"cache.example:0": "cache:443"}, "connect_to['cache.example:0']: the key"),
    ({"cache.example:443": "cache"}, "connect_to['cache.example:443']: 'cache' is not"),
    ({"cache.example:443": "cache:70000"}, "connect_to['cache.example:443']: 'cache:70000'"),
    ({"cache.example:443": 5}, "connect_to['cache.example:443']: 5 is not"),
    ({"a:443": "b:443", "A:443": "c:443"}, "connect_to['A:443']: a:443 is mapped twice"),
])
def test_config_connect_to_problems_name_the_key(raw: dict[str, Any], value: Any,
                                                 expected: str) -> None:
    raw["connect_to"] = value
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems
