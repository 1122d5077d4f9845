"""The speed chart: a self-contained SVG whose bars and labels say the numbers given."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from dtr_cache_check.harness.speedchart import nice_ceiling, speed_chart_svg

NS = "{http://www.w3.org/2000/svg}"


def spread(median, lo, hi):
    return {"median": median, "lo": lo, "hi": hi, "n": 3}


RESULT = {
    "verdict": "FASTER", "rounds": 3, "break_even_note": "break-even at 1.5 MiB <per> layer",
    "shapes": [{"shape": "1x4MiB", "image_bytes": 4_000_000, "verdict": "FASTER",
                "speedup": 4.0, "seconds": {"direct": spread(2.0, 1.9, 2.1),
                                            "cold": spread(2.2, 2.1, 2.3),
                                            "warm": spread(0.5, 0.45, 0.6)}}],
}


@pytest.mark.parametrize(("value", "top"), [(0.87, 1), (2.1, 2.5), (6.3, 10), (5, 5),
                                            (12, 20), (0, 1), (0.0042, 0.005)])
def test_nice_ceiling(value, top):
    assert nice_ceiling(value) == pytest.approx(top)


def test_svg_is_well_formed_and_self_contained():
    svg = speed_chart_svg(RESULT)
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert "<script" not in svg and "href" not in svg and "url(" not in svg
    assert "&lt;per&gt;" in svg                       # text is escaped


def test_bars_are_to_scale_and_labelled():
    root = ET.fromstring(speed_chart_svg(RESULT))
    bars = [r for r in root.iter(f"{NS}rect") if r.find(f"{NS}title") is not None]
    # The axis tops at nice_ceiling(2.3) = 2.5 s over a plot 300 - 64 - 62 = 174 px high:
    # direct 2.0 s -> 139.2 px, cold 2.2 s -> 153.1 px, warm 0.5 s -> 34.8 px.
    assert [float(b.get("height")) for b in bars] == pytest.approx([139.2, 153.1, 34.8],
                                                                   abs=0.05)
    texts = [t.text for t in root.iter(f"{NS}text")]
    # 4,000,000 bytes in 2.0 s = 2.0 MB/s; in 0.5 s = 8.0 MB/s.
    assert {"2.00 s", "2.0 MB/s", "0.50 s", "8.0 MB/s", "1x4MiB", "4.00x · FASTER"} <= set(texts)
    legend = " ".join(t for t in texts if t)
    assert "DTR direct" in legend and "cache cold" in legend and "cache warm" in legend


def test_whiskers_span_min_to_max():
    root = ET.fromstring(speed_chart_svg(RESULT))
    whisker = next(p.get("d") for p in root.iter(f"{NS}path"))
    # direct: lo 1.9 s at y = 238 - 174 * 1.9 / 2.5 = 105.76, hi 2.1 s at 91.84 (base 238).
    assert whisker.startswith("M") and "V91.8" in whisker and " 105.8" in whisker


def test_empty_result_still_draws():
    assert ET.fromstring(speed_chart_svg({"verdict": "INCONCLUSIVE", "shapes": []}))
