"""TTL: after blobttl the cache fetches the blob again, and the expired copy is gone."""

from __future__ import annotations

import math
import time

import pytest
import yaml

from cache_under_test.durations import human, parse_duration
from fixtures.harness.diagnosis import TTL, fail, requires


def _blobttl(target) -> tuple[float | None, dict]:
    if target.cache_config is None:
        pytest.skip("no --cache-config: the TTL check needs the cache's blobttl")
    config = yaml.safe_load(target.cache_config.read_text()) or {}
    for entry in (config.get("middleware") or {}).get("registry") or []:
        if isinstance(entry, dict) and entry.get("name") == "downstream":
            value = (entry.get("options") or {}).get("blobttl")
            return (parse_duration(value)[0] if value is not None else None), config
    return None, config


def _fetch(target, repo: str, digest: str):
    with target.client() as client:
        return client.follow(client.get_blob(repo, digest))


def test_expired_copy_is_fetched_again(target, push_image, evidence, writes):
    """Past blobttl (counted from the fetch), the copy is removed and the next request misses."""
    requires("test_4_cache_serves_each_blob_without_authorization",
             "test_blobttl_needs_delete_enabled", "test_blobttl_has_a_unit")
    ttl, config = _blobttl(target)
    if ttl is None:
        pytest.skip("blobttl is not set: the cache keeps its copies (nothing expires)")
    margin = min(ttl / 2, 30.0) + 2.0
    if ttl + margin > target.ttl_wait:
        pytest.skip(f"blobttl is {human(ttl)}: observing it needs --ttl-wait "
                    f"{math.ceil(ttl + margin)} (now {target.ttl_wait:g})")
    image = push_image(layers=1, layer_size=64 * 1024, tag="ttl")
    digest = image.layers[0].digest
    first = _fetch(target, target.test_repo, digest)
    fetched_at = time.monotonic()
    if first.status_code != 200:
        fail(TTL, f"the first pull of {digest[:19]} failed ({first.status_code})",
             "see the pull cycle checks")
    time.sleep(ttl + margin)
    root = ((config.get("storage") or {}).get("filesystem") or {}).get("rootdirectory",
                                                                        "/var/lib/registry")
    hexpart = digest.split(":", 1)[1]
    path = f"{root}/docker/registry/v2/blobs/sha256/{hexpart[:2]}/{hexpart}/data"
    host = target.host()
    if host is not None:
        if host.file(path).exists:
            delete = ((config.get("storage") or {}).get("delete") or {}).get("enabled")
            fail(TTL, f"the expired copy {path} is still on the cache "
                 f"{time.monotonic() - fetched_at:.0f} s after the fetch (blobttl {human(ttl)})",
                 "the cache does not enforce blobttl: read its logs for blob.expired and check "
                 "its version" if delete else "set storage.delete.enabled: true in config.yml; "
                 "without it nothing expires")
        evidence.note(f"expired copy removed from {path}")
    else:
        evidence.note("storage not inspected (no --cache-host)")
    second = _fetch(target, target.test_repo, digest)
    age = time.monotonic() - fetched_at
    if second.headers.get("x-cache") == "HIT":
        fail(TTL, f"the cache served {digest[:19]} from its copy {age:.0f} s after fetching "
             f"it, past blobttl {human(ttl)}", "check blobttl's unit in config.yml (a bare "
             "number is nanoseconds) and that the cache enforces it")
    evidence.note(f"after {age:.0f} s (blobttl {human(ttl)}): X-Cache "
                  f"{second.headers.get('x-cache', '?')}")
