"""TTL: after blobttl the cache fetches the blob again, and the expired copy is gone."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import httpx
import pytest

from dtr_cache_check.probes import logevidence
from dtr_cache_check.steps.deployed import load_files
from dtr_cache_check.steps.findings import TTL, fail, not_applicable, unobserved
from dtr_cache_check.steps.pullcycle import cache_lines, judge_cache_answer, transport_failure
from dtr_cache_formats.durations import human, parse_duration

pytestmark = [pytest.mark.family("TTL"), pytest.mark.hop(TTL)]


def _fetch(target, digest: str, since: datetime):
    with target.client() as client:
        try:
            answer = client.follow(client.get_blob(target.test_repo, digest))
        except httpx.TransportError as exc:
            transport_failure(TTL, target.cache_url, exc)
    judge_cache_answer(target, digest, answer, since)
    return answer


def _refetch_evidence(target, digest: str, since: datetime, answer) -> tuple[bool | None, str]:
    """(True: fetched again, False: served from the old copy, None: cannot tell; how known)."""
    mark = answer.headers.get("x-cache")
    if mark:
        return mark == "MISS", f"X-Cache {mark}"
    lines = cache_lines(target, since, wait_for=lambda ls: len(
        logevidence.for_blob(ls, digest).misses) >= 2 or logevidence.for_blob(
        ls, digest).kind == "access")  # access lines: this cache writes no events to wait for
    if lines:
        seen = logevidence.for_blob(lines, digest)
        if seen.kind == "events":
            again = len(seen.misses) >= 2
            return again, f"the cache's events: {len(seen.misses)} miss(es), " \
                          f"{len(seen.hits)} hit(s) for {digest[7:19]}"
    if target.dtr_logs is not None:
        fetched = logevidence.upstream_fetches(target.dtr_logs.lines(since), digest)
        if fetched:
            return len(fetched) >= 2, f"DTR's logs: {len(fetched)} fetch(es) by the cache"
    return None, "no X-Cache header, no hit/miss events, no --dtr-logs"


@pytest.mark.essential("TTL expiry")
@pytest.mark.writes
@pytest.mark.requires("test_blobttl_needs_delete_enabled", "test_blobttl_has_a_unit",
                       "test_client_trusts_the_server[client->cache]",
                       "test_client_trusts_the_server[client->DTR]")
def test_expired_copy_is_fetched_again(target, push_image, evidence):
    """Past blobttl (counted from the fetch), the copy is removed and the next request fetches
    the blob again from DTR: proven by the copy seen on disk first, then gone, and a miss."""
    try:
        files = load_files(target)
    except ValueError as exc:
        pytest.skip(f"config.yml unreadable ({exc}): see the configuration checks")
    value = files.value(".blobttl")
    if value is None:
        not_applicable("blobttl is not set: the cache keeps its copies (nothing expires)")
    ttl = parse_duration(value)[0]
    margin = min(ttl / 2, 30.0) + 2.0
    if ttl + margin > target.ttl_wait:
        # The static TTL rules stand in for what cannot be waited for here.
        unobserved(f"blobttl is longer than --ttl-wait ({human(ttl)}): observing it needs "
                   f"--ttl-wait {math.ceil(ttl + margin)} (now {target.ttl_wait:g})",
                   "test_blobttl_has_a_unit", "test_blobttl_needs_delete_enabled")
    since = datetime.now(UTC)
    image = push_image(layers=1, layer_size=64 * 1024, tag="ttl")
    digest = image.layers[0].digest
    _fetch(target, digest, since)
    fetched_at = time.monotonic()
    root = files.value("storage.filesystem.rootdirectory") or "/var/lib/registry"
    hexpart = digest.split(":", 1)[1]
    path = f"{root}/docker/registry/v2/blobs/sha256/{hexpart[:2]}/{hexpart}/data"
    host = target.host()
    if host is not None:
        if not host.file(path).exists:  # the positive control: the copy is where we look
            fail(TTL, f"right after the fetch, the copy of {digest[:19]} is not at {path}: the "
                 "cache does not store where config.yml says, so expiry cannot be seen there",
                 "check storage.filesystem.rootdirectory (and REGISTRY_STORAGE_* overrides) "
                 "against the volume the cache really writes to")
        evidence.note(f"copy present at {path} after the fetch")
    time.sleep(ttl + margin)
    if host is not None:
        if host.file(path).exists:
            delete = files.value("storage.delete.enabled")
            fail(TTL, f"the expired copy {path} is still on the cache "
                 f"{time.monotonic() - fetched_at:.0f} s after the fetch (blobttl {human(ttl)})",
                 "the cache does not enforce blobttl: read its logs for blob.expired and check "
                 "its version" if delete else "set storage.delete.enabled: true in config.yml; "
                 "without it nothing expires")
        evidence.note("expired copy removed")
    second = _fetch(target, digest, since)
    age = time.monotonic() - fetched_at
    again, how = _refetch_evidence(target, digest, since, second)
    if again is False:
        fail(TTL, f"the cache served {digest[:19]} from its copy {age:.0f} s after fetching "
             f"it, past blobttl {human(ttl)} ({how})", "check blobttl's unit in config.yml (a "
             "bare number is nanoseconds) and that the cache enforces it")
    if again is None:
        pytest.skip(f"expiry not proven: after {age:.0f} s the blob was served (200, digest "
                    f"verified) but nothing shows it was fetched again ({how}); give "
                    "--cache-logs or --dtr-logs")
    evidence.note(f"after {age:.0f} s (blobttl {human(ttl)}): 200, digest verified, fetched "
                  f"again ({how})")
