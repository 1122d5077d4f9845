"""A hung upstream holds at most ``DTRCACHE_MAX_FILLS`` fills: over that bound a cold miss is
answered at once, 503 with ``Retry-After``, and with a second upstream the healthy one takes
the new misses instead of queueing them behind the hung ones."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest

from . import cachekit

pytestmark = pytest.mark.integration
fake_dtr = cachekit.fake_dtr

BOUND = 3


def _hang(pki, urls: list[str], headers: dict) -> list[threading.Thread]:
    """GET each URL from a thread of its own; they hang with the upstream (until teardown)."""

    def pull(url: str) -> None:
        with httpx.Client(verify=pki.context, timeout=60) as http, \
                contextlib.suppress(httpx.TransportError):
            http.get(url, headers=headers)

    threads = [threading.Thread(target=pull, args=(url,), daemon=True) for url in urls]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # their fills are running now, hung
    return threads


def _timed_get(pki, url: str, headers: dict,
               timeout: float = 8) -> tuple[int | str, dict, float]:
    began = time.monotonic()
    with httpx.Client(verify=pki.context, timeout=timeout) as http:
        try:
            answer = http.get(url, headers=headers)
        except httpx.TimeoutException:
            return "timed out", {}, time.monotonic() - began
    return answer.status_code, dict(answer.headers), time.monotonic() - began


# make_cache before fake_dtr: the fake stops first at teardown, ending the hung fills.
def test_over_the_bound_a_cold_miss_gets_503_and_retry_after_at_once(make_cache, fake_dtr,
                                                                      pki, processes):
    cache = make_cache([fake_dtr.url], processes=processes,
                       env={"DTRCACHE_MAX_FILLS": str(BOUND)})
    auth = {"Authorization": fake_dtr.authorization()}
    hung = [fake_dtr.add(1000)[0] for _ in range(BOUND + 1)]
    fake_dtr.hang.update(hung)
    _hang(pki, [fake_dtr.blob_url(cache.url, d) for d in hung[:BOUND]], auth)

    status, headers, took = _timed_get(pki, fake_dtr.blob_url(cache.url, hung[-1]), auth)
    assert status == 503, (status, took)
    assert int(headers["retry-after"]) > 0
    assert took < 3, took
    # A blob already in flight is joined, not refused; and the bound is for fills, not hits.
    joined, _, _ = _timed_get(pki, fake_dtr.blob_url(cache.url, hung[0]), auth, timeout=2)
    assert joined == "timed out"


def test_a_healthy_upstream_takes_the_misses_a_hung_one_cannot(make_cache, fake_dtr, registry,
                                                               push, pki):
    cache = make_cache([fake_dtr.url, registry.url], processes="1",
                       env={"DTRCACHE_MAX_FILLS": str(BOUND)})
    auth = {"Authorization": fake_dtr.authorization()}
    blobs = [push(registry, size=100_000) for _ in range(2 * BOUND + 4)]
    fake_dtr.hang.update(digest for digest, _ in blobs)  # the first upstream hangs on them all
    urls = [fake_dtr.blob_url(cache.url, digest) for digest, _ in blobs]
    # Round robin: every other of these goes to the hung upstream, which is then at its bound.
    _hang(pki, urls[:2 * BOUND], auth)
    # From now on every new miss goes to the healthy upstream, and is served at once.
    later = [_timed_get(pki, url, auth) for url in urls[2 * BOUND:]]
    assert [status for status, _, _ in later] == [200] * 4, later
    assert max(took for _, _, took in later) < 3, later
