"""Single flight: one upstream fetch per digest, streamed to every client while it runs.

A ``Fill`` downloads one blob into a temp file, hashing as it writes; clients read the growing
file behind it. It runs as its own task, so a client that disconnects does not stop it. The
last byte of every response is held back until the digest verified: a short or corrupt
upstream body ends every client's transfer broken, and is never published.

The same holds for the cache's own storage: every ``os.write`` is checked for how much it
actually wrote (a full disk writes short, then fails with ENOSPC; a quota with EDQUOT), and only
the bytes the file system took are hashed and counted. A write that fails, or a file whose size
on disk is not what was written, fails the fill (``StorageFailed``): nothing is published, the
temp file is removed, ``storage.error`` is logged with the errno, and the store remembers it for
``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import select
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from .events import emit
from .names import Digest
from .storage import BlobStore
from .upstream import UpstreamResponse, relay_headers

READ_CHUNK = 256 * 1024
# A client whose connection is backed up (its transport holds bytes its socket did not take:
# a slow reader) is read for SLOW_CHUNK at a time, so that what waits for it in this process
# (with the connection's write buffer bound: guard.WRITE_HIGH_WATER) stays small.
SLOW_CHUNK = 64 * 1024
# Whether a connection is backed up is asked only once this much of a response went out:
# smaller answers never pin more than this, and do not pay for the question.
SLOW_AFTER = 1024 * 1024
# A response yields to the event loop once per this many bytes (see stream_growing): a yield
# per read cost a loop iteration per 256 KiB, a few per cent of a hit's CPU.
YIELD_EVERY = 1024 * 1024
MAX_ERROR_BODY = 64 * 1024


class FillFailed(Exception):
    """The upstream fetch did not produce the blob."""


class Uncacheable(FillFailed):
    """The blob could not be kept, though the upstream may still have it for the client: a
    reader finishes its transfer from the upstream (``uncached``)."""


class StreamBroken(FillFailed):
    """A transfer from a growing file ended after ``sent`` bytes, because of ``cause``."""

    def __init__(self, cause: Exception, sent: int):
        super().__init__(str(cause))
        self.cause = cause
        self.sent = sent


class StorageFailed(Uncacheable):
    """The cache's own storage did not take the blob (full disk, quota, I/O error)."""

    def __init__(self, op: str, error: OSError):
        self.op = op
        self.os_error = error
        self.errno = error.errno
        code = errno.errorcode.get(error.errno, "EUNKNOWN") if error.errno else "EUNKNOWN"
        super().__init__(f"storage {op} failed: {code} ({error.strerror or error})")


def storage_failed(store: BlobStore, failure: StorageFailed, digest: Digest, repo: str,
                   path: Path | None = None, metrics=None) -> None:
    """Record a storage failure for /health and log it as ``storage.error``."""
    recorded = store.record_write_error(failure.op, failure.os_error, digest)
    free = None
    with contextlib.suppress(OSError):
        free = store.free_space()[0]
    if metrics:
        metrics.errors.labels(kind="storage write failed").inc()
    emit("storage.error", logging.ERROR, op=failure.op, errno=recorded.errno,
         code=recorded.code, error=recorded.error, digest=str(digest), repo=repo,
         path=str(path) if path else None, free_bytes=free)


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
                 keep: bool = True, credentials: str = ""):
        self.store = store
        # Who asked the upstream: its answer is theirs until it is a 200 (see ``joinable``).
        self.credentials = credentials
        self.answered = False  # the upstream answered 200: anyone allowed the blob may join
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
            self.answered = True
            if not self.started.done():
                self.started.set_result(response)
            await self._download(response)
            if self.keep:
                try:
                    self.store.publish(self.upload, self.digest)
                except OSError as exc:
                    raise StorageFailed("publish", exc) from exc
            else:
                self.upload.unlink()  # readers hold their fd: they still get the bytes
            self.store.record_write_ok()
            self.done = True
            if self.metrics:
                self.metrics.proxy_pulled("blob", self.written)
            emit("blob.fetched", digest=str(self.digest), repo=self.repo, bytes=self.written,
                 ms=round((time.monotonic() - began) * 1000, 1), upstream=self.upstream)
        except BaseException as exc:
            self.error = exc if isinstance(exc, Exception) else FillFailed("cancelled")
            if not self.started.done():
                self.started.set_exception(self.error)
            with contextlib.suppress(FileNotFoundError):
                self.upload.unlink()
            if isinstance(self.error, StorageFailed):
                storage_failed(self.store, self.error, self.digest, self.repo, self.upload,
                               self.metrics)
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
        try:
            fd = os.open(self.upload, os.O_WRONLY)
        except OSError as exc:
            raise StorageFailed("open", exc) from exc
        try:
            async for chunk in response.content.iter_any():
                if self.size is not None and self.written + len(chunk) > self.size:
                    raise FillFailed("upstream sent more bytes than its Content-Length")
                self._write_all(fd, chunk, hasher)
                if self.metrics:
                    self.metrics.upstream_bytes.inc(len(chunk))
                self._notify()
            if self.size is not None and self.written != self.size:
                raise FillFailed(f"upstream body ended at {self.written} of {self.size} bytes")
            if hasher.hexdigest() != self.digest.hex:
                raise FillFailed(f"upstream body does not match {self.digest} "
                                 f"(got {self.digest.algorithm}:{hasher.hexdigest()[:16]}...)")
            try:
                on_disk = os.fstat(fd).st_size
            except OSError as exc:
                raise StorageFailed("verify", exc) from exc
            if on_disk != self.written:
                raise StorageFailed("verify", OSError(errno.EIO, f"the temp file holds {on_disk} "
                                                      f"bytes, {self.written} were written"))
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        try:
            os.close(fd)  # a file system may report a failed write only now (NFS, quotas)
        except OSError as exc:
            raise StorageFailed("close", exc) from exc
        if self.size is None:
            self.size = self.written

    def _write_all(self, fd: int, chunk: bytes, hasher) -> None:
        """Write all of ``chunk``, hashing and counting only what the file system took: a
        short write is retried from where it stopped; a failure, or a write that takes nothing,
        fails the fill."""
        view = memoryview(chunk)
        while view:
            try:
                taken = os.write(fd, view)
            except OSError as exc:
                raise StorageFailed("write", exc) from exc
            if taken <= 0:
                raise StorageFailed("write", OSError(errno.ENOSPC, "the file system took no "
                                                     "bytes of a write"))
            hasher.update(view[:taken])
            self.written += taken
            view = view[taken:]


