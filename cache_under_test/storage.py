"""Blob storage in distribution's filesystem layout, with atomic publish and TTL bookkeeping.

``<root>/docker/registry/v2/blobs/<alg>/<hex[:2]>/<hex>/data`` holds a verified blob; nothing
else is ever written there. Downloads land in ``<root>/docker/registry/v2/_cache_uploads/`` and
are renamed into place only after their digest verified. A blob's mtime is set to the time it
was fetched, so the TTL (counted from the fetch) survives restarts without a side file.

Storage health (``BlobStore.health``, answered at ``/health``): the storage is unhealthy when
its uploads directory is missing; when the file system has less free space (``f_bavail``) than
``min(MIN_FREE_BYTES, MIN_FREE_PERCENT % of its size)``, i.e. min(100 MiB, 5%): 100 MiB on any
volume of 2 GiB or more, 5% on a smaller one (so a small volume is not unhealthy while nearly
empty); or when the last write to storage failed (``record_write_error``: errno and time) and
neither a blob was written whole since (``record_write_ok``) nor ``WRITE_ERROR_HOLD`` seconds
have passed. The last write error stays in the report after it clears (with ``cleared_at``).
The state is this process's: with several processes only the fetcher writes blobs, and the
server processes ask it (``app.Cache.health``).

What this run verified of the stored blobs is ``verified``'s (see ``verified``): ``publish``
records a blob's stamp, ``remove`` forgets it.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from .names import ALGORITHMS, Digest
from .verified import VerifiedBlobs

MIN_FREE_BYTES = 100 * 1024 * 1024  # /health: unhealthy below min(this, MIN_FREE_PERCENT %)
MIN_FREE_PERCENT = 5
WRITE_ERROR_HOLD = 300.0  # seconds a failed write keeps /health at 503 unless a write succeeds


@dataclass
class WriteError:
    """The last failed write to storage, as /health reports it."""

    errno: int | None
    code: str          # the errno's name: "ENOSPC", "EDQUOT", "EIO"...
    error: str         # its text
    op: str            # what failed: "create", "open", "write", "close", "verify", "publish"
    digest: str | None
    at: float          # time.time() of the failure
    time: str          # the same, ISO 8601 UTC
    cleared_at: float | None = None  # when a blob was next written whole


def min_free_bytes(total: int) -> int:
    """The free space /health requires on a file system of ``total`` bytes."""
    return min(MIN_FREE_BYTES, total * MIN_FREE_PERCENT // 100)


@dataclass(frozen=True)
class StoredBlob:
    """A published blob as found on disk."""

    digest: Digest
    path: Path
    size: int
    fetched_at: float


class BlobStore:
    """The cache's local copies under ``root``; ``ttl`` seconds from fetch (None: no expiry)."""

    def __init__(self, root: Path, ttl: float | None = None,
                 verified: VerifiedBlobs | None = None):
        self.root = Path(root)
        self.verified = verified if verified is not None else VerifiedBlobs()
        self.ttl = ttl
        self.base = self.root / "docker" / "registry" / "v2"
        self.blobs = self.base / "blobs"
        self._blobs_text = str(self.blobs)  # ``open``'s path built as text: it runs per hit
        self.uploads = self.base / "_cache_uploads"
        self.last_write_error: WriteError | None = None

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

    def open(self, digest: Digest) -> tuple[int, os.stat_result] | None:
        """A read-only fd on the stored copy of ``digest`` and its fstat, or None."""
        hexpart = digest.hex
        try:  # self.path(digest), without pathlib's cost on every request
            fd = os.open(f"{self._blobs_text}/{digest.algorithm}/{hexpart[:2]}/{hexpart}/data",
                         os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return fd, os.fstat(fd)
        except OSError:
            os.close(fd)
            raise

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
        self.verified.record(digest, os.stat(final))
        return final

    def remove(self, digest: Digest) -> bool:
        """Delete a stored blob and its directory; open readers keep their file handle."""
        path = self.path(digest)
        self.verified.forget(digest)
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

    # -- health ------------------------------------------------------------------------------

    def record_write_error(self, op: str, error: OSError, digest: Digest | str | None = None,
                           now: float | None = None) -> WriteError:
        """Remember a failed write (the fill that met it has failed; /health reports it)."""
        now = time.time() if now is None else now
        number = error.errno
        self.last_write_error = WriteError(
            errno=number, code=errno.errorcode.get(number, "EUNKNOWN") if number else "EUNKNOWN",
            error=error.strerror or str(error), op=op,
            digest=str(digest) if digest is not None else None, at=round(now, 3),
            time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
        return self.last_write_error

    def record_write_ok(self, now: float | None = None) -> None:
        """A blob was written whole: storage takes writes again."""
        failed = self.last_write_error
        if failed is not None and failed.cleared_at is None:
            failed.cleared_at = round(time.time() if now is None else now, 3)

    def free_space(self) -> tuple[int, int, int | None]:
        """(bytes free to this process, bytes in the file system, inodes free or None)."""
        st = os.statvfs(self.root)
        return (st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize,
                st.f_favail if st.f_files else None)

    def health(self, now: float | None = None) -> dict:
        """``{"status", "problems", "storage"}``: status "ok", or the first problem's name
        ("storage unavailable", "storage low on free space", "storage write failed")."""
        now = time.time() if now is None else now
        problems: list[tuple[str, str]] = []
        writable = self.uploads.is_dir()
        if not writable:
            problems.append(("storage unavailable", f"the uploads directory {self.uploads} "
                             "is missing"))
        free = total = inodes = threshold = None
        try:
            free, total, inodes = self.free_space()
        except OSError as exc:
            problems.append(("storage unavailable", f"cannot read the free space of "
                             f"{self.root}: {exc}"))
        else:
            threshold = min_free_bytes(total)
            if free < threshold:
                problems.append(("storage low on free space", f"{free} bytes free of {total} "
                                 f"on {self.root}, below {threshold} (min(100 MiB, "
                                 f"{MIN_FREE_PERCENT}% of the file system))"))
        failed = self.last_write_error
        if failed is not None and failed.cleared_at is None and now - failed.at < WRITE_ERROR_HOLD:
            problems.append(("storage write failed", f"the last write to storage failed: "
                             f"{failed.code} ({failed.error}) at {failed.time}, {failed.op} of "
                             f"{failed.digest or 'a blob'}; nothing was published"))
        return {
            "status": problems[0][0] if problems else "ok",
            "problems": [f"{name}: {detail}" for name, detail in problems],
            "storage": {"root": str(self.root), "writable": writable, "free_bytes": free,
                        "total_bytes": total, "min_free_bytes": threshold, "free_inodes": inodes,
                        "last_write_error": asdict(failed) if failed else None},
        }
