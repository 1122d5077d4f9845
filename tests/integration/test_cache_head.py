"""HEAD on a blob answers exactly the headers GET does, minus the body: on a miss and on a hit,
whole and with a Range, in both shapes of the cache."""

from __future__ import annotations

import httpx
import pytest

from dtr_cache_check.probes.registry import verify_digest

pytestmark = pytest.mark.integration

# Headers that say nothing about the blob (per connection or per moment).
UNRELATED = {"date", "server", "connection", "keep-alive"}


def blob_headers(response: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items() if k.lower() not in UNRELATED}


def test_head_sends_the_headers_of_get_on_a_miss_and_on_a_hit(registry, make_cache, push,
                                                                client, processes):
    digest, data = push(registry)
    c = client(make_cache([registry.url], processes=processes))
    head_miss = c.get_blob("team/app", digest, method="HEAD")
    get_miss = c.get_blob("team/app", digest)
    head_hit = c.get_blob("team/app", digest, method="HEAD")
    get_hit = c.get_blob("team/app", digest)
    assert verify_digest(get_miss.content, digest) and verify_digest(get_hit.content, digest)
    for head, get, x_cache in ((head_miss, get_miss, "MISS"), (head_hit, get_hit, "HIT")):
        assert (head.status_code, get.status_code) == (200, 200)
        assert head.content == b""
        assert head.headers["x-cache"] == x_cache
        assert head.headers["etag"] == f'"{digest}"'
        assert head.headers["accept-ranges"] == "bytes"
        assert int(head.headers["content-length"]) == len(data)
        assert blob_headers(head) == blob_headers(get), x_cache


def test_head_with_a_range_on_a_miss_answers_as_get_does(registry, make_cache, push, client,
                                                          processes):
    digest, data = push(registry, size=100_000)
    other, _ = push(registry, size=100_000)
    c = client(make_cache([registry.url], processes=processes))
    span = {"Range": "bytes=1000-1999"}
    head = c.get_blob("team/app", digest, method="HEAD", headers=span)
    # A GET of another, still missing blob of the same size: HEAD must not have fetched this one.
    get = c.get_blob("team/app", other, headers=span)
    assert (head.status_code, get.status_code) == (206, 206)
    assert head.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    assert head.headers["x-cache"] == get.headers["x-cache"] == "MISS"
    expected = blob_headers(get)
    expected["docker-content-digest"] = digest
    expected["etag"] = f'"{digest}"'
    assert blob_headers(head) == expected
