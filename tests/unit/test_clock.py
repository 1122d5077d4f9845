"""Clock skew from Date headers, and certificates judged on skewed clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dtr_cache_check.pki import CertificateAuthority
from dtr_cache_check.probes.clock import (
    SKEW_LIMIT_S,
    ClockReading,
    certificates_vs_clocks,
    judge_clocks,
    skew_of,
)

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def test_skew_from_a_date_header():
    # Sent at NOW, answered 0.4 s later: midpoint NOW + 0.2. The server said NOW + 600 s
    # (truncated to its second, so +0.5 on average): skew 600 + 0.5 - 0.2 = 600.3 s.
    header = "Fri, 15 Jan 2027 08:10:00 GMT"
    skew, uncertainty = skew_of(header, NOW, NOW + 0.4)
    assert skew == pytest.approx(600.3)
    assert uncertainty == pytest.approx(1.2)   # half the 0.4 s round trip + the header's 1 s


def test_no_or_bad_date_header_gives_no_skew():
    assert skew_of(None, NOW, NOW)[0] is None
    assert skew_of("yesterday", NOW, NOW)[0] is None


def reading(host: str, skew: float | None, uncertainty: float = 1.0) -> ClockReading:
    return ClockReading(host, f"https://{host.lower()}/v2/", "some date", skew, uncertainty)


def test_limit_counts_the_uncertainty():
    assert SKEW_LIMIT_S == 30.0
    assert not reading("DTR", 30.9, 1.0).beyond      # 30.9 - 1.0 <= 30
    assert reading("DTR", -31.5, 1.0).beyond         # 31.5 - 1.0 > 30


def test_a_skewed_dtr_names_ntp_on_dtr():
    found = judge_clocks([reading("DTR", -600.0), reading("cache", 0.4)])
    dtr, cache = found
    assert not dtr.ok and dtr.hop == "client->DTR"
    assert "600 s behind" in dtr.cause and "NTP on DTR" in dtr.fix
    assert cache.ok and cache.hop == "client->cache"


def test_every_server_off_the_same_way_means_this_machine_is_off():
    found = judge_clocks([reading("DTR", 120.0), reading("cache", 118.0)])
    assert len(found) == 1 and not found[0].ok
    assert "this machine's clock is 119 s behind" in found[0].cause
    assert "machine running the checks" in found[0].fix


def test_no_date_header_is_a_finding():
    (found,) = judge_clocks([reading("cache", None)])
    assert not found.ok and "no readable Date" in found.cause


@pytest.fixture(scope="module")
def fresh_cert():
    """A certificate valid from 2 minutes before ``now`` (not backdated by the usual 5)."""
    now = datetime.now(UTC)
    root = CertificateAuthority.create("Clock Root")
    issued = root.issue_server(["cache.test"], not_before=now - timedelta(minutes=2))
    return issued.cert, now


def test_certificate_not_yet_valid_on_a_lagging_verifier(fresh_cert):
    cert, now = fresh_cert
    # DTR verifies the cache's certificate; DTR's clock is 10 minutes behind: notBefore
    # (now - 2 min) is 8 minutes in DTR's future.
    found = certificates_vs_clocks({"cache": cert}, {"DTR": reading("DTR", -600.0)}, now)
    here, on_dtr = found
    assert here.ok and here.hop == "client->cache"
    assert not on_dtr.ok and on_dtr.hop == "DTR->cache"
    assert "not yet valid by DTR's clock" in on_dtr.cause and "NTP on DTR's host" in on_dtr.fix


def test_certificate_valid_on_a_clock_within_its_window(fresh_cert):
    cert, now = fresh_cert
    found = certificates_vs_clocks({"cache": cert}, {"DTR": reading("DTR", -60.0)}, now)
    assert all(f.ok for f in found)


def test_certificate_expired_on_a_clock_far_ahead(fresh_cert):
    cert, now = fresh_cert
    ahead = (cert.not_valid_after_utc - now).total_seconds() + 3600
    found = certificates_vs_clocks({"DTR": cert}, {"cache": reading("cache", ahead)}, now)
    assert [f.ok for f in found] == [True, False]
    assert found[1].hop == "cache->DTR" and "expired by cache's clock" in found[1].cause
