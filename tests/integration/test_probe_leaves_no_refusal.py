"""Reading what a server presents leaves no refused handshake in its log: the bench's wait for
a restarted cache and the config check's fallback read the certificate without judging it, so
the next run's "no TLS errors in the cache's logs" sees only what clients really refused."""

from __future__ import annotations

import pytest

from dtr_cache_check.probes.logevidence import refused_handshakes
from dtr_cache_check.probes.tlsprobe import probe, served
from tests.integration.test_cache_distribution_profile import wait_lines

pytestmark = [pytest.mark.integration]


def test_reading_the_served_chain_is_not_a_refusal(registry, make_cache):
    cache = make_cache([registry.url], processes="1")
    version, chain = served(cache.url)
    assert version and chain, "the cache presented no certificate"
    # The control: a handshake that judges the certificate by the system roots (not the test
    # CA) is refused, and the cache logs it.
    assert probe(cache.url, None).trusted is False
    wait_lines(cache, refused_handshakes, "the distrusting probe's refusal", timeout=3.0)
    refusals = refused_handshakes(cache.log_lines())
    assert len(refusals) == 1, [line.raw for line in refusals]
