"""Single flight: N concurrent misses make one upstream fetch; all stream while it runs."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import httpx
import pytest

from dtr_cache_check.probes.logs import events
from dtr_cache_check.probes.registry import verify_digest
from dtr_cache_check.testkit.netproxy import TcpProxy

from .serverkit import upstream_gets, wait_for_event

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 32


def _log_time(line) -> float:
    return datetime.fromisoformat(line.get("time").replace("Z", "+00:00")).timestamp()


def test_32_concurrent_misses_make_one_upstream_fetch(registry, make_cache, push, pki, processes):
    size = 6 * 1024 * 1024
    digest, _ = push(registry, size=size)
    # A slow link (about 3 s for the blob) between cache and upstream, so the fetch is
    # still running while every client is being served.
    with TcpProxy("127.0.0.1", registry.port, rate=2 * 1024 * 1024) as link:
        cache = make_cache([f"https://127.0.0.1:{link.port}"], processes=processes)
        url = f"{cache.url}/v2/team/app/blobs/{digest}"
        first_byte: list[float] = [0.0] * CLIENTS
        bodies: list[bytes | None] = [None] * CLIENTS
        barrier = threading.Barrier(CLIENTS)

        def pull(i: int) -> None:
            with httpx.Client(verify=pki.context, timeout=60) as http:
                barrier.wait()
                with http.stream("GET", url) as r:
                    chunks = []
                    for chunk in r.iter_bytes():
                        if not first_byte[i]:
                            first_byte[i] = time.time()
                        chunks.append(chunk)
                    bodies[i] = b"".join(chunks) if r.status_code == 200 else None

        threads = [threading.Thread(target=pull, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)

    assert all(b is not None and verify_digest(b, digest) for b in bodies)
    assert upstream_gets(registry, "team/app", digest) == 1
    wait_for_event(cache, "blob.join", digest=digest, count=CLIENTS - 1)
    lines = cache.log_lines()
    fetched = events(lines, "blob.fetched", digest=digest)
    assert len(fetched) == 1
    assert len(events(lines, "blob.miss", digest=digest)) == 1
    assert len(events(lines, "blob.join", digest=digest)) == CLIENTS - 1
    fetch_done = _log_time(fetched[0])
    late = [round(t - fetch_done, 2) for t in first_byte if t >= fetch_done]
    assert not late, f"clients got their first byte only after the fetch ended: {late}"


def test_client_disconnect_does_not_abort_the_fill(registry, make_cache, push, pki, processes):
    digest, _ = push(registry, size=4 * 1024 * 1024)
    with TcpProxy("127.0.0.1", registry.port, rate=2 * 1024 * 1024) as link:
        cache = make_cache([f"https://127.0.0.1:{link.port}"], processes=processes)
        url = f"{cache.url}/v2/team/app/blobs/{digest}"
        with httpx.Client(verify=pki.context, timeout=30) as http, http.stream("GET", url) as r:
            next(r.iter_bytes())  # got something, then hang up
        wait_for_event(cache, "blob.fetched", timeout=30, digest=digest)
        with httpx.Client(verify=pki.context) as http:
            again = http.get(url)
    assert again.headers["x-cache"] == "HIT" and verify_digest(again.content, digest)
    assert upstream_gets(registry, "team/app", digest) == 1


def test_a_client_that_hangs_up_on_a_hit_is_not_sent_the_rest(registry, make_cache, push, pki,
                                                                processes):
    size = 32 * 1024 * 1024
    digest, _ = push(registry, size=size)
    cache = make_cache([registry.url], processes=processes)
    url = f"{cache.url}/v2/team/app/blobs/{digest}"
    with httpx.Client(verify=pki.context, timeout=30) as http:
        assert http.get(url).headers["x-cache"] == "MISS"
        with http.stream("GET", url) as r:
            assert r.headers["x-cache"] == "HIT"
            next(r.iter_bytes())  # got something, then hang up
    gone = wait_for_event(cache, "blob.client_gone", digest=digest)
    assert gone[0].get("client") == "127.0.0.1"
    # A TLS write to a closed connection is dropped silently: the cache must notice the loss
    # rather than read and "send" the whole blob to nobody (and log it as a complete hit).
    time.sleep(0.5)
    assert events(cache.log_lines(), "blob.hit", digest=digest) == []
