"""The cache serves no stored byte it has not verified: a blob file changed behind its back
(a flipped bit, cut short, emptied, appended to, another blob's bytes under its name) is found
out before it is served (after a restart, by re-hashing it before its first serve; while it
runs, by its verified size, inode and mtime on every serve), deleted, logged as
``storage.corrupt`` and fetched again."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from dtr_cache_check.probes.logs import events
from dtr_cache_check.probes.registry import verify_digest

from .serverkit import wait_for_event

pytestmark = pytest.mark.integration

SIZE = 200_000


def _flip(data: bytes) -> bytes:
    return data[:SIZE // 2] + bytes([data[SIZE // 2] ^ 0x01]) + data[SIZE // 2 + 1:]


# What is written over a stored blob (its bytes, another blob's bytes of the same size).
TAMPER = {
    "flipped-bit": lambda data, other: _flip(data),
    "cut-short": lambda data, other: data[:-1000],
    "emptied": lambda data, other: b"",
    "appended-to": lambda data, other: data + b"\0",
    "another-blobs-bytes": lambda data, other: other,
}


def _stored(cache, digest: str) -> Path:
    hexpart = digest.split(":")[1]
    return (cache.extra["storage"] / "docker" / "registry" / "v2" / "blobs" / "sha256"
            / hexpart[:2] / hexpart / "data")


def _get(pki, cache, digest: str) -> httpx.Response:
    with httpx.Client(verify=pki.context, timeout=30) as http:
        return http.get(f"{cache.url}/v2/team/app/blobs/{digest}")


def _pushed(registry, push) -> dict[str, tuple[str, bytes]]:
    return {kind: push(registry, size=SIZE) for kind in TAMPER}


def _assert_refetched(pki, cache, registry, blobs: dict[str, tuple[str, bytes]]) -> None:
    """Every blob is served whole and right (fetched again), and was logged as corrupt."""
    for kind, (digest, data) in blobs.items():
        answer = _get(pki, cache, digest)
        assert answer.status_code == 200, (kind, answer.status_code)
        assert answer.content == data, f"{kind}: served bytes that are not the blob"
        assert answer.headers["x-cache"] == "MISS", kind
        corrupt = wait_for_event(cache, "storage.corrupt", digest=digest)
        assert corrupt[0].get("level") == "error", corrupt[0]
        again = _get(pki, cache, digest)
        assert again.headers["x-cache"] == "HIT" and verify_digest(again.content, digest), kind


def test_blobs_changed_while_the_cache_was_down_are_rehashed_before_serving(
        tmp_path, registry, make_cache, push, pki, processes):
    storage = tmp_path / "storage"
    cache = make_cache([registry.url], processes=processes, storage=storage)
    blobs = _pushed(registry, push)
    for digest, _ in blobs.values():
        assert _get(pki, cache, digest).headers["x-cache"] == "MISS"
    cache.stop()
    others = list(blobs.values())
    for i, (kind, (digest, data)) in enumerate(blobs.items()):
        _stored(cache, digest).write_bytes(TAMPER[kind](data, others[i - 1][1]))

    restarted = make_cache([registry.url], processes=processes, storage=storage)
    _assert_refetched(pki, restarted, registry, blobs)


def test_blobs_changed_while_the_cache_runs_are_never_served(registry, make_cache, push, pki,
                                                             processes):
    cache = make_cache([registry.url], processes=processes)
    blobs = _pushed(registry, push)
    for digest, _ in blobs.values():  # stored, and served once as a hit by every process
        for _ in range(3):
            assert _get(pki, cache, digest).status_code == 200
    others = list(blobs.values())
    for i, (kind, (digest, data)) in enumerate(blobs.items()):
        path = _stored(cache, digest)
        replacement = path.with_name("replacement")
        replacement.write_bytes(TAMPER[kind](data, others[i - 1][1]))
        stat = path.stat()  # the same mtime: only the size or the inode can tell
        os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.replace(replacement, path)
    _assert_refetched(pki, cache, registry, blobs)
    assert events(cache.log_lines(), "blob.hit", bytes=0) == []
