"""A blob's stored copy, as a request may be served from it: fresh (its TTL not run out),
open, and verified in this run (see ``verified``); one that is not its digest's is deleted and
logged as ``storage.corrupt``, and one that expired is removed: either is fetched again."""

from __future__ import annotations

import contextlib
import logging
import os
import time

from .events import emit
from .fill import FillRegistry
from .metrics import Metrics
from .names import Digest
from .storage import BlobStore
from .verified import Rehasher


class Hit:
    """A stored copy, open: its fd and fstat (what is served is what was checked)."""

    def __init__(self, fd: int, st: os.stat_result, digest: Digest):
        self.fd, self.st, self.digest = fd, st, digest
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            os.close(self.fd)


class StoredCopies:
    """Opens stored copies for requests; ``removes``: this process deletes expired and
    corrupt copies (the fetcher, or the only process), else it leaves that to the fetcher."""

    def __init__(self, store: BlobStore, fills: FillRegistry, metrics: Metrics,
                 removes: bool = True, faults: frozenset[str] = frozenset()):
        self.faults = faults  # TEST-ONLY modes (cache_under_test.faults); empty in real use
        self.store = store
        self.fills = fills
        self.metrics = metrics
        self.removes = removes
        self.rehasher = Rehasher()

    def open_fresh(self, digest: Digest, name: str) -> Hit | None:
        """The stored copy of ``digest``, open, unless it has expired (then the fetcher, or
        the only process, removes it: it is fetched again)."""
        if "refetch-always" in self.faults:
            return None  # TEST-ONLY: every request a miss, the copy rewritten by its fill
        opened = self.store.open(digest)
        if opened is None:
            return None
        hit = Hit(*opened, digest)
        if self.store.ttl is None or time.time() < hit.st.st_mtime + self.store.ttl:
            return hit
        hit.close()
        if self.removes and self.fills.get(digest) is None \
                and self.store.remove(digest):
            self.metrics.expired.inc()
            emit("blob.expired", digest=str(digest), repo=name, bytes=hit.st.st_size,
                 age_s=round(time.time() - hit.st.st_mtime, 1), reason="requested")
        return None

    async def open_verified(self, digest: Digest, name: str) -> Hit | None:
        """The fresh stored copy of ``digest``, open, once this run knows its bytes are the
        digest's (re-hashed if need be); a copy that is not is deleted, logged as
        ``storage.corrupt``, and None answered (it is fetched again)."""
        hit = self.open_fresh(digest, name)
        if hit is None or self.store.verified.check(digest, hit.st):
            return hit
        known = self.store.verified.stamp(digest)
        if known is not None and known.size != hit.st.st_size:
            problem = f"{hit.st.st_size} bytes on disk, {known.size} verified"
        elif await self.rehasher.matches(hit.fd, digest, hit.st):
            self.store.verified.record(digest, hit.st)
            return hit
        else:
            problem = "its bytes do not hash to its digest"
        hit.close()
        path = self.store.path(digest)
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == hit.st.st_ino and self.fills.get(digest) is None:
                self.store.remove(digest)
        self.metrics.errors.labels(kind="storage corrupt").inc()
        emit("storage.corrupt", logging.ERROR, digest=str(digest), repo=name, path=str(path),
             bytes=hit.st.st_size, problem=problem, action="deleted; fetching it again")
        return None
