"""Redirects the cache's upstream client meets: credentials stay on their origin, https never
falls back to http, a failed hop fails over, and a redirect back to this cache is not followed
(its token is verified here and the blob fetched from the upstream with it)."""

from __future__ import annotations

import os

import httpx
import pytest
from aiohttp import web

from dtr_cache_check.probes.logs import events
from dtr_cache_check.probes.registry import RegistryClient, verify_digest
from dtr_cache_check.reference.seed_templates import cache_config

from .serverkit import Stack, upstream_gets, wait_for_event

API = {"Docker-Distribution-API-Version": "registry/2.0"}


# -- the origin comparison (no servers) -------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "same"), [
    ("https://dtr", "https://dtr:443", True),
    ("https://dtr:443/v2/x", "https://DTR./v2/y", True),
    ("http://dtr", "http://dtr:80", True),
    ("https://dtr", "http://dtr", False),           # scheme changes, default ports differ
    ("https://dtr:443", "http://dtr:443", False),   # same host:port, scheme changes
    ("http://dtr:8080", "https://dtr:8080", False),
    ("https://dtr", "https://dtr:8443", False),
    ("https://dtr", "https://storage.example.com", False),
    ("https://[::1]:443", "https://[0:0:0:0:0:0:0:1]", False),  # written differently: no match
    ("https://dtr", "ftp://dtr", False),
])
def test_same_origin_compares_scheme_host_and_effective_port(a, b, same):
    from cache_under_test.origins import same_origin

    assert same_origin(a, b) is same
    assert same_origin(b, a) is same


def test_own_urls_come_from_http_host_and_the_listening_address():
    from cache_under_test.config import validate
    from cache_under_test.upstream import UpstreamPool

    raw = cache_config(upstreams=["https://dtr.example.com"], cas=[], blobttl=None,
                       addr="0.0.0.0:8443", host="https://cache.example.com")
    raw["http"].pop("tls")
    config = validate(raw)
    pool = UpstreamPool(config.upstreams, None, own_urls=config.own_urls)
    assert pool.urls == ["https://dtr.example.com"]
    assert pool.own.reaches("https://CACHE.example.com:443/v2/a/blobs/sha256:1?x=1")
    assert pool.own.reaches("https://127.0.0.1:8443/v2/")       # listening on every address
    assert pool.own.reaches("https://localhost:8443/v2/")
    assert not pool.own.reaches("https://127.0.0.1:9443/v2/")
    assert not pool.own.reaches("https://dtr.example.com/v2/")
    assert not pool.own.reaches("https://cache.example.com:8443/v2/")  # a name, another port
    explicit = UpstreamPool(["https://dtr"], None, own_urls=["https://10.1.2.3:443"])
    assert explicit.own.reaches("https://10.1.2.3/v2/") and not explicit.own.reaches("http://10.9.9.9/")


# -- https -> http: never followed, credentials never in clear --------------------------------


@pytest.mark.integration
def test_https_to_http_redirect_is_not_followed_and_credentials_stay(
        registry, push, pki, make_cache, fake_upstream):
    blobs = dict(push(registry, size=64 * 1024) for _ in range(3))
    plain_requests: list[str | None] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        digest = request.path.rsplit("/", 1)[-1]
        if "/blobs/" not in request.path or digest not in blobs:
            return web.json_response({"errors": []}, status=404, headers=API)
        if request.secure:  # the same host:port, but http
            return web.Response(status=307, headers={
                **API, "Location": f"{server.plain_url}{request.path_qs}"})
        plain_requests.append(request.headers.get("Authorization"))
        return web.Response(body=blobs[digest], headers=API)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = fake_upstream(app, plain_too=True)
    cache = make_cache([server.url, registry.url], processes="1")
    with httpx.Client(verify=pki.context, timeout=30) as http:
        for digest, data in blobs.items():  # round-robin: some of them try the fake first
            answer = http.get(f"{cache.url}/v2/team/app/blobs/{digest}",
                              auth=("alice", "s3cret"))
            assert answer.status_code == 200, answer.text
            assert answer.content == data
    assert plain_requests == [], f"followed https -> http; Authorization sent: {plain_requests}"
    refused = events(cache.log_lines(), "upstream.error", upstream=server.url)
    assert refused and {e.get("kind") for e in refused} == {"insecure redirect"}
    assert "s3cret" not in cache.log_path.read_text()


