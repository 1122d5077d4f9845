"""Blob storage in distribution's filesystem layout, with atomic publish and TTL bookkeeping.

``<root>/docker/registry/v2/blobs/<alg>/<hex[:2]>/<hex>/data`` holds a verified blob; nothing
else is ever written there. Downloads land in ``<root>/docker/registry/v2/_cache_uploads/`` and
are renamed into place only after their digest verified. A blob's mtime is set to the time it
was fetched, so the TTL (counted from the fetch) survives restarts without a side file.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .names import ALGORITHMS, Digest


@dataclass(frozen=True)
class StoredBlob:
    """A published blob as found on disk."""

    digest: Digest
    path: Path
    size: int
    fetched_at: float


class BlobStore:
    """The cache's local copies under ``root``; ``ttl`` seconds from fetch (None: no expiry)."""

    def __init__(self, root: Path, ttl: float | None = None):
        self.root = Path(root)
        self.ttl = ttl
        self.base = self.root / "docker" / "registry" / "v2"
        self.blobs = self.base / "blobs"
        self.uploads = self.base / "_cache_uploads"

    def prepare(self) -> int:
        """Create the directories; remove what a crash left in uploads. Returns files removed."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        removed = 0
        if self.uploads.exists():
            for leftover in self.uploads.iterdir():
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
                removed += 1
        self.uploads.mkdir(parents=True, exist_ok=True)
        return removed

    def path(self, digest: Digest) -> Path:
        """Where ``digest`` lives; ``digest`` is validated, so this stays under the root."""
        return self.blobs / digest.algorithm / digest.hex[:2] / digest.hex / "data"

    def lookup(self, digest: Digest) -> StoredBlob | None:
        """The stored copy of ``digest`` (fresh or expired), or None."""
        path = self.path(digest)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return StoredBlob(digest, path, st.st_size, st.st_mtime)

    def is_expired(self, blob: StoredBlob, now: float | None = None) -> bool:
        if self.ttl is None:
            return False
        return (time.time() if now is None else now) >= blob.fetched_at + self.ttl

    def new_upload(self) -> Path:
        """A fresh, empty temp file on the same file system as the blobs (so rename is atomic)."""
        path = self.uploads / uuid.uuid4().hex
        path.touch(exist_ok=False)
        return path

    def publish(self, upload: Path, digest: Digest, fetched_at: float | None = None) -> Path:
        """Atomically move a verified upload into place, stamped with its fetch time."""
        fetched_at = time.time() if fetched_at is None else fetched_at
        os.utime(upload, (fetched_at, fetched_at))
        final = self.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(upload, final)
        return final

    def remove(self, digest: Digest) -> bool:
        """Delete a stored blob and its directory; open readers keep their file handle."""
        path = self.path(digest)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        for parent in (path.parent, path.parent.parent):
            try:
                parent.rmdir()
            except OSError:
                break
        return True

    def iter_blobs(self) -> Iterator[StoredBlob]:
        for algorithm, length in ALGORITHMS.items():
            top = self.blobs / algorithm
            if not top.is_dir():
                continue
            for data in top.glob("*/*/data"):
                hexpart = data.parent.name
                if len(hexpart) != length or data.parent.parent.name != hexpart[:2]:
                    continue
                try:
                    st = data.stat()
                except FileNotFoundError:
                    continue
                yield StoredBlob(Digest(algorithm, hexpart), data, st.st_size, st.st_mtime)

    def expired(self, now: float | None = None) -> list[StoredBlob]:
        """Every stored blob whose TTL has run out."""
        if self.ttl is None:
            return []
        now = time.time() if now is None else now
        return [b for b in self.iter_blobs() if self.is_expired(b, now)]
