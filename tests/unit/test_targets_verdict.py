"""The verdict of several caches: each cache judged on its own checks, the run READY only when
every cache is, root causes marked with their cache; the matrix draws one column a cache."""

from __future__ import annotations

from dtr_cache_check.harness import matrix
from dtr_cache_check.harness.verdict import NOT_READY, READY, Result, overall, per_cache
from dtr_cache_check.steps.findings import Finding
from tests.unit.checkfacts import essential, res


def healthy(cache: str | None) -> list[Result]:
    return [res(name, cache=cache) for name in essential().values()]


def test_one_cache_keeps_the_plain_verdict():
    verdict = overall(healthy(None), essential())
    assert verdict.word == READY and verdict.caches == {}
    assert per_cache(healthy(None), essential()) == {}


def test_the_run_is_ready_only_when_every_cache_is():
    assert overall(healthy("asia") + healthy("europe"), essential()).word == READY
    broken = healthy("europe")
    broken[0] = res(broken[0].name, "failed", Finding("client->DTR", "refused", "start DTR"),
                    cache="europe")
    verdict = overall(healthy("asia") + broken, essential())
    assert verdict.word == NOT_READY
    assert verdict.caches == {"asia": READY, "europe": NOT_READY}
    assert [(r.cache, r.check) for r in verdict.roots] == [("europe", broken[0].name)]
    assert "1 of 2 caches READY" in verdict.headline
    assert "  europe: NOT READY" in verdict.lines()
    assert any(line.startswith("  1. [europe] ") for line in verdict.lines())


def test_the_matrix_has_a_column_a_cache_and_links_each_cell_to_its_row():
    results = healthy("asia") + healthy("europe")[:-1]
    page = matrix.matrix_html(results, per_cache(results, essential()))
    assert page.index('data-cache="asia"') < page.index('data-cache="europe"')
    assert page.count('class="dtr-cell dtr-passed"') == 2 * len(essential()) - 1
    assert page.count("dtr-not-run") == 2  # the CSS rule, and europe's missing check
    assert f'data-target="checks/test_x.py::{essential()["TTL expiry"]}[asia]"' in page
    assert matrix.matrix_html(healthy("asia")) == ""
