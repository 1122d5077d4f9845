"""Benchmark blobs: random files written once, seeded into distribution's storage layout.

Every server measured serves the very same file: distribution from its storage, nginx through
a symlink to it, the cache from its own copy fetched (and verified) from distribution.
Writing the layout directly (blob data plus the repository's layer link) is distribution's
own on-disk format; it avoids pushing hundreds of MiB through the API before each run.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
_CHUNK = 4 * MIB


@dataclass(frozen=True)
class Blob:
    """One seeded blob: its digest, size, and the file distribution serves it from."""

    digest: str
    size: int
    path: Path

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    @property
    def label(self) -> str:
        return f"{self.size // MIB} MiB"


def seed_blob(storage: Path, repo: str, size: int) -> Blob:
    """Write ``size`` random bytes as a blob of ``repo`` into the registry root ``storage``."""
    v2 = storage / "docker" / "registry" / "v2"
    staging = v2 / f"_bench_staging_{os.getpid()}_{size}"
    staging.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    with staging.open("wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(_CHUNK, left))
            hasher.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    hexpart = hasher.hexdigest()
    data = v2 / "blobs" / "sha256" / hexpart[:2] / hexpart / "data"
    data.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, data)
    link = v2 / "repositories" / repo / "_layers" / "sha256" / hexpart / "link"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.write_text(f"sha256:{hexpart}")
    return Blob(f"sha256:{hexpart}", size, data)


def blob_path(repo: str, blob: Blob) -> str:
    """The registry API path of ``blob`` in ``repo``."""
    return f"/v2/{repo}/blobs/{blob.digest}"