class Growing(Protocol):
    """A file being downloaded: how far it is written, and whether it verified or failed."""

    written: int
    done: bool
    error: Exception | None

    async def wait_change(self) -> None: ...


async def stream_growing(source: Growing, fd: int, start: int, end: int,
                         write: Callable[[bytes], Awaitable[None]],
                         backed_up: Callable[[], bool] | None = None,
                         fast: Callable[[], int] | None = None) -> int:
    """Send bytes ``start..end`` (inclusive) of ``fd`` as ``source`` writes them; the last
    byte only once ``source`` is done (verified). Returns the bytes sent; ``StreamBroken``
    (with the bytes sent) when ``source`` failed. ``backed_up``: whether the client's
    connection is backed up (``backed_up``); while it is, reads are ``SLOW_CHUNK`` long.
    ``fast``: the read size once ``SLOW_AFTER`` bytes went out to a connection that is not
    backed up (``READ_CHUNK`` without it; asked only with ``backed_up``)."""
    pos = start
    next_yield = start + YIELD_EVERY
    while pos <= end:
        if source.error is not None:
            raise StreamBroken(source.error, pos - start)
        limit = end if source.done else min(end - 1, source.written - 1)
        if pos > limit:
            await source.wait_change()
            continue
        want = READ_CHUNK
        if backed_up is not None and pos - start >= SLOW_AFTER:
            want = SLOW_CHUNK if backed_up() else fast() if fast is not None else READ_CHUNK
        chunk = os.pread(fd, min(want, limit - pos + 1), pos)
        if not chunk:
            raise StreamBroken(FillFailed("upload shrank while streaming"), pos - start)
        await write(chunk)
        pos += len(chunk)
        # A write to a TLS connection the client has closed is dropped without pausing us;
        # only by yielding to the loop does the connection's loss reach aiohttp, which then
        # refuses the next write. Without it a gone client is "sent" the whole blob; with a
        # yield every YIELD_EVERY bytes, at most that much more than it took.
        if pos >= next_yield:
            next_yield = pos + YIELD_EVERY
            await asyncio.sleep(0)
    return pos - start


def backed_up(request) -> Callable[[], bool]:
    """Whether ``request``'s connection is backed up now: its transport holds bytes the socket
    did not take, or its socket's buffer is filling up (not writable: a poll, the one system
    call). False once it is gone."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return lambda: False
    buffered = transport.get_write_buffer_size
    writable = select.poll()
    writable.register(sock.fileno(), select.POLLOUT)
    return lambda: buffered() > 0 or not writable.poll(0)


class FillRegistry:
    """The fills in flight, by digest: the single-flight table."""

    def __init__(self, store: BlobStore, metrics=None, keep: bool = True,
                 single_flight: bool = True):
        self.store = store
        self.metrics = metrics
        self.keep = keep
        self.single_flight = single_flight  # False only in the TEST-ONLY "no-single-flight"
        self._fills: dict[str, Fill] = {}

    def get(self, digest: Digest) -> Fill | None:
        return self._fills.get(str(digest))

    async def joinable(self, digest: Digest, credentials: str) -> Fill | None:
        """The fill of ``digest`` a client with ``credentials`` may join, or None (start one).

        A fill started with other credentials is joined only once the upstream answered it
        200: until then its answer may be a refusal meant for its own client alone (401, 403,
        404), so this waits for that answer; a refused fill leaves the table as it fails."""
        if not self.single_flight:
            return None
        while True:
            fill = self._fills.get(str(digest))
            if fill is None or fill.answered or fill.credentials == credentials:
                return fill
            if fill.started.done():  # refused or failed, and on its way out
                return None
            with contextlib.suppress(Exception):
                await asyncio.shield(fill.started)

    def begin(self, digest: Digest, repo: str,
              fetch: Callable[[], Awaitable[UpstreamResponse]], credentials: str = "") -> Fill:
        """Start fetching ``digest`` with ``credentials``; the caller is the first of its
        readers. Raises ``StorageFailed`` when the storage cannot even take the temp file."""
        try:
            fill = Fill(self.store, digest, repo, self.metrics, self.keep, credentials)
        except OSError as exc:  # no room even for the empty temp file (space, inodes, quota)
            failure = StorageFailed("create", exc)
            storage_failed(self.store, failure, digest, repo, self.store.uploads, self.metrics)
            raise failure from exc
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

    async def drain(self, grace: float = 0.0) -> None:
        """End every running fill (used at shutdown): ``grace`` seconds to finish, then
        cancelled."""
        tasks = [f.task for f in self._fills.values() if f.task]
        if tasks and grace:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
