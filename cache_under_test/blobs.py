"""The blob endpoint: authorize, then hit (local copy) or miss (join or start a fill)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable
from urllib.parse import quote

from aiohttp import web

from . import handoff
from .auth import Authorizer, denied
from .blobtoken import TOKEN_PARAM, TokenError
from .delivery import deliver, ms
from .errors import API_VERSION, API_VERSION_HEADER, oci_error
from .events import Every, emit
from .fill import (
    MAX_ERROR_BODY,
    FillFailed,
    FillRegistry,
    StorageFailed,
    StreamBroken,
    Uncacheable,
    UpstreamRefused,
    backed_up,
    stream_growing,
)
from .forward import MissForwarder, client_address
from .hit import serve_hit
from .limits import RETRY_AFTER
from .metrics import Metrics
from .names import Digest, InvalidDigest, InvalidName, parse_digest, parse_name
from .ranges import blob_response
from .storage import BlobStore
from .stored import Hit, StoredCopies
from .uncached import finish_uncached, relay_verified
from .upstream import (
    AllUpstreamsFailed,
    UpstreamPool,
    UpstreamResponse,
    UpstreamsBusy,
    relay_headers,
)

LIMIT_LOG_INTERVAL = 10.0  # seconds between fills.limit lines while at the bound
_REFUSAL_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 404: "BLOB_UNKNOWN"}


class BlobHandler:
    """GET and HEAD ``/v2/<name>/blobs/<digest>``."""

    def __init__(self, store: BlobStore, pool: UpstreamPool, fills: FillRegistry,
                 auth: Authorizer, metrics: Metrics, test_faults: frozenset[str] = frozenset(),
                 forwarder: MissForwarder | None = None):
        self.faults = test_faults  # TEST-ONLY modes (cache_under_test.faults); empty in real use
        self.forwarder = forwarder  # in a server process: where misses go (the fetcher)
        self.store = store
        self.pool = pool
        self.fills = fills
        self.auth = auth
        self.metrics = metrics
        self.copies = StoredCopies(store, fills, metrics, removes=forwarder is None,
                                   faults=test_faults)
        self._busy_logged = Every(LIMIT_LOG_INTERVAL)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        began = time.monotonic()
        try:
            name = parse_name(request.match_info["name"])
            digest = parse_digest(request.match_info["digest"])
        except InvalidName as exc:
            return oci_error(400, "NAME_INVALID", str(exc))
        except InvalidDigest as exc:
            return oci_error(400, "DIGEST_INVALID", str(exc))
        hit = None
        if self.forwarder is not None:  # a server process: a copy verified in this run, or
            hit = self.copies.open_fresh(digest, name)  # the fetcher's business (it authorizes too)
            if hit is not None and not self.store.verified.check(digest, hit.st):
                hit.close()
                hit = None
            if hit is None:
                return await self.forwarder.forward(request, began)
        try:
            return await self._handle(request, name, digest, hit, began)
        finally:
            if hit is not None:
                hit.close()

    async def _handle(self, request: web.Request, name: str, digest: Digest, hit: Hit | None,
                      began: float) -> web.StreamResponse:
        token = request.query.get(TOKEN_PARAM)
        upstream_path = f"/v2/{name}/blobs/{digest}"
        headers: dict[str, str] = {}
        user = None
        credentials = "anonymous"  # whose upstream answer this client may share (fill.py)
        if token and "skip-token-check" in self.faults and self.store.lookup(digest):
            user = "UNVERIFIED (test fault skip-token-check)"
            upstream_path += f"?{TOKEN_PARAM}={quote(token, safe='')}"
            credentials = "unverified token"
        elif token:
            try:
                grant = await self.auth.verify_token(token, name, str(digest))
            except TokenError as exc:
                denied(exc, repo=name, digest=str(digest), client=client_address(request),
                       status=exc.status)
                self.metrics.errors.labels(kind="auth denied").inc()
                return oci_error(exc.status, exc.code, str(exc))
            user = grant.user
            upstream_path += f"?{TOKEN_PARAM}={quote(token, safe='')}"
            credentials = f"token {grant.token_id}"
        elif "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
            credentials = f"authorization {headers['Authorization']}"

        async def own_copy() -> web.StreamResponse | None:
            """The fetcher's (or the only process's) verified copy, served and closed."""
            mine = await self.copies.open_verified(digest, name)
            if mine is None:
                return None
            try:
                return await self._serve_stored(request, mine, name, user, began, token,
                                                upstream_path, headers)
            finally:
                mine.close()

        if hit is not None:
            return await self._serve_stored(request, hit, name, user, began, token,
                                            upstream_path, headers)
        served = await own_copy()
        if served is not None:
            return served
        if request.method == "HEAD":
            return await self._relay_head(request, upstream_path, headers, digest)
        fill = await self.fills.joinable(digest, credentials)
        if fill is not None and not token and fill.credentials != credentials:
            # Another client's fill: the upstream must allow this client the blob too.
            refusal = await self._ask_upstream(upstream_path, headers, name, digest, request)
            if refusal is not None:
                return refusal
            fill = await self.fills.joinable(digest, credentials)
        joined = fill is not None
        if fill is None and not self.pool.has_room():
            return self._busy(name, digest, request)
        def fetch() -> Awaitable[UpstreamResponse]:
            return self.pool.request("GET", upstream_path, headers, fill=True)

        if fill is None:
            # A fill this request waited on (another client's credentials) may have fetched,
            # verified and published a small blob before the wait ended: serve that copy
            # rather than fetch it again (single flight across different clients' tokens).
            served = await own_copy()
            if served is not None:
                return served
            try:
                fill = self.fills.begin(digest, name, fetch, credentials)
            except StorageFailed as exc:  # logged as storage.error; /health reports it
                return await self._serve_uncached(request, fetch, digest, name, user, began,
                                                  exc)
        fd = fill.open_reader()
        try:
            return await self._serve_fill(request, fill, fd, joined, name, user, began, fetch)
        finally:
            os.close(fd)

    async def _serve_stored(self, request: web.Request, hit: Hit, name: str,
                            user: str | None, began: float, token: str | None,
                            upstream_path: str, headers: dict) -> web.StreamResponse:
        """A hit: without a token, once the upstream allows this client the blob."""
        if "corrupt-bytes" in self.faults:
            body = bytearray(os.pread(hit.fd, hit.st.st_size, 0))
            if body:
                body[-1] ^= 0xFF
            return web.Response(body=bytes(body), headers={"X-Cache": "HIT",
                                "Docker-Content-Digest": str(hit.digest)})
        if not token:
            refusal = await self._ask_upstream(upstream_path, headers, name, hit.digest,
                                               request)
            if refusal is not None:
                return refusal
        return await serve_hit(request, hit, name, user, began, self.metrics)

    def _busy(self, name: str, digest: Digest, request: web.Request) -> web.Response:
        """503 and Retry-After: every upstream has its bound of fills in flight."""
        self.metrics.errors.labels(kind="fills limit").inc()
        if self._busy_logged.due():
            emit("fills.limit", logging.WARNING, max_fills=self.pool.max_fills,
                 upstreams=len(self.pool.urls), digest=str(digest), repo=name,
                 client=client_address(request), action="503 with Retry-After (set "
                 "DTRCACHE_MAX_FILLS to change the bound)")
        return oci_error(503, "UNAVAILABLE", "every upstream is busy with other blobs; "
                         "retry later", headers={"Retry-After": str(RETRY_AFTER)})

    async def _ask_upstream(self, path: str, headers: dict, name: str, digest: Digest,
                            request: web.Request) -> web.Response | None:
        """Without a token, the upstream decides: None if it allows, else its answer."""
        try:
            answer = await self.pool.request("HEAD", path, headers)
        except AllUpstreamsFailed as exc:
            return oci_error(503, "UNAVAILABLE", "cannot authorize: no upstream answered",
                             str(exc))
        try:
            if answer.response.status == 200:
                return None
            denied("upstream refused", repo=name, digest=str(digest),
                   client=client_address(request), status=answer.response.status)
            status = answer.response.status
            challenge = answer.response.headers.get("WWW-Authenticate")
            return oci_error(status, _REFUSAL_CODES.get(status, "DENIED"),
                             f"the upstream refused this request ({status})",
                             headers={"WWW-Authenticate": challenge} if challenge else None)
        finally:
            answer.release()

    async def _relay_head(self, request: web.Request, path: str, headers: dict,
                          digest: Digest) -> web.StreamResponse:
        """A HEAD on a miss: the upstream's answer. When it has the blob, the headers are the
        ones a GET sends (``blob_response``: ETag, Accept-Ranges, a Range's 206 and
        Content-Range), without fetching it."""
        try:
            answer = await self.pool.request("HEAD", path, headers)
        except AllUpstreamsFailed as exc:
            return oci_error(502, "UNAVAILABLE", "no upstream answered", str(exc))
        try:
            length = answer.response.headers.get("Content-Length", "")
            if answer.response.status == 200 and length.isdigit():
                shaped = blob_response(request, str(digest), int(length), "MISS")
                return shaped if isinstance(shaped, web.Response) else shaped[0]
            relayed = relay_headers(answer.response)
            relayed["X-Cache"] = "MISS"
            length = relayed.pop("Content-Length", "")
            response = web.StreamResponse(status=answer.response.status, headers=relayed)
            if length.isdigit():  # the blob's size, though a HEAD sends no body
                response.content_length = int(length)
            return response
        finally:
            answer.release()

    async def _serve_fill(self, request: web.Request, fill, fd: int, joined: bool, name: str,
                          user: str | None, began: float, fetch) -> web.StreamResponse:
        try:
            await asyncio.shield(fill.started)
        except UpstreamRefused as exc:
            denied("upstream refused", repo=name, digest=str(fill.digest),
                   client=client_address(request), status=exc.status)
            return web.Response(status=exc.status, body=exc.body,
                                headers=_error_headers(exc.headers))
        except UpstreamsBusy:
            return self._busy(name, fill.digest, request)
        except AllUpstreamsFailed as exc:
            return oci_error(502, "UNAVAILABLE", "no upstream could provide the blob", str(exc))
        except FillFailed as exc:
            return oci_error(502, "UNAVAILABLE", "upstream fetch failed", str(exc))
        if fill.size is None:  # no Content-Length upstream: wait for the whole blob
            while not fill.done and fill.error is None:
                await fill.wait_change()
            if isinstance(fill.error, Uncacheable):
                return await self._serve_uncached(request, fetch, fill.digest, name, user,
                                                  began, fill.error)
            if fill.error is not None:
                return oci_error(502, "UNAVAILABLE", "upstream fetch failed", str(fill.error))
        size = fill.size
        answer = blob_response(request, str(fill.digest), size, "MISS")
        if isinstance(answer, web.Response):
            return answer  # 416
        response, start, end = answer
        counter = self.metrics.joins if joined else self.metrics.misses
        counter.inc()
        self.metrics.proxy_served("blob", size, hit=False)
        if handoff.wanted(request) and "corrupt-bytes" not in self.faults:
            return await handoff.send_progress(request, fill, str(self.store.path(fill.digest)),
                                               joined, user)
        write = response.write
        if "corrupt-bytes" in self.faults:
            write = _corrupting(response.write, end - start + 1)

        async def send() -> int:
            await response.prepare(request)
            try:
                return await stream_growing(fill, fd, start, end, write, backed_up(request)) \
                    if size else 0
            except StreamBroken as broken:
                if not isinstance(broken.cause, Uncacheable):
                    raise
                _uncached(fill.digest, name, request, broken.cause)
                return broken.sent + await finish_uncached(
                    fetch, fill.digest, size, start + broken.sent, end, write)

        sent = await deliver(request, fill.digest, name, send)
        if sent is None:
            return response
        self.metrics.served_bytes.inc(sent)
        emit("blob.join" if joined else "blob.miss", digest=str(fill.digest), repo=name,
             bytes=sent, size=size, ms=ms(began), upstream=fill.upstream, user=user,
             client=client_address(request))
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _serve_uncached(self, request: web.Request, fetch, digest: Digest, name: str,
                              user: str | None, began: float,
                              reason: Exception) -> web.StreamResponse:
        """The client's answer from the upstream, no copy kept: the storage failed."""
        _uncached(digest, name, request, reason)
        try:
            answer = await fetch()
        except UpstreamsBusy:
            return self._busy(name, digest, request)
        except AllUpstreamsFailed as exc:
            return oci_error(502, "UNAVAILABLE", "no upstream could provide the blob", str(exc))
        try:
            upstream = answer.response
            length = upstream.headers.get("Content-Length", "")
            if upstream.status != 200:
                denied("upstream refused", repo=name, digest=str(digest),
                       client=client_address(request), status=upstream.status)
                return web.Response(status=upstream.status,
                                    body=await upstream.content.read(MAX_ERROR_BODY),
                                    headers=_error_headers(relay_headers(upstream)))
            if not length.isdigit():
                return oci_error(502, "UNAVAILABLE", "the upstream sent no Content-Length, and "
                                 "the cache's storage cannot take the blob")
            size = int(length)
            shaped = blob_response(request, str(digest), size, "MISS")
            if isinstance(shaped, web.Response):
                return shaped  # 416
            response, start, end = shaped
            self.metrics.misses.inc()
            self.metrics.proxy_served("blob", size, hit=False)
            self.metrics.proxy_pulled("blob", size)

            async def send() -> int:
                await response.prepare(request)
                return await relay_verified(upstream, digest, size, start, end, response.write)

            sent = await deliver(request, digest, name, send)
            if sent is None:
                return response
        finally:
            answer.release()
        self.metrics.served_bytes.inc(sent)
        emit("blob.miss", digest=str(digest), repo=name, bytes=sent, size=size, ms=ms(began),
             upstream=answer.upstream, user=user, client=client_address(request))
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response


def _uncached(digest: Digest, name: str, request: web.Request, reason: Exception) -> None:
    emit("blob.uncached", logging.WARNING, digest=str(digest), repo=name,
         client=client_address(request), reason=str(reason)[:300],
         action="sending the blob from the upstream without keeping a copy")


def _corrupting(write, length: int):
    """TEST-ONLY (corrupt-bytes): a writer that flips the last byte of the response body."""
    sent = 0

    async def corrupt(chunk: bytes) -> None:
        nonlocal sent
        sent += len(chunk)
        if sent == length and chunk:
            chunk = chunk[:-1] + bytes([chunk[-1] ^ 0xFF])
        await write(chunk)

    return corrupt


def _error_headers(headers: dict[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in headers.items() if k != "Content-Length"}
    kept.setdefault(API_VERSION_HEADER, API_VERSION)
    return kept
