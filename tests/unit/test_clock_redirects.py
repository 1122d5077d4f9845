"""Whether a shared proxy may store DTR's 307 (RFC 9111 §3), header by header."""

from __future__ import annotations

import httpx
import pytest

from dtr_cache_check.probes.redirects import (
    cache_control,
    redirect_not_replayable,
    shared_cache_may_store,
)


def test_cache_control_parsing():
    assert cache_control('public, max-age="3600", No-Store') == {
        "public": "", "max-age": "3600", "no-store": ""}
    assert cache_control("") == {}


@pytest.mark.parametrize(("headers", "stored"), [
    ({"Cache-Control": "no-store"}, False),
    ({"Cache-Control": "public, max-age=3600, no-store"}, False),   # no-store wins
    ({"Cache-Control": "private, max-age=3600"}, False),
    ({"Cache-Control": "no-cache"}, False),                         # revalidated every time
    ({"Cache-Control": "max-age=0"}, False),
    ({}, False),                                 # a 307 is not heuristically cacheable
    ({"Cache-Control": "public, max-age=3600"}, True),
    ({"Cache-Control": "max-age=60"}, True),
    ({"Cache-Control": "no-cache, s-maxage=60"}, True),             # s-maxage for shared ones
    ({"Cache-Control": "public"}, True),
    ({"Expires": "Thu, 01 Jan 2099 00:00:00 GMT"}, True),
])
def test_shared_cache_may_store(headers, stored):
    assert shared_cache_may_store(headers)[0] is stored


def _answer(status: int, headers: dict) -> httpx.Response:
    return httpx.Response(status, headers=headers,
                          request=httpx.Request("GET", "https://dtr.test/v2/a/b/blobs/x"))


def test_a_replayable_redirect_is_a_finding_on_client_to_dtr():
    found = redirect_not_replayable(_answer(307, {"Cache-Control": "public, max-age=3600",
                                                  "Location": "https://cache/x"}))
    assert not found.ok and found.hop == "client->DTR"
    assert "no-store" in found.fix
    assert "may be stored and replayed" in found.cause


def test_no_store_redirect_passes_and_a_200_is_not_judged_a_pass():
    assert redirect_not_replayable(_answer(307, {"Cache-Control": "no-store"})).ok
    assert not redirect_not_replayable(_answer(200, {"Cache-Control": "no-store"})).ok
