"""``If-Range`` (RFC 9110 13.1.5): a Range is honoured only when the validator is the blob's
strong ETag; any other validator (another ETag, a date: the cache sends no Last-Modified) gets
the whole blob, 200, on a miss and on a hit."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

OTHER_ETAG = '"sha256:' + "0" * 64 + '"'
A_DATE = "Mon, 07 Dec 2026 10:00:00 GMT"


def test_if_range_with_another_validator_gets_the_whole_blob(registry, make_cache, push, client,
                                                             processes):
    digest, data = push(registry)
    cache = make_cache([registry.url], processes=processes)
    c = client(cache)
    for validator, x_cache in ((OTHER_ETAG, "MISS"), (A_DATE, "HIT"), (f'W/"{digest}"', "HIT")):
        answer = c.get_blob("team/app", digest,
                            headers={"Range": "bytes=0-99", "If-Range": validator})
        assert answer.status_code == 200, (validator, answer.status_code)
        assert answer.content == data and answer.headers["x-cache"] == x_cache, validator
        assert "content-range" not in answer.headers
    matching = c.get_blob("team/app", digest,
                          headers={"Range": "bytes=0-99", "If-Range": f'"{digest}"'})
    assert matching.status_code == 206 and matching.content == data[:100]
