"""Findings are data: a failure carries hop, cause, fix, details and its root as fields; a
consequence of a consequence names its root once; an unexpected error keeps its type."""

from __future__ import annotations

import pytest

from dtr_cache_check.harness import facts
from dtr_cache_check.steps import findings
from dtr_cache_check.steps.findings import Finding


def test_fail_raises_the_finding_as_data_with_its_line():
    with pytest.raises(findings.CheckFailed) as raised:
        findings.fail("client->cache", "unknown authority.", "give the cache's CA", "more")
    found = raised.value.finding
    assert (found.hop, found.cause, found.fix, found.details) == (
        "client->cache", "unknown authority.", "give the cache's CA", "more")
    assert str(raised.value.msg) == ("[client->cache] unknown authority. Fix: give the "
                                     "cache's CA.\nmore")


def test_a_consequence_of_a_consequence_keeps_the_first_root():
    root = Finding("client->cache", "unknown authority", "give the CA", "details")
    step = findings.consequence("test_client_trusts_the_server[client->cache]", root)
    again = findings.consequence("test_4_cache_serves_each_blob_without_authorization", step)
    assert again.root == "test_client_trusts_the_server[client->cache]" and not again.details
    assert again.line().startswith("consequence of test_client_trusts_the_server")


def test_an_unexpected_exception_keeps_its_type_and_takes_the_checks_hop():
    found = findings.finding_of(ValueError("bad\nsecond line"), "cache->DTR")
    assert found.cause == "ValueError: bad" and found.hop == "cache->DTR"
    assert found.details == "second line" and found.fix is None


def test_requires_folds_a_failed_prerequisite_and_refuses_unknown_names():
    ledger = findings.Ledger(known={"test_real"})
    token = findings.LEDGER.set(ledger)
    try:
        findings.record("test_real[client->DTR]", Finding("client->DTR", "down", "up"))
        with pytest.raises(findings.CheckFailed) as raised:
            findings.requires("test_real[client->DTR]")
        assert raised.value.finding.root == "test_real[client->DTR]"
        findings.requires("test_real[client->cache]")   # not failed: nothing happens
        with pytest.raises(LookupError, match="test_misspelt"):
            findings.requires("test_misspelt")
    finally:
        findings.LEDGER.reset(token)


def test_two_ledgers_share_nothing():
    first, second = findings.Ledger(), findings.Ledger()
    token = findings.LEDGER.set(first)
    findings.record("test_x", Finding(None, "broken"))
    findings.LEDGER.reset(token)
    token = findings.LEDGER.set(second)
    try:
        findings.requires("test_x")   # the other session's failure is not this one's
    finally:
        findings.LEDGER.reset(token)
    assert "test_x" in first.outcomes and not second.outcomes


def test_declarations_that_name_no_check_or_repeat_a_row_are_problems():
    catalog = [facts.CheckFacts("test_real[a]", "client->DTR", "f"),
               facts.CheckFacts("test_other", None, "f", essential="row",
                                requires=("test_reall", "test_real[a]", "test_real[b]")),
               facts.CheckFacts("test_third", "config.yml", "f", essential="row",
                                shape="cloud")]
    found = facts.problems(catalog)
    assert "test_other: no hop marker (pytest.mark.hop)" in found
    assert "test_other: requires 'test_reall', which is no check" in found
    assert "test_other: requires 'test_real[b]', which is no check" in found
    assert not any("'test_real[a]'" in p for p in found)
    assert "test_third: essential row 'row' is also test_other's" in found
    assert any("shape 'cloud'" in p for p in found)
