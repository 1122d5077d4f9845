"""The speed verdict's arithmetic: shapes, spreads, verdicts, break-even; expected values
worked out by hand in each test."""

from __future__ import annotations

import pytest

from dtr_cache_check.probes.speed import (
    FASTER,
    INCONCLUSIVE,
    NO_GAIN,
    SLOWER,
    SPEEDUP_THRESHOLD,
    Judgement,
    LinkCosts,
    Shape,
    ShapeResult,
    SpeedResult,
    Spread,
    approx_size,
    break_even,
    judge,
    overall,
    parse_shapes,
    speed_outcome,
)
from dtr_cache_check.probes.speed_pull import round_order


def test_parse_shapes_in_binary_and_decimal_units():
    assert parse_shapes("1x32MiB, 8x2MiB,40x64KiB") == [
        Shape(1, 33_554_432), Shape(8, 2_097_152), Shape(40, 65_536)]
    assert parse_shapes("2X1.5MB,3x10") == [Shape(2, 1_500_000), Shape(3, 10)]


@pytest.mark.parametrize("bad", ["32MiB", "1x", "0x1MiB", "1x32 parsecs", "", " , "])
def test_parse_shapes_names_the_bad_item(bad):
    with pytest.raises(ValueError, match="--speed-images"):
        parse_shapes(bad)


def test_shape_label_and_total():
    assert Shape(8, 2 * 1024 * 1024).label == "8x2MiB"
    assert Shape(1, 1000).label == "1x1000B"
    assert Shape(40, 65_536).total == 2_621_440


def test_approx_size():
    assert approx_size(11_309) == "11.0 KiB"       # 11309 / 1024 = 11.04
    assert approx_size(3 * 1024 * 1024 + 512 * 1024) == "3.5 MiB"
    assert approx_size(900) == "900 B"


def test_spread_is_median_and_range():
    spread = Spread.of([3.0, 1.0, 2.0, 10.0])
    assert (spread.median, spread.lo, spread.hi, spread.n) == (2.5, 1.0, 10.0, 4)
    assert Spread.of([1.0, 2.0]).overlaps(Spread.of([2.0, 3.0]))   # touching counts
    assert not Spread.of([1.0, 1.9]).overlaps(Spread.of([2.0, 3.0]))
    with pytest.raises(ValueError):
        Spread.of([])


def test_faster_needs_apart_ranges_and_the_threshold():
    # direct 2.0 s (1.9..2.1), warm 1.0 s (0.9..1.1): speedup 2.0, ranges apart.
    verdict = judge(Spread.of([1.9, 2.0, 2.1]), Spread.of([0.9, 1.0, 1.1]))
    assert verdict.verdict == FASTER and verdict.speedup == pytest.approx(2.0)


def test_slower_is_the_mirror_image():
    # direct 1.0 s, warm 2.0 s: speedup 0.5 <= 1/1.25 = 0.8, ranges apart.
    verdict = judge(Spread.of([0.9, 1.0, 1.1]), Spread.of([1.9, 2.0, 2.1]))
    assert verdict.verdict == SLOWER and verdict.speedup == pytest.approx(0.5)


def test_overlapping_ranges_with_a_big_median_gain_are_inconclusive_not_faster():
    # Medians 2.0 vs 1.0 (2x) but one slow warm pull of 2.5 s overlaps the direct range.
    verdict = judge(Spread.of([1.9, 2.0, 2.1]), Spread.of([0.9, 1.0, 2.5]))
    assert verdict.verdict == INCONCLUSIVE


def test_equal_times_are_no_gain():
    # best pairing 1.05 / 0.95 = 1.105 < 1.25; worst 0.95 / 1.05 = 0.905 > 0.8.
    verdict = judge(Spread.of([0.95, 1.0, 1.05]), Spread.of([0.95, 1.0, 1.05]))
    assert verdict.verdict == NO_GAIN and verdict.speedup == pytest.approx(1.0)


def test_apart_but_small_gain_is_no_gain():
    # direct 1.10 (1.09..1.11), warm 1.00 (0.99..1.01): apart, median 1.1x < 1.25, and
    # the best pairing 1.11 / 0.99 = 1.121 < 1.25: NO GAIN, not FASTER.
    verdict = judge(Spread.of([1.09, 1.10, 1.11]), Spread.of([0.99, 1.00, 1.01]))
    assert verdict.verdict == NO_GAIN


def test_threshold_is_applied_at_its_edge():
    # speedup exactly 1.25 with ranges apart: FASTER (>=); just below it is not.
    at = judge(Spread.of([1.24, 1.25, 1.26]), Spread.of([0.99, 1.0, 1.01]))
    below = judge(Spread.of([1.23, 1.24, 1.25]), Spread.of([0.99, 1.0, 1.01]))
    assert SPEEDUP_THRESHOLD == 1.25
    assert at.verdict == FASTER
    assert below.verdict != FASTER


def test_too_few_rounds_are_inconclusive_however_clear():
    verdict = judge(Spread.of([10.0, 10.0]), Spread.of([1.0, 1.0]))
    assert verdict.verdict == INCONCLUSIVE and "round" in verdict.reason


def test_overall_verdict():
    assert overall([FASTER, NO_GAIN, INCONCLUSIVE]) == FASTER
    assert overall([FASTER, SLOWER]) == SLOWER
    assert overall([NO_GAIN, NO_GAIN]) == NO_GAIN
    assert overall([NO_GAIN, INCONCLUSIVE]) == INCONCLUSIVE
    assert overall([]) == INCONCLUSIVE


