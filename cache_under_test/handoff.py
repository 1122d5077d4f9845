"""A forwarded miss without the bytes: the server process reads the fetcher's growing file.

Relaying a miss's bytes from the fetcher to a server process over the Unix socket would cost
more CPU than the download itself (benchmarks/). So for a plain GET, the fetcher answers the
server process with where the download is going (``X-Dtrcache-Upload``, the temp file on the
shared storage, and where it will be published) and then a line per step of progress: the
number of bytes written and hashed, then ``done`` once the digest verified and the blob is
published, or ``failed <why>``. The server process streams the file itself behind that
progress, holding the last byte back until ``done``, exactly as the fetcher does for its own
clients (``fill.stream_growing``). Range requests and HEAD are relayed as bytes.

When the storage failed, the last line is ``uncached <why>``: the server process then finishes
its client's transfer with a Range request for the rest, which the fetcher answers from the
upstream without keeping a copy (``uncached``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from .errors import break_off, client_gone, oci_error
from .events import emit
from .fill import Fill, FillFailed, StreamBroken, Uncacheable, backed_up, stream_growing
from .metrics import Metrics
from .ranges import blob_response

ASK = "X-Dtrcache-Handoff"  # a server process can read the storage: send progress, not bytes
UPLOAD = "X-Dtrcache-Upload"
PUBLISHED = "X-Dtrcache-Published"
SIZE = "X-Dtrcache-Size"
UPSTREAM = "X-Dtrcache-Upstream"
JOINED = "X-Dtrcache-Joined"
USER = "X-Dtrcache-User"


def wanted(request: web.Request) -> bool:
    """A whole-blob GET from one of our server processes (only they reach the Unix socket)."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return (request.method == "GET" and "Range" not in request.headers
            and request.headers.get(ASK) == "1"
            and sock is not None and sock.family == socket.AF_UNIX)


async def send_progress(request: web.Request, fill: Fill, published: str, joined: bool,
                        user: str | None) -> web.StreamResponse:
    """The fetcher's side: where the blob is being written, then how far, then the outcome."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/plain", "Docker-Content-Digest": str(fill.digest),
        UPLOAD: str(fill.upload), PUBLISHED: published,
        SIZE: str(fill.size), UPSTREAM: fill.upstream or "", JOINED: "1" if joined else "0",
        USER: user or ""})
    await response.prepare(request)
    reported = -1
    try:
        while True:
            if fill.error is not None:
                word = "uncached" if isinstance(fill.error, Uncacheable) else "failed"
                await response.write(f"{word} {str(fill.error)[:300]}\n".encode())
                break
            if fill.done:
                await response.write(b"done\n")
                break
            if fill.written != reported:  # report, then look again before waiting
                reported = fill.written
                await response.write(f"{reported}\n".encode())
                continue
            await fill.wait_change()
        await response.write_eof()
    except ConnectionError:
        pass  # the server process's client left; it logs that
    return response


class RemoteFill:
    """The server process's view of the fetcher's fill, driven by its progress lines."""

    def __init__(self, answer: aiohttp.ClientResponse, size: int):
        self._lines = answer.content
        self.written = 0
        self.done = False
        self.error: Exception | None = None
        self.size = size

    async def wait_change(self) -> None:
        try:
            line = (await self._lines.readline()).decode().strip()
        except (aiohttp.ClientError, TimeoutError) as exc:
            line = f"failed the fetcher's progress stream broke: {exc}"
        if line == "done":
            self.done, self.written = True, self.size
        elif line.isdigit():
            self.written = int(line)
        elif line.startswith("uncached "):
            self.error = Uncacheable(line.removeprefix("uncached "))
        else:  # "failed ...", or the stream ended without an outcome
            self.error = FillFailed(line.removeprefix("failed ") or "the fetcher went away")


Resume = Callable[[int, int, Callable[[bytes], Awaitable[None]]], Awaitable[int]]


async def serve(request: web.Request, answer: aiohttp.ClientResponse, began: float,
                metrics: Metrics, resume: Resume) -> web.StreamResponse | None:
    """The server process's side: stream the fetcher's file to the client. If the file is
    already gone, a failed fill answers 502, and one not kept (its storage failed, or a test
    fault) None: ask again, for the bytes. ``resume(start, size, write)``: the rest of the
    blob from the fetcher, when its fill could not be stored."""
    size = int(answer.headers[SIZE])
    digest = answer.headers["Docker-Content-Digest"]
    repo = request.match_info.get("name")
    remote = RemoteFill(answer, size)
    try:
        fd = os.open(answer.headers[UPLOAD], os.O_RDONLY)
    except FileNotFoundError:
        try:  # finished between the fetcher's answer and now: the published copy is verified
            fd = os.open(answer.headers[PUBLISHED], os.O_RDONLY)
            remote.done, remote.written = True, size
        except FileNotFoundError:  # gone: learn why before asking again
            while not remote.done and remote.error is None:
                await remote.wait_change()
            if remote.error is not None and not isinstance(remote.error, Uncacheable):
                # nothing sent yet: a registry error, not a retry
                return oci_error(502, "UNAVAILABLE", "upstream fetch failed", str(remote.error))
            return None  # not kept (storage failed, or a test fault): the fetcher relays it
    try:
        response, _, _ = blob_response(request, digest, size, "MISS")  # no Range: the whole
        await response.prepare(request)
        try:
            try:
                sent = await stream_growing(remote, fd, 0, size - 1, response.write,
                                            backed_up(request)) if size else 0
            except StreamBroken as broken:
                if not isinstance(broken.cause, Uncacheable):
                    raise
                sent = broken.sent + await resume(broken.sent, size, response.write)
        except FillFailed as exc:
            break_off(request, exc, digest=digest, repo=repo, client=request.remote)
        except ConnectionError:
            client_gone(request, digest=digest, repo=repo, client=request.remote)
            return response
    finally:
        os.close(fd)
    joined = answer.headers.get(JOINED) == "1"
    metrics.served_bytes.inc(sent)
    emit("blob.join" if joined else "blob.miss", digest=digest,
         repo=repo, bytes=sent, size=size,
         ms=round((time.monotonic() - began) * 1000, 1),
         upstream=answer.headers.get(UPSTREAM) or None, user=answer.headers.get(USER) or None,
         client=request.remote)
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response
