"""What this run of the cache has verified of its stored blobs, and re-hashing what it has not.

A stored blob is served only while its file is the one whose bytes this run hashed to its
digest: the same size, inode and mtime (``Stamp``) as when it was published by a fill or
re-hashed. A blob found on disk at start (or changed behind the cache's back: another size, a
new inode, a new mtime) is re-hashed before it is served (``Rehasher``, one hash per digest at
a time, in a thread). The stamps live in memory, and, with several processes, as one small
file a blob in the run's private directory, so that a blob the fetcher published or re-hashed
is served by every server process without hashing it again; a new run starts with none.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .names import Digest

HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Stamp:
    """A verified file as ``fstat`` saw it."""

    size: int
    ino: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Stamp:
        return cls(st.st_size, st.st_ino, st.st_mtime_ns)


class VerifiedBlobs:
    """The stamps of the blobs this run verified; ``shared``: a directory the run's processes
    share (None: this process alone)."""

    def __init__(self, shared: Path | None = None):
        self._known: dict[str, Stamp] = {}
        self.shared = shared
        if shared is not None:
            shared.mkdir(mode=0o700, exist_ok=True)

    def stamp(self, digest: Digest) -> Stamp | None:
        """The stamp this process knows for ``digest``, or None."""
        return self._known.get(str(digest))

    def check(self, digest: Digest, st: os.stat_result) -> bool:
        """True when the file ``st`` describes is the one verified."""
        key = str(digest)
        stamp = Stamp.of(st)
        if self._known.get(key) == stamp:
            return True
        if self.shared is not None and self._read(key) == stamp:
            self._known[key] = stamp
            return True
        return False

    def record(self, digest: Digest, st: os.stat_result) -> None:
        key = str(digest)
        stamp = Stamp.of(st)
        self._known[key] = stamp
        if self.shared is not None:  # else the other processes re-hash it: slower, as safe
            path = self._path(key)
            temp = path.with_name(f".{path.name}.{os.getpid()}")
            with contextlib.suppress(OSError):
                temp.write_text(f"{stamp.size} {stamp.ino} {stamp.mtime_ns}\n")
                os.replace(temp, path)

    def forget(self, digest: Digest) -> None:
        key = str(digest)
        self._known.pop(key, None)
        if self.shared is not None:
            self._path(key).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        assert self.shared is not None
        return self.shared / key.replace(":", "-")

    def _read(self, key: str) -> Stamp | None:
        try:
            size, ino, mtime_ns = (int(v) for v in self._path(key).read_text().split())
        except (OSError, ValueError):
            return None
        return Stamp(size, ino, mtime_ns)


class Rehasher:
    """Hashes open blob files in a thread, one hash at a time per digest and file."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, Stamp], asyncio.Future[bool]] = {}

    async def matches(self, fd: int, digest: Digest, st: os.stat_result) -> bool:
        """True when the file open as ``fd`` (``st``: its fstat) hashes to ``digest``."""
        key = (str(digest), Stamp.of(st))
        running = self._running.get(key)
        if running is None:
            copy = os.dup(fd)  # the thread's own: this request may end before the hash does
            running = asyncio.get_running_loop().run_in_executor(
                None, _hash_matches, copy, digest, st.st_size)
            self._running[key] = running
            running.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(running)


def _hash_matches(fd: int, digest: Digest, size: int) -> bool:
    """Hash ``size`` bytes of ``fd`` (then close it); True when they are ``digest``'s."""
    try:
        hasher = hashlib.new(digest.algorithm)
        position = 0
        while True:
            chunk = os.pread(fd, HASH_CHUNK, position)
            if not chunk:
                break
            hasher.update(chunk)
            position += len(chunk)
        return position == size and hasher.hexdigest() == digest.hex
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