def test_break_even_from_round_trips_and_rates():
    # Direct: 100 ms to the first byte, 1 MB/s. Cache: 307 in 100 ms, first byte 10 ms,
    # 10 MB/s, TLS 20 ms per pull over 2 layers (10 ms each). Extra per layer:
    # 0.100 + 0.010 + 0.010 - 0.100 = 0.020 s; saved per byte: 1e-6 - 1e-7 = 9e-7 s.
    # Break-even: 0.020 / 9e-7 = 22222.2 bytes.
    costs = LinkCosts(redirect=0.1, direct_first_byte=0.1, cache_first_byte=0.01,
                      cache_connect=0.02, direct_rate=1e6, cache_rate=1e7)
    assert break_even(costs, layers=2) == pytest.approx(22_222.2, rel=1e-4)
    # One layer pays the whole 20 ms handshake: (0.100+0.010+0.020-0.100) / 9e-7 = 33333.3.
    assert break_even(costs, layers=1) == pytest.approx(33_333.3, rel=1e-4)


def test_break_even_never_and_always():
    never = LinkCosts(0.1, 0.1, 0.01, 0.0, direct_rate=5e6, cache_rate=5e6)
    always = LinkCosts(0.01, 0.2, 0.01, 0.0, direct_rate=1e6, cache_rate=1e7)
    assert break_even(never) is None          # same rate: the extra 10 ms is never won back
    assert break_even(always) == 0.0          # 0.01 + 0.01 - 0.2 < 0: the cache wins at once


def test_abba_order_alternates_and_cold_precedes_warm():
    assert [round_order(i) for i in range(3)] == [("direct", "cold", "warm"),
                                                  ("cold", "warm", "direct"),
                                                  ("direct", "cold", "warm")]


def test_result_as_dict_for_results_json():
    spreads = {"direct": Spread.of([2.0] * 3), "cold": Spread.of([2.5] * 3),
               "warm": Spread.of([1.0] * 3)}
    shape = ShapeResult(Shape(1, 1024), spreads, {"warm": {"redirect": 0.1}},
                        {"warm": 1e7}, judge(spreads["direct"], spreads["warm"]), 1100)
    result = SpeedResult([shape], 3, FASTER, 22_222.2, "break-even at 21.7 KiB per layer")
    data = result.as_dict()
    assert data["verdict"] == FASTER and data["break_even_bytes"] == 22_222.2
    assert data["shapes"][0]["seconds"]["warm"] == {"median": 1.0, "lo": 1.0, "hi": 1.0,
                                                    "n": 3}
    assert data["shapes"][0]["speedup"] == 2.0 and data["shapes"][0]["shape"] == "1x1KiB"
    assert result.summary().startswith("FASTER: 1x1KiB 2.00x FASTER; break-even")


def _result(*verdicts_speedups: tuple[str, float, int]) -> SpeedResult:
    spread = {"direct": Spread.of([1.0] * 3), "warm": Spread.of([1.0] * 3)}
    shapes = [ShapeResult(Shape(1, size), spread, {}, {},
                          Judgement(verdict, speedup, ""), size)
              for verdict, speedup, size in verdicts_speedups]
    return SpeedResult(shapes, 3, overall([v for v, _, _ in verdicts_speedups]), None, "note")


def test_speed_outcome_per_verdict():
    faster = _result((FASTER, 3.0, 32 << 20), (NO_GAIN, 1.0, 64 << 10))
    assert speed_outcome(faster).outcome == "passed"
    mixed = _result((FASTER, 3.0, 32 << 20), (SLOWER, 0.5, 64 << 10))
    slower = speed_outcome(mixed, 1.0)
    assert slower.outcome == "failed" and "SLOWER" in slower.cause and "1x64KiB" in slower.cause
    advisory = speed_outcome(mixed)  # without an expectation: said, never a pass nor a failure
    assert advisory.outcome == "skipped" and "SLOWER" in advisory.cause
    # Below the break-even size a layer loses the redirect's round trip by physics: said, not
    # failed (a LAN); a shape at or above it that is slower fails.
    lan = _result((INCONCLUSIVE, 1.0, 16 << 20), (SLOWER, 0.68, 64 << 10))
    lan.break_even_bytes = 6 << 20
    assert speed_outcome(lan).outcome == "skipped" and "below" in speed_outcome(lan).cause
    assert speed_outcome(lan, 1.5).outcome == "failed"
    far = _result((SLOWER, 0.4, 16 << 20), (SLOWER, 0.5, 64 << 10))
    far.break_even_bytes = 6 << 20
    assert speed_outcome(far, 1.0).outcome == "failed"
    assert "1x16MiB" in speed_outcome(far, 1.0).cause
    # NO GAIN: not observable from here (advisory), a failure once a speedup is expected.
    assert speed_outcome(_result((NO_GAIN, 1.0, 1 << 20))).outcome == "skipped"
    assert speed_outcome(_result((NO_GAIN, 1.0, 1 << 20)), 1.5).outcome == "failed"
    # INCONCLUSIVE is never a pass nor a failure: skipped, with or without an expectation.
    assert speed_outcome(_result((INCONCLUSIVE, 1.6, 1 << 20))).outcome == "skipped"
    assert speed_outcome(_result((INCONCLUSIVE, 1.6, 1 << 20)), 1.5).outcome == "skipped"


def test_expect_speedup_is_judged_on_the_largest_shape():
    # The 32 MiB shape is 3x faster, the 64 KiB one 1.3x: 2.5 is met by the largest.
    result = _result((FASTER, 1.3, 64 << 10), (FASTER, 3.0, 32 << 20))
    assert speed_outcome(result, 2.5).outcome == "passed"
    missed = speed_outcome(result, 4.0)
    assert missed.outcome == "failed" and "3.00x" in missed.cause and "1x32MiB" in missed.cause
