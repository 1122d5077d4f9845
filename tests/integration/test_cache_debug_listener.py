"""What the cache tells an unauthenticated client: the public listener's ``/health`` is the
status alone and there is no ``/metrics``; the detail (upstream URLs, signing key ids, storage)
and the metrics are on the debug listener, ``http.debug.addr`` as distribution names it, or on
the public listener only with the explicit opt-in ``DTRCACHE_PUBLIC_DEBUG=1`` and no debug
address."""

from __future__ import annotations

import httpx

from dtr_cache_check.probes.logs import events


def get(pki, url: str) -> httpx.Response:
    with httpx.Client(verify=pki.context, timeout=10) as http:
        return http.get(url)


def test_the_public_listener_discloses_nothing(registry, make_cache, pki, processes):
    cache = make_cache([registry.url], processes=processes)
    health = get(pki, f"{cache.url}/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}  # no upstream URLs, key ids, storage, faults
    assert registry.url not in health.text and str(registry.port) not in health.text
    for path in ("/metrics", "/debug/health"):
        assert get(pki, f"{cache.url}{path}").status_code == 404, path


def test_the_debug_listener_has_the_detail_and_the_metrics(registry, make_cache, push, client,
                                                           pki, processes):
    digest, data = push(registry)
    cache = make_cache([registry.url], processes=processes, debug=True)
    debug = cache.extra["debug_url"]
    c = client(cache)
    c.get_blob("team/app", digest)
    c.get_blob("team/app", digest)
    for path in ("/health", "/debug/health"):  # distribution's name for it, and ours
        detail = httpx.get(debug + path, timeout=10)
        assert detail.status_code == 200
        body = detail.json()
        assert body["status"] == "ok" and body["upstreams"] == [registry.url]
        assert {"keys", "storage", "problems", "fills_in_flight"} <= set(body)
    metrics = httpx.get(debug + "/metrics", timeout=10).text  # every process's, summed
    assert "dtrcache_blob_hits_total 1.0" in metrics
    assert f"dtrcache_upstream_bytes_total {float(len(data))}" in metrics
    # The public listener still tells nothing more.
    assert get(pki, f"{cache.url}/health").json() == {"status": "ok"}
    assert get(pki, f"{cache.url}/metrics").status_code == 404
    started = events(cache.log_lines(), "debug.started")
    assert len(started) == 1 and started[0].get("addr") == debug.removeprefix("http://")


def test_public_detail_only_by_explicit_opt_in(registry, make_cache, pki):
    cache = make_cache([registry.url], env={"DTRCACHE_PUBLIC_DEBUG": "1"})
    assert get(pki, f"{cache.url}/health").json()["upstreams"] == [registry.url]
    assert "dtrcache_blob_hits_total" in get(pki, f"{cache.url}/metrics").text
    warned = [w.get("problem") for w in events(cache.log_lines(), "config.warning")]
    assert any("DTRCACHE_PUBLIC_DEBUG" in w for w in warned), warned


def test_the_opt_in_yields_to_a_debug_address(registry, make_cache, pki):
    cache = make_cache([registry.url], debug=True, env={"DTRCACHE_PUBLIC_DEBUG": "1"})
    assert get(pki, f"{cache.url}/health").json() == {"status": "ok"}
    assert get(pki, f"{cache.url}/metrics").status_code == 404
    assert httpx.get(cache.extra["debug_url"] + "/metrics", timeout=10).status_code == 200
