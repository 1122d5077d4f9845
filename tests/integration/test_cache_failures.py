"""What goes wrong upstream never becomes a cached blob, and is logged with its class."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from dtr_cache_check.pki import CertificateAuthority, server_context
from dtr_cache_check.probes.logs import events
from dtr_cache_check.probes.registry import verify_digest
from dtr_cache_check.testkit.local import free_port, start_registry, wait_ready
from dtr_cache_check.testkit.netproxy import TcpProxy

from .serverkit import stored_files, upstream_gets, wait_for_event

pytestmark = pytest.mark.integration


def refused(pki, url: str) -> bool:
    """A failed fill reaches the client as a registry error if it failed before the answer
    started (a 502), else as a transfer broken off: never as a complete, wrong body."""
    with httpx.Client(verify=pki.context) as http:
        try:
            answer = http.get(url)
        except httpx.TransportError:
            return True
    return (answer.status_code, answer.json()["errors"][0]["code"]) == (502, "UNAVAILABLE")


def blob_files(cache) -> list:
    return [p for p in stored_files(cache) if p.name == "data" or "_cache_uploads" in str(p)]


def test_upstream_killed_mid_stream_caches_nothing(tmp_path, registry, make_cache, push, pki,
                                                   servers, processes):
    # Big enough that the kernel's socket buffers cannot hold what the registry still had to
    # send when it dies.
    size = 32 * 1024 * 1024
    digest, _ = push(registry, size=size)
    with TcpProxy("127.0.0.1", registry.port, rate=8 * 1024 * 1024) as link:
        cache = make_cache([f"https://127.0.0.1:{link.port}"], processes=processes)
        url = f"{cache.url}/v2/team/app/blobs/{digest}"
        received = 0
        with httpx.Client(verify=pki.context, timeout=30) as http, \
                pytest.raises(httpx.TransportError), http.stream("GET", url) as r:
            assert r.status_code == 200
            for chunk in r.iter_bytes():
                received += len(chunk)
                if received > 256 * 1024 and registry.alive():
                    registry.kill()  # the upstream dies mid-body
        assert received < size
        wait_for_event(cache, "blob.fill_failed", digest=digest)
    assert blob_files(cache) == []
    # The upstream comes back (same port, same storage): the next request fetches again.
    revived = start_registry(registry.workdir, pki.leaf, port=registry.port)
    servers.append(revived)
    wait_ready(revived, pki.context)
    cache2 = make_cache([registry.url], storage=cache.extra["storage"])
    with httpx.Client(verify=pki.context) as http:
        again = http.get(f"{cache2.url}/v2/team/app/blobs/{digest}")
    assert again.headers["x-cache"] == "MISS" and verify_digest(again.content, digest)


def test_corrupt_upstream_body_is_never_published(registry, make_cache, push, pki, processes):
    digest, data = push(registry, size=512 * 1024)
    hexpart = digest.split(":")[1]
    stored = next((registry.workdir / "registry-data").rglob(f"blobs/sha256/*/{hexpart}/data"))
    stored.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # same size, one bit flipped
    cache = make_cache([registry.url], processes=processes)
    assert refused(pki, f"{cache.url}/v2/team/app/blobs/{digest}")
    failed = wait_for_event(cache, "blob.fill_failed", digest=digest)
    assert "does not match" in failed[0].get("error")
    assert blob_files(cache) == []


def test_a_small_corrupt_blob_is_fetched_once_and_never_served(registry, make_cache, push, pki,
                                                               processes):
    # So small that the fill fails before a server process can open the fetcher's file: it
    # must answer with the failure, not ask the fetcher again (a second upstream fetch).
    digest, data = push(registry, size=1024)
    hexpart = digest.split(":")[1]
    stored = next((registry.workdir / "registry-data").rglob(f"blobs/sha256/*/{hexpart}/data"))
    stored.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    cache = make_cache([registry.url], processes=processes)
    assert refused(pki, f"{cache.url}/v2/team/app/blobs/{digest}")
    wait_for_event(cache, "blob.fill_failed", digest=digest)
    assert upstream_gets(registry, "team/app", digest) == 1
    assert blob_files(cache) == []


def test_short_upstream_body_is_never_published(registry, make_cache, push, pki, processes):
    digest, _ = push(registry, size=1024 * 1024)
    with TcpProxy("127.0.0.1", registry.port, cut_after=300 * 1024) as link:
        cache = make_cache([f"https://127.0.0.1:{link.port}"], processes=processes)
        assert refused(pki, f"{cache.url}/v2/team/app/blobs/{digest}")
        wait_for_event(cache, "blob.fill_failed", digest=digest)
    assert blob_files(cache) == []


@pytest.mark.parametrize(("variant", "kind"), [
    ("unknown-ca", "unknown authority"),
    ("wrong-host", "hostname mismatch"),
    ("expired", "expired"),
    ("self-signed", "self-signed"),
])
def test_untrusted_upstream_is_logged_with_its_class(tmp_path, pki, make_cache, servers,
                                                     variant, kind):
    from datetime import UTC, datetime, timedelta

    inter = pki.root.intermediate("Upstream Intermediate")
    leaf = {
        "unknown-ca": lambda: CertificateAuthority.create("Stranger CA").issue_server(
            ["127.0.0.1"]),
        "wrong-host": lambda: inter.issue_server(["dtr.example.com"]),
        "expired": lambda: inter.issue_server(
            ["127.0.0.1"], not_after=datetime.now(UTC) - timedelta(days=1)),
        "self-signed": lambda: CertificateAuthority.self_signed_server(["127.0.0.1"]),
    }[variant]()
    upstream = start_registry(tmp_path / variant, leaf)
    servers.append(upstream)
    wait_ready(upstream, False)
    cache = make_cache([upstream.url])
    with httpx.Client(verify=pki.context) as http:
        r = http.get(f"{cache.url}/v2/team/app/blobs/sha256:{'1' * 64}")
    assert r.status_code == 502
    assert r.json()["errors"][0]["code"] == "UNAVAILABLE"
    errors = events(cache.log_lines(), "upstream.error", upstream=upstream.url)
    assert errors and errors[-1].get("kind") == kind, [e.fields for e in errors]


def test_failover_to_the_second_upstream(registry, make_cache, push, client):
    digests = [push(registry)[0] for _ in range(2)]
    dead = f"https://127.0.0.1:{free_port()}"
    cache = make_cache([dead, registry.url])
    c = client(cache)
    for digest in digests:  # whichever upstream comes first in the round, the blob is served
        r = c.get_blob("team/app", digest)
        assert r.status_code == 200 and verify_digest(r.content, digest)
    errors = events(cache.log_lines(), "upstream.error", upstream=dead)
    assert errors and errors[0].get("kind") == "connection refused"


def test_round_robin_spreads_fetches(tmp_path, registry, make_cache, push, pki, servers):
    # The twin serves the same storage, like two DTR replicas.
    twin = start_registry(tmp_path / "twin", pki.leaf, storage=registry.workdir / "registry-data")
    servers.append(twin)
    wait_ready(twin, pki.context)
    digests = [push(registry, size=1024)[0] for _ in range(4)]
    cache = make_cache([registry.url, twin.url])
    with httpx.Client(verify=pki.context) as http:
        for d in digests:
            assert http.get(f"{cache.url}/v2/team/app/blobs/{d}").status_code == 200
    misses = wait_for_event(cache, "blob.miss", count=len(digests))
    served_by = {line.get("upstream") for line in misses}
    assert served_by == {registry.url, twin.url}
    assert sum(upstream_gets(twin, "team/app", d) for d in digests) >= 1


class _NotARegistry(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html>login page</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


def test_upstream_that_is_not_a_registry_is_an_error(pki, make_cache):
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _NotARegistry)
    ctx: ssl.SSLContext = server_context(pki.leaf)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}"
        cache = make_cache([url])
        digest = "sha256:" + "2" * 64
        with httpx.Client(verify=pki.context) as http:
            r = http.get(f"{cache.url}/v2/team/app/blobs/{digest}")
        assert r.status_code == 502
        error = events(cache.log_lines(), "upstream.error", upstream=url)[-1]
        assert error.get("kind") == "not a registry"
        assert blob_files(cache) == []
    finally:
        server.shutdown()
        server.server_close()