# -- a redirect hop that fails is a failed upstream -------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("hop_status", [500, 403])
def test_a_failed_redirect_hop_fails_over_to_the_next_upstream(
        registry, push, pki, make_cache, fake_upstream, hop_status):
    blobs = dict(push(registry, size=32 * 1024) for _ in range(3))

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/storage/"):  # the redirect's target: broken
            return web.Response(status=hop_status, text="storage says no")
        if "/blobs/" in request.path:
            return web.Response(status=307, headers={
                **API, "Location": f"/storage/{request.path.rsplit('/', 1)[-1]}"})
        return web.json_response({"errors": []}, status=404, headers=API)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = fake_upstream(app)
    cache = make_cache([server.url, registry.url], processes="1")
    with httpx.Client(verify=pki.context, timeout=30) as http:
        for digest, data in blobs.items():  # round-robin: some of them try the fake first
            answer = http.get(f"{cache.url}/v2/team/app/blobs/{digest}")
            assert answer.status_code == 200, answer.text
            assert answer.content == data
    failed = events(cache.log_lines(), "upstream.error", upstream=server.url)
    assert failed and all(e.get("kind") == f"http {hop_status}" for e in failed)
    assert all("redirect hop" in e.get("detail") for e in failed)


# -- a user pointed at this cache pulls through it without a token ----------------------------


@pytest.mark.integration
def test_pull_through_by_a_user_pointed_at_this_cache_is_served(stack: Stack,
                                                                registered: dict) -> None:
    data = os.urandom(200 * 1024)
    with stack.client("alice") as alice:
        digest = alice.push_blob("alice/app", data)
    # Through the cache as a pull-through mirror: the cache relays DTR's bearer challenge, the
    # client gets a token from DTR and asks the cache again with it. DTR answers the cache's
    # token-less GET with a signed 307 to alice's cache: this one.
    with RegistryClient(stack.cache.url, verify=stack.verify, username="alice",
                        password=stack.password("alice"), timeout=15) as through:
        first = through.get_blob("alice/app", digest)
        assert first.status_code == 200, first.text
        assert verify_digest(first.content, digest)
        assert first.elapsed.total_seconds() < 10
        second = through.get_blob("alice/app", digest)
        assert second.status_code == 200 and verify_digest(second.content, digest)
        assert second.headers["x-cache"] == "HIT"
    wait_for_event(stack.cache, "upstream.own_redirect", digest=digest)
    assert events(stack.dtr.log_lines(), "dtr.redirect", user="alice", digest=digest)
    assert events(stack.dtr.log_lines(), "dtr.signed_blob", user="alice", digest=digest)
    assert upstream_gets(stack.registry, "alice/app", digest) == 1
    assert not events(stack.cache.log_lines(), "blob.join", digest=digest)


@pytest.mark.integration
def test_a_redirect_back_here_with_a_bad_token_is_an_upstream_error(
        pki, make_cache, fake_upstream):
    digest = "sha256:" + "4" * 64
    cache_url: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        if "/blobs/" in request.path:  # "DTR" sends the cache to itself, with a forged token
            return web.Response(status=307, headers={
                **API, "Location": f"{cache_url[0]}{request.path}?dtr_cache_token=a.b.c"})
        return web.json_response({"errors": []}, status=404, headers=API)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = fake_upstream(app)
    cache = make_cache([server.url], processes="1")
    cache_url.append(cache.url)
    with httpx.Client(verify=pki.context, timeout=15) as http:
        answer = http.get(f"{cache.url}/v2/team/app/blobs/{digest}",
                          headers={"Authorization": "Bearer x"})
    assert answer.status_code == 502
    failed = events(cache.log_lines(), "upstream.error", upstream=server.url)
    assert failed and failed[-1].get("kind") == "redirect to this cache"
