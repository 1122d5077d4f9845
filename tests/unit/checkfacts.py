"""The real checks' declared facts (collected once, as pytest collects them) and results built
from them, for the verdict and report tests."""

from __future__ import annotations

import functools

from dtr_cache_check.harness.facts import CheckFacts
from dtr_cache_check.harness.verdict import FAILED, Result
from dtr_cache_check.steps.findings import Finding
from dtr_cache_check.testkit.docgen import declared_checks


@functools.cache
def declared() -> dict[str, CheckFacts]:
    return {facts.name: facts for facts in declared_checks()[0]}


def essential() -> dict[str, str]:
    """Verdict row -> check name, from the checks' essential markers."""
    return {f.essential: f.name for f in declared().values() if f.essential}


def res(name: str, outcome: str = "passed", found: Finding | str | None = None,
        file: str = "x", cache: str | None = None) -> Result:
    """``name``'s result (its real declared facts; a name no check has: no hop); ``found``: a
    failure's finding, or a skip's reason."""
    facts = declared().get(name) or CheckFacts(name, None, "")
    nodeid = f"checks/test_{file}.py::{name}" + (f"[{cache}]" if cache else "")
    finding = found if isinstance(found, Finding) else None
    reason = found if isinstance(found, str) else ""
    if outcome == FAILED and finding is None:
        finding = Finding(facts.hop, reason or "failed")
    return Result.of(nodeid, facts, outcome, finding, reason, evidence="evidence", cache=cache)
