"""Upstream answers that must not hold a digest hostage: a trickle (``minrate``), a transfer
that never ends (``fetchtimeout``), and a token-less fetch refused upstream, whose refusal is
for its own client only and never for the token holders who came meanwhile."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time

import httpx
import pytest
from aiohttp import web

from cache_under_test.blobtoken import (
    JWKS_PATH,
    TOKEN_PARAM,
    KeySet,
    SigningKey,
    TokenError,
    jwks,
)
from cache_under_test.config import ConfigError, validate
from dtr_cache_check.reference.seed_templates import cache_config

from .serverkit import wait_for_event

API = {"Docker-Distribution-API-Version": "registry/2.0"}
OPTS = "middleware.registry[downstream].options"


def _blob(size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def _not_found(request: web.Request) -> web.Response:
    return web.json_response({"errors": [{"code": "NOT_FOUND", "message": "no"}]}, status=404,
                             headers=API)


def _trickling_upstream(digest: str, data: bytes, *, drip_s: float = 0.2):
    """An upstream whose first GET of ``digest`` sends its headers, then one byte every
    ``drip_s``; every later GET sends the blob at once. ``gets`` counts the GETs."""
    state = {"gets": 0}

    async def handle(request: web.Request) -> web.StreamResponse:
        if not request.path.endswith(f"/blobs/{digest}"):
            return _not_found(request)
        headers = {**API, "Docker-Content-Digest": digest}
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(data))})
        state["gets"] += 1
        if state["gets"] > 1:
            return web.Response(body=data, headers=headers)
        response = web.StreamResponse(headers=headers)
        response.content_length = len(data)
        await response.prepare(request)
        try:
            for i in range(len(data)):
                await response.write(data[i:i + 1])
                await asyncio.sleep(drip_s)
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app, state


def _get(pki, url: str, deadline: float = 40.0) -> tuple[int | str, bytes, float]:
    """(status, body, seconds) of a GET. A transfer broken off mid-body is "broken"; one still
    running after ``deadline`` seconds (httpx's timeouts are per read: a trickle never trips
    them) is given up as "timed out"."""
    began = time.monotonic()
    body = bytearray()
    with httpx.Client(verify=pki.context, timeout=deadline) as http:
        try:
            with http.stream("GET", url) as answer:
                for chunk in answer.iter_bytes():
                    body += chunk
                    if time.monotonic() - began > deadline:
                        return "timed out", bytes(body), time.monotonic() - began
        except httpx.TimeoutException:
            return "timed out", bytes(body), time.monotonic() - began
        except httpx.TransportError:
            return "broken", bytes(body), time.monotonic() - began
    return answer.status_code, bytes(body), time.monotonic() - began


# -- minrate and fetchtimeout -----------------------------------------------------------------


@pytest.mark.integration
def test_a_trickling_upstream_is_cut_off_by_minrate(pki, fake_upstream, cache_with_options):
    digest, data = _blob(2000)
    app, state = _trickling_upstream(digest, data)
    server = fake_upstream(app)
    cache = cache_with_options([server.url], {"minrate": 100})
    url = f"{cache.url}/v2/team/app/blobs/{digest}"
    status, _, seconds = _get(pki, url, deadline=25)
    assert status in ("broken", 502), status   # a failed fill, never a complete body
    assert seconds < 25, f"the trickle held the client {seconds:.0f} s"
    slow = wait_for_event(cache, "upstream.error", upstream=server.url, kind="too slow")
    assert "minrate" in slow[0].get("detail")
    wait_for_event(cache, "blob.fill_failed", digest=digest)
    # The digest is free again: the next client starts a new fetch and gets the blob.
    status, body, _ = _get(pki, url)
    assert status == 200 and body == data
    assert state["gets"] == 2


@pytest.mark.integration
def test_fetchtimeout_bounds_a_whole_transfer(pki, fake_upstream, cache_with_options):
    digest, data = _blob(2000)
    app, _ = _trickling_upstream(digest, data)
    server = fake_upstream(app)
    cache = cache_with_options([server.url], {"minrate": 0, "fetchtimeout": "2s"},
                               processes="1")
    url = f"{cache.url}/v2/team/app/blobs/{digest}"
    status, _, seconds = _get(pki, url, deadline=10)
    assert status in ("broken", 502), status
    assert seconds < 10, f"fetchtimeout 2s, yet the client waited {seconds:.0f} s"
    slow = wait_for_event(cache, "upstream.error", upstream=server.url, kind="too slow")
    assert "fetchtimeout" in slow[0].get("detail")
    status, body, _ = _get(pki, url)
    assert status == 200 and body == data


@pytest.mark.integration
def test_fetchtimeout_bounds_an_upstream_that_never_answers(pki, fake_upstream,
                                                           cache_with_options):
    async def handle(request: web.Request) -> web.StreamResponse:
        if "/blobs/" in request.path:
            await asyncio.sleep(30)
        return _not_found(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = fake_upstream(app)
    cache = cache_with_options([server.url], {"fetchtimeout": "2s"}, processes="1")
    status, _, seconds = _get(pki, f"{cache.url}/v2/team/app/blobs/sha256:{'5' * 64}",
                           deadline=10)
    assert status == 502 and seconds < 10, (status, seconds)
    wait_for_event(cache, "upstream.error", upstream=server.url, kind="too slow")


@pytest.mark.parametrize(("value", "key", "words"), [
    ({"minrate": "fast"}, "minrate", "not a rate"),
    ({"minrate": -5}, "minrate", "not a rate"),
    ({"minrate": "10s"}, "minrate", "not a rate"),
    ({"fetchtimeout": "soon"}, "fetchtimeout", "not a duration"),
    ({"fetchtimeout": 30}, "fetchtimeout", "no unit"),
    ({"fetchtimeout": "0s"}, "fetchtimeout", "positive"),
    ({"minrat": 100}, "minrat", "unknown option"),
])
def test_minrate_and_fetchtimeout_errors_name_the_key(value, key, words):
    raw = cache_config(upstreams=["https://dtr.example.com"], cas=[], blobttl=None)
    raw["http"].pop("tls")
    raw["middleware"]["registry"][0]["options"].update(value)
    with pytest.raises(ConfigError) as info:
        validate(raw)
    assert any(p.startswith(f"{OPTS}.{key}:") and words in p for p in info.value.problems), \
        info.value.problems


@pytest.mark.parametrize(("options", "rate", "timeout"), [
    ({}, 1024.0, 3600.0),  # a fill's default deadline: an hour
    ({"minrate": "64KiB", "fetchtimeout": "30m"}, 65536.0, 1800.0),
    ({"minrate": "1MB/s"}, 1e6, 3600.0),
    ({"minrate": 0}, None, 3600.0),
])
def test_minrate_and_fetchtimeout_values(options, rate, timeout):
    raw = cache_config(upstreams=["https://dtr.example.com"], cas=[], blobttl=None)
    raw["http"].pop("tls")
    raw["middleware"]["registry"][0]["options"].update(options)
    config = validate(raw)
    assert (config.minrate, config.fetchtimeout) == (rate, timeout)


# -- a refused token-less fetch is not shared -------------------------------------------------


def _refusing_upstream(digest: str, data: bytes, key: SigningKey, refuse_after: float):
    """A DTR-like upstream: blob requests with a valid signed token, or ``Basic good``, get
    the blob; anonymous ones get 401, after ``refuse_after`` seconds."""
    keys = KeySet(jwks(key))

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == JWKS_PATH:
            return web.json_response(jwks(key))
        if not request.path.endswith(f"/blobs/{digest}"):
            return _not_found(request)
        token = request.query.get(TOKEN_PARAM)
        allowed = request.headers.get("Authorization") == "Basic Z29vZDpnb29k"
        if token:
            try:
                keys.verify(token, repository="team/app", digest=digest)
                allowed = True
            except TokenError:
                allowed = False
        if not allowed:
            await asyncio.sleep(refuse_after)
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                status=401, headers={**API, "WWW-Authenticate": 'Basic realm="fake"'})
        headers = {**API, "Docker-Content-Digest": digest}
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(data))})
        return web.Response(body=data, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@pytest.mark.integration
def test_an_anonymous_refusal_is_not_shared_with_token_holders(pki, fake_upstream, make_cache,
                                                               processes):
    digest, data = _blob(300 * 1024)
    key = SigningKey.generate()
    server = fake_upstream(_refusing_upstream(digest, data, key, refuse_after=1.5))
    cache = make_cache([server.url], processes=processes)
    wait_for_event(cache, "keys.fetched")
    url = f"{cache.url}/v2/team/app/blobs/{digest}"
    results: dict[str, tuple[int | str, bytes]] = {}

    def pull(name: str, **kwargs) -> None:
        with httpx.Client(verify=pki.context, timeout=30) as http:
            try:
                answer = http.get(url, **kwargs)
                results[name] = (answer.status_code, answer.content)
            except httpx.TransportError as exc:
                results[name] = (f"broken: {exc!r}", b"")

    anonymous = threading.Thread(target=pull, args=("anonymous",))
    anonymous.start()
    time.sleep(0.4)  # the anonymous fill is waiting for its 401 now
    others = [threading.Thread(target=pull, args=(f"token-{i}",), kwargs={"params": {
        TOKEN_PARAM: key.sign(user=f"user{i}", repository="team/app", digest=digest)}})
        for i in range(4)]
    others += [threading.Thread(target=pull, args=(f"basic-{i}",),
                                kwargs={"auth": ("good", "good")}) for i in range(2)]
    for thread in others:
        thread.start()
    for thread in [anonymous, *others]:
        thread.join(40)
    assert results.pop("anonymous")[0] == 401
    assert len(results) == 6
    wrong = {name: (status, body[:100]) for name, (status, body) in sorted(results.items())
             if status != 200 or body != data}
    assert wrong == {}, "a refusal for the anonymous client reached clients it was not for"
