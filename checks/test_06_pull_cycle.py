"""The pull cycle: push to DTR, manifest from DTR, blobs redirected to the cache and served
by it without Authorization, a miss and then a hit. Each check judges one step; the steps run
once, on first use (steps.pullcycle), so any check run alone performs the steps before it."""

from __future__ import annotations

import contextlib

import pytest

from dtr_cache_check.probes import logevidence
from dtr_cache_check.steps import ha, hitproof
from dtr_cache_check.steps.findings import PULL, fail, requires
from dtr_cache_check.steps.pullcycle import cache_lines

pytestmark = [pytest.mark.family("pull cycle"), pytest.mark.hop(PULL), pytest.mark.writes]


@pytest.mark.essential("push to DTR")
def test_1_push_a_fresh_image_to_dtr(cycle, evidence):
    """A freshly synthesized image is pushed to DTR's test repository as the test user."""
    cycle.image()


@pytest.mark.essential("manifest from DTR")
def test_2_manifest_comes_from_dtr(cycle, evidence):
    """The manifest is served by DTR itself (200, no redirect): DTR stays the source of truth."""
    cycle.manifest()


@pytest.mark.essential("redirect to the cache")
def test_3_blobs_redirect_to_the_registered_cache(cycle, evidence):
    """Every blob GET at DTR answers 307 to the registered cache's host and port."""
    cycle.redirected()


@pytest.mark.essential("blobs from the cache")
def test_4_cache_serves_each_blob_without_authorization(cycle, evidence):
    """Following each redirect without Authorization gives 200 and exactly the pushed bytes."""
    cycle.first_pull()


@pytest.mark.essential("hit evidence")
def test_5_first_request_misses_and_second_hits(target, steps, cycle, push_image, evidence):
    """The second request for each blob is a hit, proven by what others observe of the cache
    (its storage, DTR's logs, its metrics) and by what the cache says of itself (X-Cache, its
    events); what contradicts a hit fails, and a cache that shows nothing is not proven."""
    second = cycle.second_pull()
    requires("test_blobttl_has_a_unit")  # a bare-number blobttl expires copies at once
    try:
        _judge_second_pull(target, cycle, second, evidence)
        return
    except pytest.fail.Exception as failed:
        problem = failed
    if target.replicas:  # (outside the except: its failure is not "during handling" this one)
        # HA: the second pull may reach another replica; replicas that do not share storage
        # miss there: the HA check's diagnosis ("consequence of" it, here).
        with contextlib.suppress(pytest.skip.Exception):
            ha.shared_storage(target, steps, cycle, push_image)
    raise problem


def _judge_second_pull(target, cycle, second, evidence) -> None:
    digests = list(cycle.first)
    seen = cycle.observed
    observed = [proof for proof in (
        hitproof.by_storage(target, seen, digests),
        hitproof.by_dtr(target, digests, cycle.started, target.agent),
        hitproof.by_metrics(target, seen, digests)) if proof]
    for proof in observed:
        evidence.note(proof)
    claimed = _claimed_by_x_cache(cycle, second) or _claimed_by_events(target, cycle)
    if claimed:
        evidence.note(claimed + ("" if observed else " (the cache's own claim: "
                                 "--cache-host, --dtr-logs or --cache-metrics would prove it "
                                 "from outside)"))
    if observed or claimed:
        return
    why = "; ".join(seen.why_not + ([] if target.dtr_logs else [
        "no --dtr-logs (DTR's registry logs, every replica's)"]))
    pytest.skip("hit not proven: the cache says nothing of its hits (no X-Cache header, no "
                f"hit/miss events) and nothing else was observed ({why}); give --cache-host "
                "(its storage), --dtr-logs (one fetch per blob) or --cache-metrics "
                "(distribution's proxy counters)")


def _claimed_by_x_cache(cycle, second) -> str | None:
    first = cycle.first
    marks = {(first[d].headers.get("x-cache"), second[d].headers.get("x-cache")) for d in first}
    if not all(a and b for a, b in marks):
        return None
    if marks != {("MISS", "HIT")}:
        fail(PULL, f"X-Cache went {sorted(marks)} instead of MISS then HIT", hitproof.NOT_KEPT)
    return (f"MISS then HIT for {len(first)} blobs (X-Cache header): "
            + ", ".join(d[7:19] for d in first))


def _claimed_by_events(target, cycle) -> str | None:
    digests = list(cycle.first)

    def complete(lines):
        return all(logevidence.miss_and_hit_or_none(lines, d, target.agent) for d in digests)

    lines = cache_lines(target, cycle.started, wait_for=complete)
    if not lines:
        return None
    found = {d: logevidence.for_blob(lines, d) for d in digests}
    if any(e.kind != "events" for e in found.values()):
        return None
    for digest, seen in found.items():
        if not seen.misses or not seen.hits or seen.hits[0].number < seen.misses[0].number:
            fail(PULL, f"the cache's own events for {digest[:19]} are "
                 f"{[line.get('event') for line in seen.served]}, not a miss then a hit",
                 hitproof.NOT_KEPT)
    return "MISS then HIT (the cache's own events): " + ", ".join(
        f"{d[7:19]} lines {e.misses[0].number}/{e.hits[0].number}" for d, e in found.items())
