"""The cache as a distribution-built cache shows itself (``DTRCACHE_PROFILE=distribution``): no
X-Cache, no JSON events, distribution's logrus lines; and what both profiles give: Go's line
for a refused TLS handshake (or the ``tls.handshake_error`` event), distribution's proxy
counters on the debug listener."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dtr_cache_formats import distribution_metrics as dm

pytestmark = [pytest.mark.integration]

PROFILES = ["reference", "distribution"]
NAMES = {"requests": dm.REQUESTS, "hits": dm.HITS, "misses": dm.MISSES,
         "pulled": dm.PULLED_BYTES, "pushed": dm.PUSHED_BYTES}


def proxy_counters(cache, kind: str = "blob") -> dict[str, float]:
    """distribution's proxy counters of ``kind`` on the cache's debug listener."""
    text = httpx.get(cache.extra["debug_url"] + "/metrics", timeout=10).text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("type") == kind:
                values[sample.name] = sample.value
    return {short: values.get(name) for short, name in NAMES.items()}


def profile_env(profile: str) -> dict:
    return {"DTRCACHE_PROFILE": profile} if profile != "reference" else {}


@pytest.mark.parametrize("profile", PROFILES)
def test_the_proxy_counters_move_as_distributions_across_a_miss_then_a_hit(
        registry, make_cache, push, client, profile):
    size = 300 * 1024
    digest, _ = push(registry, size=size)
    cache = make_cache([registry.url], debug=True, env=profile_env(profile))
    before = proxy_counters(cache)
    assert before == dict.fromkeys(NAMES, 0.0), "every series is there from the start, at 0"
    assert proxy_counters(cache, "manifest") == dict.fromkeys(NAMES, 0.0)
    c = client(cache)
    c.get_blob("team/app", digest)
    after_miss = proxy_counters(cache)
    assert after_miss == {"requests": 1, "hits": 0, "misses": 1, "pulled": size, "pushed": size}
    c.get_blob("team/app", digest)
    after_hit = proxy_counters(cache)
    assert after_hit == {"requests": 2, "hits": 1, "misses": 1, "pulled": size,
                         "pushed": 2 * size}
