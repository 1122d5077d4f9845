"""The blob endpoint: authorize, then hit (local copy) or miss (join or start a fill)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from urllib.parse import quote

from aiohttp import web

from . import handoff
from .auth import Authorizer, denied
from .blobtoken import TOKEN_PARAM, TokenError
from .errors import API_VERSION, API_VERSION_HEADER, break_off, oci_error
from .events import emit
from .fill import FillFailed, FillRegistry, StorageFailed, UpstreamRefused, stream_growing
from .forward import MissForwarder, client_address
from .metrics import Metrics
from .names import Digest, InvalidDigest, InvalidName, parse_digest, parse_name
from .ranges import blob_response
from .storage import BlobStore, StoredBlob
from .upstream import AllUpstreamsFailed, UpstreamPool, relay_headers

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

    async def handle(self, request: web.Request) -> web.StreamResponse:
        began = time.monotonic()
        try:
            name = parse_name(request.match_info["name"])
            digest = parse_digest(request.match_info["digest"])
        except InvalidName as exc:
            return oci_error(400, "NAME_INVALID", str(exc))
        except InvalidDigest as exc:
            return oci_error(400, "DIGEST_INVALID", str(exc))
        if self.forwarder is not None and self._fresh_copy(digest, name) is None:
            return await self.forwarder.forward(request, began)  # the fetcher authorizes it

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

        stored = self._fresh_copy(digest, name)
        if stored is not None and "corrupt-bytes" in self.faults:
            body = bytearray(stored.path.read_bytes())
            if body:
                body[-1] ^= 0xFF
            return web.Response(body=bytes(body), headers={"X-Cache": "HIT",
                                "Docker-Content-Digest": str(digest)})
        if stored is not None:
            if not token:
                refusal = await self._ask_upstream(upstream_path, headers, name, digest, request)
                if refusal is not None:
                    return refusal
            return await self._serve_hit(request, stored, name, user, began)
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
        if fill is None:
            try:
                fill = self.fills.begin(digest, name, lambda: self.pool.request(
                    "GET", upstream_path, headers), credentials)
            except StorageFailed as exc:  # logged as storage.error; /health reports it
                return oci_error(503, "UNAVAILABLE", "the cache's storage cannot take the blob",
                                 str(exc))
        fd = fill.open_reader()
        try:
            return await self._serve_fill(request, fill, fd, joined, name, user, began)
        finally:
            os.close(fd)

    def _fresh_copy(self, digest: Digest, name: str) -> StoredBlob | None:
        stored = self.store.lookup(digest)
        if stored is not None and self.store.is_expired(stored):
            if self.forwarder is not None:
                return None  # the fetcher removes it, then fetches it again
            if self.fills.get(digest) is None and self.store.remove(digest):
                self.metrics.expired.inc()
                emit("blob.expired", digest=str(digest), repo=name, bytes=stored.size,
                     age_s=round(time.time() - stored.fetched_at, 1), reason="requested")
            return None
        return stored

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

    async def _serve_hit(self, request: web.Request, stored: StoredBlob, name: str,
                         user: str | None, began: float) -> web.StreamResponse:
        try:
            fd = os.open(stored.path, os.O_RDONLY)
        except FileNotFoundError:  # removed by the TTL sweep between lookup and open
            return oci_error(503, "UNAVAILABLE", "blob expired while being served; retry")
        try:
            size = os.fstat(fd).st_size
            answer = blob_response(request, str(stored.digest), size, "HIT")
            if isinstance(answer, web.Response):
                return answer  # 416
            response, start, end = answer
            try:
                await response.prepare(request)
                sent = 0
                if request.method == "GET" and size:
                    sent = await stream_growing(_Complete(size), fd, start, end, response.write)
            except FillFailed as exc:  # truncated on disk behind our back
                break_off(request, exc, digest=str(stored.digest), repo=name,
                          client=client_address(request))
            except ConnectionError:
                emit("blob.client_gone", digest=str(stored.digest), repo=name,
                     client=client_address(request))
                return response
        finally:
            os.close(fd)
        self.metrics.hits.inc()
        self.metrics.served_bytes.inc(sent)
        # Logged before the final flush: by the time the client has it all, the line is out.
        emit("blob.hit", digest=str(stored.digest), repo=name, bytes=sent, size=stored.size,
             ms=_ms(began), user=user, method=request.method, client=client_address(request),
             age_s=round(time.time() - stored.fetched_at, 1))
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _serve_fill(self, request: web.Request, fill, fd: int, joined: bool, name: str,
                          user: str | None, began: float) -> web.StreamResponse:
        try:
            await asyncio.shield(fill.started)
        except UpstreamRefused as exc:
            denied("upstream refused", repo=name, digest=str(fill.digest),
                   client=client_address(request), status=exc.status)
            return web.Response(status=exc.status, body=exc.body,
                                headers=_error_headers(exc.headers))
        except AllUpstreamsFailed as exc:
            return oci_error(502, "UNAVAILABLE", "no upstream could provide the blob", str(exc))
        except FillFailed as exc:
            return oci_error(502, "UNAVAILABLE", "upstream fetch failed", str(exc))
        if fill.size is None:  # no Content-Length upstream: wait for the whole blob
            while not fill.done and fill.error is None:
                await fill.wait_change()
            if fill.error is not None:
                return oci_error(502, "UNAVAILABLE", "upstream fetch failed", str(fill.error))
        size = fill.size
        answer = blob_response(request, str(fill.digest), size, "MISS")
        if isinstance(answer, web.Response):
            return answer  # 416
        response, start, end = answer
        counter = self.metrics.joins if joined else self.metrics.misses
        counter.inc()
        if handoff.wanted(request) and "corrupt-bytes" not in self.faults:
            return await handoff.send_progress(request, fill, str(self.store.path(fill.digest)),
                                               joined, user)
        await response.prepare(request)
        try:
            write = response.write
            if "corrupt-bytes" in self.faults:
                write = _corrupting(response.write, end - start + 1)
            sent = await stream_growing(fill, fd, start, end, write) if size else 0
        except FillFailed as exc:
            break_off(request, exc, digest=str(fill.digest), repo=name,
                      client=client_address(request))
        except ConnectionError:
            emit("blob.client_gone", digest=str(fill.digest), repo=name,
                 client=client_address(request))
            return response
        self.metrics.served_bytes.inc(sent)
        emit("blob.join" if joined else "blob.miss", digest=str(fill.digest), repo=name,
             bytes=sent, size=size, ms=_ms(began), upstream=fill.upstream, user=user,
             client=client_address(request))
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response


class _Complete:
    """A stored blob, as ``stream_growing`` sees it: all written and verified."""

    def __init__(self, size: int):
        self.written, self.done, self.error = size, True, None

    async def wait_change(self) -> None:
        raise AssertionError("a stored blob does not grow")


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


def _ms(began: float) -> float:
    return round((time.monotonic() - began) * 1000, 1)


def _error_headers(headers: dict[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in headers.items() if k != "Content-Length"}
    kept.setdefault(API_VERSION_HEADER, API_VERSION)
    return kept
