"""The reference cache in front of a real distribution registry: miss, hit, Range, TTL, restart."""

from __future__ import annotations

import time

import httpx
import pytest

from dtr_cache_check.probes.logs import events
from dtr_cache_check.probes.registry import verify_digest

from .serverkit import stored_files, upstream_gets, wait_for_event

pytestmark = pytest.mark.integration


def test_miss_then_hit_with_digest_verified(registry, make_cache, push, client, processes):
    digest, data = push(registry)
    cache = make_cache([registry.url], processes=processes)
    c = client(cache)
    first = c.get_blob("team/app", digest)
    second = c.get_blob("team/app", digest)
    assert (first.status_code, first.headers["x-cache"]) == (200, "MISS")
    assert (second.status_code, second.headers["x-cache"]) == (200, "HIT")
    assert verify_digest(first.content, digest) and verify_digest(second.content, digest)
    assert second.headers["docker-content-digest"] == digest
    hit = wait_for_event(cache, "blob.hit", digest=digest)
    miss = events(cache.log_lines(), "blob.miss", digest=digest)
    assert miss and hit and miss[0].number < hit[0].number
    assert miss[0].get("upstream") == registry.url and miss[0].get("bytes") == len(data)
    assert upstream_gets(registry, "team/app", digest) == 1
    hexpart = digest.split(":")[1]
    expected = (cache.extra["storage"] / "docker/registry/v2/blobs/sha256" / hexpart[:2]
                / hexpart / "data")
    assert expected.read_bytes() == data


def test_range_on_miss_and_on_hit(registry, make_cache, push, client, processes):
    digest, data = push(registry, size=100_000)
    c = client(make_cache([registry.url], processes=processes))
    for expected_cache in ("MISS", "HIT"):
        r = c.get_blob("team/app", digest, headers={"Range": "bytes=1000-1999"})
        assert r.status_code == 206, r.text
        assert r.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
        assert r.content == data[1000:2000]
        assert r.headers["x-cache"] == expected_cache
    tail = c.get_blob("team/app", digest, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, data[-10:])
    bad = c.get_blob("team/app", digest, headers={"Range": f"bytes={len(data)}-"})
    assert bad.status_code == 416


def test_head_on_miss_and_hit_sends_no_body(registry, make_cache, push, client, processes):
    digest, data = push(registry)
    c = client(make_cache([registry.url], processes=processes))
    miss = c.get_blob("team/app", digest, method="HEAD")
    assert miss.status_code == 200 and miss.headers["x-cache"] == "MISS"
    assert int(miss.headers["content-length"]) == len(data) and miss.content == b""
    c.get_blob("team/app", digest)
    hit = c.get_blob("team/app", digest, method="HEAD")
    assert hit.headers["x-cache"] == "HIT" and int(hit.headers["content-length"]) == len(data)


def test_unknown_blob_is_a_registry_404(registry, make_cache, client):
    c = client(make_cache([registry.url]))
    r = c.get_blob("team/app", "sha256:" + "0" * 64)
    assert r.status_code == 404
    assert r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_ttl_expiry_refetches_and_sweeps(registry, make_cache, push, client, processes):
    digest, _ = push(registry)
    other, _ = push(registry)
    cache = make_cache([registry.url], blobttl="1s", processes=processes)
    c = client(cache)
    assert c.get_blob("team/app", digest).headers["x-cache"] == "MISS"
    assert c.get_blob("team/app", other).headers["x-cache"] == "MISS"
    assert c.get_blob("team/app", digest).headers["x-cache"] == "HIT"
    time.sleep(1.3)
    again = c.get_blob("team/app", digest)
    assert again.headers["x-cache"] == "MISS"
    assert verify_digest(again.content, digest)
    assert upstream_gets(registry, "team/app", digest) == 2
    # The blob nobody asked for again is removed in the background.
    wait_for_event(cache, "blob.expired", digest=other, reason="ttl sweep")
    assert not any(other.split(":")[1] in str(p) for p in stored_files(cache))


def test_expiry_survives_a_restart(tmp_path, registry, make_cache, push, client):
    digest, _ = push(registry)
    storage = tmp_path / "shared-storage"
    first = make_cache([registry.url], blobttl="1h", storage=storage)
    assert client(first).get_blob("team/app", digest).headers["x-cache"] == "MISS"
    first.stop()
    second = make_cache([registry.url], blobttl="1h", storage=storage)
    assert client(second).get_blob("team/app", digest).headers["x-cache"] == "HIT"
    second.stop()
    time.sleep(1.1)
    third = make_cache([registry.url], blobttl="1s", storage=storage)
    assert client(third).get_blob("team/app", digest).headers["x-cache"] == "MISS"
    assert upstream_gets(registry, "team/app", digest) == 2


def test_read_only_cache_refuses_writes(registry, make_cache, client):
    c = client(make_cache([registry.url]))
    for method, path in [("POST", "/v2/team/app/blobs/uploads/"),
                         ("PUT", "/v2/team/app/manifests/latest"),
                         ("PATCH", "/v2/team/app/blobs/uploads/x"),
                         ("DELETE", "/v2/team/app/blobs/sha256:" + "a" * 64)]:
        r = c.request(method, path)
        assert r.status_code == 405, (method, path)
        assert r.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_base_catalog_health_metrics(registry, make_cache, push, client, processes):
    digest, data = push(registry)
    cache = make_cache([registry.url], processes=processes, debug=True)
    c = client(cache)
    base = c.ping()
    assert base.status_code == 200
    assert base.headers["docker-distribution-api-version"] == "registry/2.0"
    assert c.request("GET", "/v2/_catalog").json() == {"repositories": []}
    assert c.request("GET", "/health").json() == {"status": "ok"}  # the detail is on debug
    c.get_blob("team/app", digest)
    c.get_blob("team/app", digest)
    metrics = httpx.get(cache.extra["debug_url"] + "/metrics", timeout=10).text
    assert "dtrcache_blob_hits_total 1.0" in metrics
    assert "dtrcache_blob_misses_total 1.0" in metrics
    assert f"dtrcache_upstream_bytes_total {float(len(data))}" in metrics


def test_manifests_pass_through_by_tag(registry, make_cache, push, client, pki):
    import json

    digest, data = push(registry, size=1000)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest, "size": len(data)},
        "layers": []}).encode()
    upstream = client(registry)
    upstream.push_manifest("team/app", "v1", manifest, "application/vnd.oci.image.manifest.v1+json")
    c = client(make_cache([registry.url]))
    r = c.get_manifest("team/app", "v1")
    assert r.status_code == 200 and r.content == manifest
    assert r.headers["docker-content-digest"].startswith("sha256:")
    assert c.get_manifest("team/app", "nope").status_code == 404


def test_config_error_exits_before_binding(tmp_path, pki, make_cache):
    from dtr_cache_check.testkit.local import free_port

    port = free_port()
    cache = make_cache(["not-a-url"], wait=False, port=port, blobttl="24h")
    cache.process.wait(20)
    assert cache.process.returncode == 2
    out = cache.log_path.read_text()
    assert "config error: middleware.registry[downstream].options.upstreams[0]:" in out
    assert "did not start" in out
