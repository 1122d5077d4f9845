"""A server process hands a blob miss to the fetcher process and relays its answer.

With several processes (``cache_under_test.processes``) every upstream fetch happens in one
process, the fetcher, so single flight holds across the whole cache. A server process that has
no fresh copy forwards the client's request, unchanged but for ``X-Forwarded-For``, over a
private Unix socket; the fetcher authorizes it exactly as it would a direct client. A transfer
the fetcher breaks off (a short or corrupt upstream body) is broken off to the client too:
never completed, so never trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import aiohttp
from aiohttp import web
from yarl import URL

from . import handoff as handoff_protocol
from .errors import oci_error
from .fill import FillFailed
from .metrics import Metrics

# Request headers that decide the fetcher's answer; everything else is the client's business.
FORWARDED = ("Authorization", "Range", "If-Range", "Accept")
# Answer headers a client needs (the fetcher sets exactly these on blob answers and errors).
RELAYED = ("Content-Type", "Content-Range", "Docker-Content-Digest", "Docker-Distribution-API-"
           "Version", "Accept-Ranges", "ETag", "WWW-Authenticate", "X-Cache", "Allow",
           "Retry-After")
CLIENT_ADDRESS = "X-Forwarded-For"
CONNECT_TRIES = 50  # x 0.1 s: the fetcher may still be starting when the first miss comes


class MissForwarder:
    """Relays blob requests to the fetcher listening on ``socket_path``."""

    def __init__(self, socket_path: str, metrics: Metrics):
        self.socket_path = socket_path
        self.metrics = metrics
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=self.socket_path, limit=0),
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, sock_read=300),
        )

    async def close(self) -> None:
        if self._session:
            await self._session.close()

    async def _send(self, request: web.Request, handoff: bool,
                    span: str | None = None) -> aiohttp.ClientResponse:
        assert self._session is not None, "MissForwarder.start() was not awaited"
        headers = {h: request.headers[h] for h in FORWARDED if h in request.headers}
        if span is not None:
            headers["Range"] = span
        headers[CLIENT_ADDRESS] = request.remote or ""
        if handoff:
            headers[handoff_protocol.ASK] = "1"
        for attempt in range(CONNECT_TRIES):
            try:
                return await self._session.request(request.method, self._url(request),
                                                   headers=headers, allow_redirects=False)
            except aiohttp.ClientConnectorError:
                if attempt == CONNECT_TRIES - 1:
                    raise
                await asyncio.sleep(0.1)
        raise AssertionError("unreachable")

    @staticmethod
    def _url(request: web.Request) -> URL:
        # The path exactly as the client sent it: re-encoding could change what is asked.
        return URL(f"http://fetcher{request.raw_path}", encoded=True)

    async def forward(self, request: web.Request, began: float) -> web.StreamResponse:
        """The fetcher's answer to ``request``: its file read here for a whole-blob GET
        (``handoff``), its bytes relayed otherwise."""
        handoff = request.method == "GET" and "Range" not in request.headers
        try:
            answer = await self._send(request, handoff)
            if handoff_protocol.UPLOAD in answer.headers:
                try:
                    served = await handoff_protocol.serve(request, answer, began,
                                                          self.metrics, self._resumer(request))
                finally:
                    answer.close()
                if served is not None:
                    return served
                answer = await self._send(request, handoff=False)  # its file is gone
        except aiohttp.ClientError as exc:
            return oci_error(503, "UNAVAILABLE", "the cache's fetcher process is not answering",
                             str(exc))
        return await self._relay(request, answer)

    def _resumer(self, request: web.Request) -> handoff_protocol.Resume:
        """The rest of ``request``'s blob from byte ``start`` on, from the fetcher (a Range
        request), written with ``write``: bytes sent, or FillFailed."""

        async def resume(start: int, size: int, write) -> int:
            try:
                answer = await self._send(request, False, f"bytes={start}-{size - 1}")
            except aiohttp.ClientError as exc:
                raise FillFailed(f"the fetcher did not answer for the rest: {exc}") from None
            try:
                if answer.status != 206 or not answer.headers.get(
                        "Content-Range", "").startswith(f"bytes {start}-{size - 1}/{size}"):
                    raise FillFailed(f"the fetcher answered {answer.status} for the rest")
                sent = 0
                async for chunk in answer.content.iter_any():
                    await write(chunk)
                    sent += len(chunk)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise FillFailed(f"the fetcher broke off the rest: {exc}") from None
            finally:
                answer.release()
            if sent != size - start:
                raise FillFailed(f"the fetcher sent {sent} of the {size - start} bytes left")
            return sent

        return resume

    async def _relay(self, request: web.Request,
                     answer: aiohttp.ClientResponse) -> web.StreamResponse:
        response = web.StreamResponse(status=answer.status, headers={
            h: answer.headers[h] for h in RELAYED if h in answer.headers})
        if answer.content_length is not None:
            response.content_length = answer.content_length
        try:
            await response.prepare(request)
            if request.method == "HEAD":
                return response
            try:
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
            except (TimeoutError, aiohttp.ClientError):
                # The fetcher broke the transfer off (a failed fill) or stalled: so do we.
                if request.transport is not None:
                    request.transport.abort()
                raise web.HTTPInternalServerError() from None
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response
        except ConnectionError:  # the client left: drop the fetcher's stream (its fill goes on)
            answer.close()
            return response
        finally:
            answer.release()


def client_address(request: web.Request) -> str | None:
    """The client's address; for a forwarded request, the one the server process saw."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family == socket.AF_UNIX:  # only our own processes get here
        return request.headers.get(CLIENT_ADDRESS) or request.remote
    return request.remote
