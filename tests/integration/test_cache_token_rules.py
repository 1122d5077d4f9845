"""What the cache believes of a signed token: DTR's clock may be ahead by up to the leeway
(``DTRCACHE_CLOCK_LEEWAY``, 60 s by default, the skew logged); a token lives at most
``DTRCACHE_MAX_TOKEN_LIFETIME`` and must say when it was issued; the signing keys are fetched
again on a timer (``DTRCACHE_KEYS_REFRESH``), so a withdrawn or replaced key stops verifying."""

from __future__ import annotations

import time

import httpx
import pytest

from cache_under_test.blobtoken import SigningKey

from . import cachekit
from .serverkit import wait_for_event

pytestmark = pytest.mark.integration
fake_dtr = cachekit.fake_dtr


def _status(pki, url: str) -> int:
    with httpx.Client(verify=pki.context, timeout=20) as http:
        return http.get(url).status_code


def test_a_dtr_clock_ahead_by_less_than_the_leeway_is_believed_and_the_skew_logged(
        make_cache, fake_dtr, pki):
    cache = make_cache([fake_dtr.url], processes="1")
    wider = make_cache([fake_dtr.url], processes="1", env={"DTRCACHE_CLOCK_LEEWAY": "3m"})
    digest, _ = fake_dtr.add()
    now = time.time()
    ahead = fake_dtr.sign(digest, iat=int(now + 15), exp=int(now + 315))
    assert _status(pki, fake_dtr.blob_url(cache.url, digest, ahead)) == 200
    skew = wait_for_event(cache, "auth.clock_skew")[-1]
    assert 12 <= skew.get("skew_s") <= 18, skew

    far = fake_dtr.sign(digest, iat=int(now + 120), exp=int(now + 420))
    assert _status(pki, fake_dtr.blob_url(cache.url, digest, far)) == 401
    refused = wait_for_event(cache, "auth.clock_skew", count=2)[-1]
    assert refused.get("skew_s") >= 115 and refused.get("level") == "warning", refused
    assert _status(pki, fake_dtr.blob_url(wider.url, digest, far)) == 200


def test_a_token_must_be_short_lived_and_say_when_it_was_issued(make_cache, fake_dtr, pki):
    cache = make_cache([fake_dtr.url], processes="1",
                       env={"DTRCACHE_MAX_TOKEN_LIFETIME": "10m"})
    default = make_cache([fake_dtr.url], processes="1")
    digest, _ = fake_dtr.add()
    now = int(time.time())
    url = fake_dtr.blob_url
    assert _status(pki, url(cache.url, digest, fake_dtr.sign(digest))) == 200  # 5 minutes
    assert _status(pki, url(cache.url, digest, fake_dtr.sign(digest, exp=now + 3600))) == 401
    years = fake_dtr.sign(digest, exp=now + 10 * 365 * 86400)
    assert _status(pki, url(default.url, digest, years)) == 401
    assert _status(pki, url(default.url, digest, fake_dtr.sign(digest, iat=None))) == 401
    denied = [line.get("reason") for line in default.log_lines()
              if line.get("event") == "auth.denied"]
    assert any("lifetime" in reason for reason in denied), denied
    assert any("iat" in reason for reason in denied), denied


def test_signing_keys_are_fetched_again_on_a_timer(make_cache, fake_dtr, pki, processes):
    cache = make_cache([fake_dtr.url], processes=processes, env={"DTRCACHE_KEYS_REFRESH": "1s"})
    digest, _ = fake_dtr.add()
    old = fake_dtr.keys[0]
    assert _status(pki, fake_dtr.blob_url(cache.url, digest, fake_dtr.sign(digest))) == 200
    # DTR replaces its key under the same key id: no unknown kid will ever tell the cache.
    fake_dtr.keys[:] = [SigningKey.generate(old.key_id)]
    deadline = time.monotonic() + 8
    while _status(pki, fake_dtr.blob_url(cache.url, digest, fake_dtr.sign(digest))) != 200:
        assert time.monotonic() < deadline, "the replaced key was never picked up"
        time.sleep(0.3)
    time.sleep(2.5)  # every process has refreshed by now
    for _ in range(4):  # the withdrawn key verifies nowhere
        assert _status(pki, fake_dtr.blob_url(cache.url, digest,
                                              fake_dtr.sign(digest, key=old))) == 401
