"""The speed probe against real servers on loopback: distribution behind the DTR stand-in, the
reference cache, and distance made with a delay line and a rate-limited proxy. A far DTR and a
near cache must give FASTER; DTR and the cache equally far must never give FASTER."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from benchmarks.speed_loopback import FAR_RATE, ONE_WAY_S, Deployment, deployment
from dtr_cache_check.probes.oci import synthesize
from dtr_cache_check.probes.speed import COLD, DIRECT, FASTER, INCONCLUSIVE, NO_GAIN, WARM, Shape
from dtr_cache_check.probes.speed_pull import SpeedSetupError, measure, timed_pull
from dtr_cache_check.probes.speed_rehearsal import fetches_per_blob, rehearse

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHAPE = Shape(1, 3 * 1024 * 1024)


def _deploy(tmp_path_factory, *, cache_far: bool) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("speed")
    try:
        with deployment(workdir, cache_far=cache_far) as built:
            yield built
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def far_dtr(tmp_path_factory) -> Iterator[Deployment]:
    """DTR across a WAN from the client and the cache; the cache next to the client."""
    yield from _deploy(tmp_path_factory, cache_far=False)


@pytest.fixture(scope="module")
def both_far(tmp_path_factory) -> Iterator[Deployment]:
    """DTR and the cache equally far from the client (the cache gives it nothing)."""
    yield from _deploy(tmp_path_factory, cache_far=True)


def test_far_dtr_and_near_cache_is_faster_warm(far_dtr):
    """3 interleaved rounds of a 3 MiB image: the warm cache beats DTR direct, ranges apart;
    a cold pull pays the WAN and is no faster than direct."""
    direct, cache = far_dtr.sides()
    result = measure([SHAPE], 3, direct=direct, cache=cache, publish=far_dtr.publish)
    shape = result.shapes[0]
    assert shape.judgement.verdict == FASTER, result.summary()
    assert result.verdict == FASTER
    # 3 MiB at 4 MB/s is ~0.8 s direct; warm is loopback plus a few 40 ms round trips.
    assert shape.seconds[DIRECT].median > 0.7, result.as_dict()
    assert shape.seconds[WARM].median < 0.5, result.as_dict()
    assert shape.seconds[COLD].median > shape.seconds[WARM].median
    # Every blob of every cache pull went through a 307 that crossed the WAN (>= 40 ms).
    assert shape.phases[WARM]["redirect"] >= 2 * ONE_WAY_S, shape.phases
    assert shape.phases[DIRECT]["redirect"] == 0.0
    assert shape.rates[DIRECT] < FAR_RATE * 1.3 < shape.rates[WARM], shape.rates
    # The break-even size is where 1 extra cache round trip is won back: well under 3 MiB.
    assert result.break_even_bytes is not None and result.break_even_bytes < SHAPE.total
    as_json = result.as_dict()
    assert as_json["shapes"][0]["verdict"] == FASTER and as_json["rounds"] == 3


def test_equal_distance_is_never_faster(both_far):
    """DTR and the cache behind equal links: NO GAIN or INCONCLUSIVE, never FASTER."""
    direct, cache = both_far.sides()
    result = measure([SHAPE], 3, direct=direct, cache=cache, publish=both_far.publish)
    assert result.shapes[0].judgement.verdict in (NO_GAIN, INCONCLUSIVE), result.summary()
    assert result.verdict != FASTER


def test_direct_user_with_a_cache_is_refused(far_dtr):
    """A/B needs A to be a user without a cache: alice as 'direct' is a setup error, said so."""
    image = synthesize(layers=1, layer_size=1024)
    far_dtr.publish(image)
    with far_dtr.client("alice") as client, pytest.raises(SpeedSetupError,
                                                          match="WITHOUT a cache"):
        timed_pull(client, "alice/speed", image, mode=DIRECT, shape=Shape(1, 1024))


def test_rehearsal_counts_one_fetch_per_blob(far_dtr):
    """4 clients pull one fresh image at once through the cache: all finish; the cache's
    single flight makes DTR see one fetch per blob (DTR's own events, by the cache's address)."""
    image = synthesize(layers=2, layer_size=256 * 1024)
    far_dtr.publish(image)
    done = rehearse(4, lambda: far_dtr.client("alice"), "alice/speed", image)
    assert not done.errors and len(done.seconds) == 4
    records = [(line.get("digest"), line.get("client") or "")
               for line in far_dtr.dtr.log_lines() if line.get("event") == "dtr.signed_blob"]
    done.fetches = fetches_per_blob(records, [b.digest for b in image.blobs],
                                    lambda who: who == "127.0.0.1")
    assert done.fetches == {b.digest: 1 for b in image.blobs}, done.fetches
    assert done.wan_bytes_saved == 3 * done.image_bytes
    assert done.as_dict()["last_done_s"] > 0
