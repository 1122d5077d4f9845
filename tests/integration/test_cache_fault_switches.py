"""The cache's TEST-ONLY defects the harness's fault matrix plants: ``refetch-always`` (a copy
kept, yet every request fetched again and the file rewritten) and ``no-single-flight``
(concurrent misses of one digest each fetch it)."""

from __future__ import annotations

import os
import threading

import httpx
import pytest

from dtr_cache_check.probes.registry import verify_digest
from dtr_cache_check.testkit.netproxy import TcpProxy
from dtr_cache_formats.distribution_metrics import blob_data_path

from .serverkit import upstream_gets, wait_for_event

pytestmark = [pytest.mark.integration]

CLIENTS = 4


def _stat(cache, digest: str) -> tuple[int, int, int]:
    st = os.stat(blob_data_path(str(cache.extra["storage"]), digest))
    return st.st_ino, st.st_size, st.st_mtime_ns


def test_refetch_always_fetches_every_request_and_rewrites_the_file(registry, make_cache, push,
                                                                    pki):
    digest, _ = push(registry, size=512 * 1024)
    cache = make_cache([registry.url], env={"DTRCACHE_TEST_FAULTS": "refetch-always"})
    url = f"{cache.url}/v2/team/app/blobs/{digest}"
    seen = []
    with httpx.Client(verify=pki.context, timeout=30) as http:
        for pull in (1, 2):
            answer = http.get(url)
            assert answer.status_code == 200 and verify_digest(answer.content, digest)
            wait_for_event(cache, "blob.fetched", count=pull, digest=digest)
            seen.append(_stat(cache, digest))
    assert upstream_gets(registry, "team/app", digest) == 2
    (inode1, size1, _), (inode2, size2, _) = seen
    assert size1 == size2 and inode1 != inode2, f"the stored file was not rewritten: {seen}"


def test_no_single_flight_fetches_once_per_concurrent_miss(registry, make_cache, push, pki):
    digest, _ = push(registry, size=1024 * 1024)
    # A slow link (about 2 s for all the fetches), so the misses overlap.
    with TcpProxy("127.0.0.1", registry.port, rate=2 * 1024 * 1024) as link:
        cache = make_cache([f"https://127.0.0.1:{link.port}"],
                           env={"DTRCACHE_TEST_FAULTS": "no-single-flight"})
        url = f"{cache.url}/v2/team/app/blobs/{digest}"
        bodies: list[bytes | None] = [None] * CLIENTS
        barrier = threading.Barrier(CLIENTS)

        def pull(i: int) -> None:
            with httpx.Client(verify=pki.context, timeout=60) as http:
                barrier.wait()
                answer = http.get(url)
                bodies[i] = answer.content if answer.status_code == 200 else None

        threads = [threading.Thread(target=pull, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert all(b is not None and verify_digest(b, digest) for b in bodies)
    assert upstream_gets(registry, "team/app", digest) == CLIENTS
