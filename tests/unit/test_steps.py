"""Memoised steps: run once, on demand; the owner reports the step's own diagnosis, every other
check fails as "consequence of <owner>", or is skipped with the step's reason."""

from __future__ import annotations

import pytest

from dtr_cache_check.steps import findings
from dtr_cache_check.steps.evidence import Evidence
from dtr_cache_check.steps.memo import Steps


def as_check(name: str):
    evidence = Evidence()
    return evidence, findings.CURRENT.set(evidence), findings.CURRENT_NAME.set(name)


def leave(tokens) -> None:
    findings.CURRENT.reset(tokens[1])
    findings.CURRENT_NAME.reset(tokens[2])


def test_a_step_runs_once_and_its_owner_gets_its_evidence():
    calls = []

    def push():
        calls.append(1)
        findings.CURRENT.get().note("pushed sha256:abc")
        return "image"

    steps = Steps()
    other = as_check("test_logs")
    assert steps.run("test_1_push", push) == "image"
    assert other[0].summary == []       # the step's evidence belongs to its owner
    leave(other)
    owner = as_check("test_1_push")
    assert steps.run("test_1_push", push) == "image"
    assert owner[0].summary == ["pushed sha256:abc"]
    leave(owner)
    assert calls == [1]


def test_a_failed_step_is_a_consequence_for_others_and_a_diagnosis_for_its_owner():
    def push():
        findings.fail("client->DTR", "DTR refused the push (401)", "give push rights")

    steps = Steps()
    other = as_check("test_logs")
    with pytest.raises(pytest.fail.Exception) as raised:
        steps.run("test_1_push", push)
    assert str(raised.value.msg) == ("consequence of test_1_push: [client->DTR] DTR refused "
                                     "the push (401). Fix: give push rights.")
    leave(other)
    owner = as_check("test_1_push")
    with pytest.raises(pytest.fail.Exception) as raised:
        steps.run("test_1_push", push)
    assert str(raised.value.msg).startswith("[client->DTR] DTR refused")
    assert owner[0].remediation == "give push rights"
    leave(owner)


def test_a_consequence_inside_a_step_keeps_its_root():
    token = findings.LEDGER.set(findings.Ledger())
    try:
        findings.record("test_server_answers_tls[client->DTR]",
                        findings.Finding("client->DTR", "down", "up"))
        steps = Steps()
        check = as_check("test_4")
        with pytest.raises(findings.CheckFailed) as raised:
            steps.run("test_1_push", lambda: findings.requires(
                "test_server_answers_tls[client->DTR]"))
        leave(check)
        assert raised.value.finding.root == "test_server_answers_tls[client->DTR]"
        assert str(raised.value.msg) == ("consequence of test_server_answers_tls[client->DTR]: "
                                         "[client->DTR] down. Fix: up.")
    finally:
        findings.LEDGER.reset(token)


def test_a_skipped_step_skips_with_its_reason_and_an_error_is_a_failure():
    steps = Steps()
    check = as_check("test_5")
    with pytest.raises(pytest.skip.Exception, match="--no-writes"):
        steps.run("test_1_push", lambda: pytest.skip("--no-writes: needs a push"))
    with pytest.raises(findings.NotApplicable, match="one replica"):  # its kind is kept
        steps.run("test_ha", lambda: findings.not_applicable("one replica known"))
    with pytest.raises(pytest.fail.Exception, match="consequence of test_2: ValueError: boom"):
        steps.run("test_2", lambda: (_ for _ in ()).throw(ValueError("boom")))
    leave(check)
