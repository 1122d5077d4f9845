"""docs/checks.md and docs/options.md are what the checks' markers and the option table say
(regenerate with ``python3 -m dtr_cache_check.testkit.docgen``); every check is proven by a
fault; README stays a page for users."""

from __future__ import annotations

from dtr_cache_check.testkit import docgen
from dtr_cache_check.testkit.local import REPO_ROOT


def test_the_checks_page_is_current():
    assert (REPO_ROOT / "docs" / "checks.md").read_text() == docgen.checks_md(), (
        "docs/checks.md is stale: python3 -m dtr_cache_check.testkit.docgen")


def test_the_options_page_is_current():
    assert (REPO_ROOT / "docs" / "options.md").read_text() == docgen.options_md(), (
        "docs/options.md is stale: python3 -m dtr_cache_check.testkit.docgen")


def test_every_check_has_a_fault_that_makes_it_fail():
    assert "**none**" not in docgen.checks_md()


def test_readme_is_short_and_links_only_inside_the_repository():
    text = (REPO_ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert "../" not in text


def test_readme_counts_the_faults_by_what_they_are():
    from collections import Counter

    from dtr_cache_check.testkit.faults.catalog import FAULTS
    from dtr_cache_check.testkit.faults.fault import KINDS

    text = " ".join((REPO_ROOT / "README.md").read_text().split())
    counts = Counter(f.kind for f in FAULTS)
    assert f"{len(FAULTS)} faults" in text
    for kind in KINDS:
        assert f"{counts[kind]} {kind}" in text, (kind, counts[kind])
