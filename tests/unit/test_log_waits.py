"""When a log check stops waiting for lines: as soon as the lines hold all they will about a
digest (a cache's miss and hit, in events or in access lines), or show the answer went to
another client (another registry's logs); never while a labelled hit is still to come."""

from __future__ import annotations

import json

from dtr_cache_check.probes.logevidence import miss_and_hit_or_none
from dtr_cache_check.probes.logs import parse_lines

DIGEST = "sha256:" + "2" * 64
OURS = "dtr-cache-check/0.1.0 (run 3f2a)"


def access(agent: str, status: int = 200) -> str:
    """distribution's "response completed" line (JSON formatter) for a GET of DIGEST."""
    return json.dumps({"msg": "response completed", "http.request.method": "GET",
                       "http.request.uri": f"/v2/alice/app/blobs/{DIGEST}",
                       "http.request.useragent": agent, "http.response.status": status})


def event(name: str) -> str:
    return json.dumps({"event": name, "digest": DIGEST})


def test_events_wait_for_the_hit():
    assert not miss_and_hit_or_none(parse_lines([event("blob.miss")]), DIGEST)
    assert miss_and_hit_or_none(parse_lines([event("blob.miss"), event("blob.hit")]), DIGEST)


def test_access_lines_wait_for_two_answers():
    assert not miss_and_hit_or_none(parse_lines([access(OURS)]), DIGEST)
    assert miss_and_hit_or_none(parse_lines([access(OURS), access(OURS)]), DIGEST,
                                "dtr-cache-check/")


def test_answers_to_others_only_end_the_wait():
    # DTR's logs given as the cache's: its 200s went to the cache, its 307s to this run
    others = [access("dtr-content-cache/2.9"), access(OURS, status=307)]
    assert miss_and_hit_or_none(parse_lines(others), DIGEST, "dtr-cache-check/")


def test_no_line_yet_keeps_waiting():
    assert not miss_and_hit_or_none(parse_lines([]), DIGEST)
