"""The rehearsal's counting: fetches per blob from DTR's log records, bytes saved."""

from __future__ import annotations

from dtr_cache_check.probes.speed_rehearsal import Rehearsal, fetches_per_blob

A, B, C = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64


def test_fetches_per_blob_counts_only_the_cache_and_the_digests_asked():
    records = [(A, "10.0.0.5"), (A, "10.0.0.5"), (B, "10.0.0.5"), (A, "10.0.0.9"),
               (C, "10.0.0.5")]
    counts = fetches_per_blob(records, [A, B], lambda who: who == "10.0.0.5")
    assert counts == {A: 2, B: 1}          # C was not asked for; 10.0.0.9 is not the cache


def test_a_blob_never_fetched_is_counted_zero():
    assert fetches_per_blob([], [A]) == {A: 0}


def test_rehearsal_bytes_and_saving():
    # 4 clients finished an image of 1000 + 3000 bytes: 16000 bytes served. The cache
    # fetched A once and B twice from DTR: 1000 + 6000 = 7000 crossed the WAN; 9000 saved.
    done = Rehearsal(5, {A: 1000, B: 3000}, seconds=[1.0, 2.5, 2.0, 1.5], errors=["boom"])
    assert done.bytes_served == 16_000 and done.last_done == 2.5
    assert done.wan_bytes_saved is None     # no DTR logs: the saving is not claimed
    done.fetches = {A: 1, B: 2}
    assert done.wan_bytes_saved == 9_000
    assert done.as_dict()["finished"] == 4 and done.as_dict()["errors"] == ["boom"]
