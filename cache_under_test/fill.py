"""Single flight: one upstream fetch per digest, streamed to every client while it runs.

A ``Fill`` downloads one blob into a temp file, hashing as it writes; clients read the growing
file behind it. It runs as its own task, so a client that disconnects does not stop it. The
last byte of every response is held back until the digest verified: a short or corrupt
upstream body ends every client's transfer broken, and is never published.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from .events import emit
from .names import Digest
from .storage import BlobStore
from .upstream import UpstreamResponse, relay_headers

READ_CHUNK = 256 * 1024
MAX_ERROR_BODY = 64 * 1024


class FillFailed(Exception):
    """The upstream fetch did not produce the blob."""


class UpstreamRefused(FillFailed):
    """The upstream answered, but not with the blob (401, 403, 404...): relay its answer."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.headers = headers
        self.body = body


class Fill:
    """One in-flight upstream fetch of ``digest`` into ``upload``."""

    def __init__(self, store: BlobStore, digest: Digest, repo: str, metrics=None,
                 keep: bool = True):
        self.store = store
        self.digest = digest
        self.repo = repo
        self.metrics = metrics
        self.keep = keep  # False only in the TEST-ONLY "never-store" fault mode
        self.upload: Path = store.new_upload()
        self.size: int | None = None     # from the upstream's Content-Length
        self.written = 0
        self.done = False
        self.error: Exception | None = None
        self.upstream: str | None = None
        self.started: asyncio.Future = asyncio.get_running_loop().create_future()
        # Mark the outcome as retrieved: a fill nobody waited for must not warn at exit.
        self.started.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._changed = asyncio.Event()
        self.task: asyncio.Task | None = None

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_change(self) -> None:
        await self._changed.wait()

    def open_reader(self) -> int:
        """A read-only fd on the upload; it stays valid across the rename into place."""
        return os.open(self.upload, os.O_RDONLY)

    def start(self, fetch: Callable[[], Awaitable[UpstreamResponse]],
              on_end: Callable[[Fill], None]) -> None:
        self.task = asyncio.create_task(self._run(fetch, on_end))

    async def _run(self, fetch, on_end) -> None:
        began = time.monotonic()
        upstream_response: UpstreamResponse | None = None
        try:
            upstream_response = await fetch()
            self.upstream = upstream_response.upstream
            response = upstream_response.response
            if response.status != 200:
                raise UpstreamRefused(response.status, relay_headers(response),
                                      await response.content.read(MAX_ERROR_BODY))
            length = response.headers.get("Content-Length")
            self.size = int(length) if length and length.isdigit() else None
            if not self.started.done():
                self.started.set_result(response)
            await self._download(response)
            if self.keep:
                self.store.publish(self.upload, self.digest)
            else:
                self.upload.unlink()  # readers hold their fd: they still get the bytes
            self.done = True
            emit("blob.fetched", digest=str(self.digest), repo=self.repo, bytes=self.written,
                 ms=round((time.monotonic() - began) * 1000, 1), upstream=self.upstream)
        except BaseException as exc:
            self.error = exc if isinstance(exc, Exception) else FillFailed("cancelled")
            if not self.started.done():
                self.started.set_exception(self.error)
            with contextlib.suppress(FileNotFoundError):
                self.upload.unlink()
            if self.metrics:
                self.metrics.errors.labels(kind="fill failed").inc()
            emit("blob.fill_failed", logging.WARNING, digest=str(self.digest), repo=self.repo,
                 bytes=self.written, upstream=self.upstream, error=str(self.error)[:300])
            if not isinstance(exc, Exception):
                raise
        finally:
            if upstream_response is not None:
                upstream_response.release()
            on_end(self)
            self._notify()

    async def _download(self, response) -> None:
        hasher = hashlib.new(self.digest.algorithm)
        fd = os.open(self.upload, os.O_WRONLY)
        try:
            async for chunk in response.content.iter_any():
                if self.size is not None and self.written + len(chunk) > self.size:
                    raise FillFailed("upstream sent more bytes than its Content-Length")
                os.write(fd, chunk)
                hasher.update(chunk)
                self.written += len(chunk)
                if self.metrics:
                    self.metrics.upstream_bytes.inc(len(chunk))
                self._notify()
        finally:
            os.close(fd)
        if self.size is not None and self.written != self.size:
            raise FillFailed(f"upstream body ended at {self.written} of {self.size} bytes")
        if hasher.hexdigest() != self.digest.hex:
            raise FillFailed(f"upstream body does not match {self.digest} "
                             f"(got {self.digest.algorithm}:{hasher.hexdigest()[:16]}...)")
        if self.size is None:
            self.size = self.written


class Growing(Protocol):
    """A file being downloaded: how far it is written, and whether it verified or failed."""

    written: int
    done: bool
    error: Exception | None

    async def wait_change(self) -> None: ...


async def stream_growing(source: Growing, fd: int, start: int, end: int,
                         write: Callable[[bytes], Awaitable[None]]) -> int:
    """Send bytes ``start..end`` (inclusive) of ``fd`` as ``source`` writes them; the last
    byte only once ``source`` is done (verified). Returns the bytes sent."""
    pos = start
    while pos <= end:
        if source.error is not None:
            raise FillFailed(str(source.error))
        limit = end if source.done else min(end - 1, source.written - 1)
        if pos > limit:
            await source.wait_change()
            continue
        chunk = os.pread(fd, min(READ_CHUNK, limit - pos + 1), pos)
        if not chunk:
            raise FillFailed("upload shrank while streaming")
        await write(chunk)
        # A write to a TLS connection the client has closed is dropped without pausing us;
        # only by yielding to the loop does the connection's loss reach aiohttp, which then
        # refuses the next write. Without it a gone client is "sent" the whole blob.
        await asyncio.sleep(0)
        pos += len(chunk)
    return pos - start


class FillRegistry:
    """The fills in flight, by digest: the single-flight table."""

    def __init__(self, store: BlobStore, metrics=None, keep: bool = True):
        self.store = store
        self.metrics = metrics
        self.keep = keep
        self._fills: dict[str, Fill] = {}

    def get(self, digest: Digest) -> Fill | None:
        return self._fills.get(str(digest))

    def begin(self, digest: Digest, repo: str,
              fetch: Callable[[], Awaitable[UpstreamResponse]]) -> Fill:
        """Start fetching ``digest``; the caller is the first of its readers."""
        fill = Fill(self.store, digest, repo, self.metrics, self.keep)
        self._fills[str(digest)] = fill
        if self.metrics:
            self.metrics.inflight.inc()
        fill.start(fetch, self._end)
        return fill

    def _end(self, fill: Fill) -> None:
        if self._fills.get(str(fill.digest)) is fill:
            del self._fills[str(fill.digest)]
        if self.metrics:
            self.metrics.inflight.dec()

    async def drain(self) -> None:
        """Wait for every running fill (used at shutdown)."""
        tasks = [f.task for f in self._fills.values() if f.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
