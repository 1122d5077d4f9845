"""Speed, the cache's purpose: the same fresh images pulled straight from DTR (a user without a
cache) and through the cache, cold and warm, in interleaved rounds; FASTER / NO GAIN / SLOWER /
INCONCLUSIVE with the ratio per image shape and the break-even size. Advisory unless
``--expect-speedup``; ``--rehearse K`` adds K clients pulling one fresh image at once."""

from __future__ import annotations

import contextlib
import time

import httpx
import pytest

from dtr_cache_check.harness import options
from dtr_cache_check.probes import logevidence
from dtr_cache_check.probes.oci import Image, synthesize
from dtr_cache_check.probes.registry import RegistryError
from dtr_cache_check.probes.speed import (
    DEFAULT_ROUNDS,
    DEFAULT_SHAPES,
    FAILED,
    SKIPPED,
    parse_shapes,
    speed_outcome,
)
from dtr_cache_check.probes.speed_pull import (
    PullAs,
    SpeedSetupError,
    measure,
    push_concurrently,
)
from dtr_cache_check.probes.speed_rehearsal import fetches_per_blob, rehearse
from dtr_cache_check.steps.findings import CACHE_DTR, SPEED, fail, unobserved

# Advisory: no essential row (--expect-speedup makes the speedup a requirement of this check;
# making it a verdict row is the harness's to wire). Stands on the redirect to the cache.
pytestmark = [pytest.mark.family("speed"), pytest.mark.hop(SPEED), pytest.mark.writes,
              pytest.mark.requires("test_3_blobs_redirect_to_the_registered_cache")]
SPEED_TAG = "speed"


@pytest.fixture(scope="module")
def publish(target):
    """Push an image to the test user's and (when given) the other user's repositories (the
    same bytes: both users may pull it); every image is deleted at the end, as the admin."""
    pushed: list[tuple[str, str]] = []

    def push(image: Image) -> None:
        users = [(target.dtr_user, target.test_repo)]
        if target.other_user:
            users.append((target.other_user, f"{target.other_user}/dtr-cache-check"))
        clients = [(target.client(user), repo) for user, repo in users]
        try:
            push_concurrently(image, clients, SPEED_TAG)
        finally:
            for client, _ in clients:
                client.close()
        pushed.extend((repo, image.manifest_digest) for _, repo in users)

    yield push
    with target.client(target.admin_user) as admin:
        for repo, digest in pushed:
            with contextlib.suppress(RegistryError, httpx.HTTPError):
                admin.delete_manifest(repo, digest)


def _sides(target) -> tuple[PullAs, PullAs]:
    if not target.other_user:
        unobserved("no --other-user: the speed checks compare a user WITHOUT a cache "
                    "(straight from DTR) with the test user (through the cache); give one")
    return (PullAs(lambda: target.client(target.other_user),
                   f"{target.other_user}/dtr-cache-check"),
            PullAs(lambda: target.client(), target.test_repo))


@pytest.fixture(scope="module")
def speed(request, target, publish):
    """The A/B measurement, once for the module's checks."""
    direct, cache = _sides(target)
    try:
        shapes = parse_shapes(str(options.value(request.config, "speed_images")
                                  or DEFAULT_SHAPES))
        rounds = int(options.value(request.config, "speed_runs") or DEFAULT_ROUNDS)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        return measure(shapes, rounds, direct=direct, cache=cache, publish=publish)
    except SpeedSetupError as exc:
        fail(SPEED, f"the speed A/B could not be measured: {exc}",
             "see the cause; the pull cycle checks say more")


@pytest.mark.essential("speedup", when="expect_speedup")
def test_pulls_through_the_cache_are_faster(request, speed, evidence):
    """Warm pulls through the cache beat pulls straight from DTR for the image shapes
    measured (ranges apart, by at least the threshold); overlapping spreads prove nothing."""
    evidence.note(speed.summary())
    evidence.data["speed"] = speed.as_dict()  # the verdict block, results.json, the chart
    expect = options.value(request.config, "expect_speedup")
    outcome = speed_outcome(speed, float(expect) if expect else None)
    if outcome.outcome == FAILED:
        fail(outcome.hop, outcome.cause, outcome.fix)
    if outcome.outcome == SKIPPED:
        unobserved(outcome.cause)


def test_rollout_rehearsal(request, target, publish, evidence):
    """K clients pulling one fresh image at once through the cache all get it, and DTR saw
    one fetch per blob (the cache's single flight), when --dtr-logs shows its side."""
    clients = int(options.value(request.config, "rehearse") or 0)
    if clients < 2:
        unobserved("rehearsal not asked for: give --rehearse K (K >= 2 clients)")
    image = synthesize(layers=4, layer_size=4 * 1024 * 1024)
    publish(image)
    done = rehearse(clients, lambda: target.client(), target.test_repo, image)
    if done.errors:
        fail(SPEED, f"{len(done.errors)} of {clients} clients pulling at "
             f"once failed: {done.errors[0]}", "the cache must serve concurrent misses of one "
             "blob (single flight, streaming to all); check its logs for the errors")
    if target.dtr_logs is not None:
        time.sleep(1)  # DTR writes its line as the response ends
        lines = target.dtr_logs.lines(target.started)
        records = [(blob.digest, str(line.get("http.request.useragent", "")))
                   for blob in image.blobs
                   for line in logevidence.upstream_fetches(lines, blob.digest)]
        # DTR's 200s to anyone but this run's own clients (theirs are 307s anyway).
        done.fetches = fetches_per_blob(records, [b.digest for b in image.blobs],
                                        lambda agent: target.agent not in agent)
    evidence.data["rehearsal"] = done.as_dict()
    if done.fetches is None:
        evidence.note(f"{clients} clients had the image after {done.last_done:.2f} s; fetches "
                      "per blob not observed (no --dtr-logs)")
        return
    repeated = {d: n for d, n in done.fetches.items() if n != 1}
    if repeated:
        digest, count = next(iter(repeated.items()))
        fail(CACHE_DTR, f"DTR saw {count} fetches of {digest[:19]} while {clients} clients "
             "pulled it at once through the cache", "the cache must coalesce concurrent misses "
             "of one blob into one upstream fetch (single flight)")
    evidence.note(f"{clients} clients had the image after {done.last_done:.2f} s; DTR saw one "
                  f"fetch per blob; {done.wan_bytes_saved} WAN bytes saved")
