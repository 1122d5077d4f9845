"""TEST-ONLY fault modes: deliberately wrong behaviour, so the harness can prove that its
checks catch a cache that misbehaves. Off unless ``DTRCACHE_TEST_FAULTS`` names them; a cache
with one on says so loudly at start, in every blob event and on the detailed /health (the debug
listener's, see ``app``). Never in production.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ENV = "DTRCACHE_TEST_FAULTS"
CACHE_FAULTS = {
    "corrupt-bytes": "flip the last byte of every blob served",
    "ignore-ttl": "never expire a copy, whatever blobttl says",
    "skip-token-check": "serve cached blobs without verifying DTR's signature",
    "never-store": "never keep a copy: every request is a miss",
    "ignore-expiry": "accept signed tokens after they expired",
    "tls-1.1-only": "serve TLS 1.1 only, like a legacy front",
    "allow-weak-key": "start with a weak TLS key instead of refusing it",
    "refetch-always": "keep each blob, but fetch it again from the upstream on every request "
                      "(the stored file rewritten: a new inode and mtime)",
    "no-single-flight": "no single flight: concurrent misses of one digest each fetch it "
                        "from the upstream",
}


def parse(value: str | None, known: Mapping[str, str], env: str = ENV) -> frozenset[str]:
    """The fault names in a comma-separated ``value``; an unknown name is an error."""
    names = frozenset(n.strip() for n in (value or "").split(",") if n.strip())
    unknown = sorted(names - set(known))
    if unknown:
        raise ValueError(f"{env}: unknown fault mode(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    return names


def enabled(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The cache's fault modes switched on in the environment."""
    return parse((environ if environ is not None else os.environ).get(ENV), CACHE_FAULTS)
