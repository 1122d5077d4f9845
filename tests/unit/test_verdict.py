"""The verdict: READY only on every essential check passed; NOT PROVEN on a skip; NOT READY
with root causes first and every consequence folded under its root, named once."""

from __future__ import annotations

from dtr_cache_check.harness.verdict import (
    FILES_VALID,
    NOT_APPLICABLE,
    NOT_PROVEN,
    NOT_READY,
    READY,
    Result,
    compute,
)
from dtr_cache_check.steps import findings
from dtr_cache_check.steps.findings import Finding
from tests.unit.checkfacts import essential, res

TTL_CHECK = "test_expired_copy_is_fetched_again"
STATIC_TTL = ("test_blobttl_has_a_unit", "test_blobttl_needs_delete_enabled")


def everything_passed() -> list[Result]:
    return [res(n) for n in essential().values()] + [res(n) for n in STATIC_TTL]


def replace(results: list[Result], result: Result) -> list[Result]:
    return [result if r.name == result.name else r for r in results]


def test_the_essential_rows_come_from_the_checks_markers():
    rows = essential()
    assert rows["client->cache trust"] == "test_client_trusts_the_server[client->cache]"
    assert rows["hit evidence"] == "test_5_first_request_misses_and_second_hits"
    assert rows["TTL expiry"] == TTL_CHECK and len(rows) == 13


def test_ready_only_when_every_essential_check_passed():
    verdict = compute(everything_passed(), essential())
    assert verdict.word == READY and not verdict.roots and not verdict.unproven
    partial = [r for r in everything_passed() if r.name != essential()["hit evidence"]]
    assert compute(partial, essential()).word == NOT_PROVEN


def test_a_skipped_essential_check_is_not_proven_with_its_reason():
    skipped = res(essential()["hit evidence"], "skipped", "hit not proven: no logs")
    verdict = compute(replace(everything_passed(), skipped), essential())
    assert verdict.word == NOT_PROVEN
    assert any("hit not proven: no logs" in u for u in verdict.unproven)


def test_a_skip_with_stand_ins_is_waived_only_when_they_all_passed():
    skipped = res(TTL_CHECK, "skipped", "blobttl is longer than --ttl-wait (1d)")
    skipped.stands_in = list(STATIC_TTL)
    verdict = compute(replace(everything_passed(), skipped), essential())
    assert verdict.word == READY
    assert "not observed" in " ".join(verdict.notes)
    without_static = [r for r in replace(everything_passed(), skipped)
                      if r.name != "test_blobttl_has_a_unit"]
    assert compute(without_static, essential()).word == NOT_PROVEN
    plain = res(TTL_CHECK, "skipped", "blobttl is longer than --ttl-wait (1d)")  # no stand-ins
    assert compute(replace(everything_passed(), plain), essential()).word == NOT_PROVEN


def test_a_not_applicable_essential_row_is_a_note_not_a_gap():
    unset = res(TTL_CHECK, NOT_APPLICABLE, "blobttl is not set")
    verdict = compute(replace(everything_passed(), unset), essential())
    assert verdict.word == READY and "does not apply: blobttl is not set" in verdict.notes[0]


def test_two_unreachable_servers_read_as_two_root_causes_not_nested_consequences():
    dtr = "test_server_answers_tls[client->DTR]"
    cache = "test_server_answers_tls[client->cache]"
    dtr_found = Finding("client->DTR", "dtr:443 refused the connection", "check the address")
    cache_found = Finding("client->cache", "cache:443 refused the connection",
                          "check the address")
    results = [res(dtr, "failed", dtr_found), res(cache, "failed", cache_found)]
    # A chain: C stands on B stands on A; each names the root once.
    first = findings.consequence(dtr, dtr_found)
    second = findings.consequence("test_1_push_a_fresh_image_to_dtr", first)
    third = findings.consequence("test_2_manifest_comes_from_dtr", second)
    assert first == second == third and first.root == dtr
    assert first.line() == f"consequence of {dtr}: {dtr_found.line()}"
    results += [res("test_1_push_a_fresh_image_to_dtr", "failed", first),
                res("test_2_manifest_comes_from_dtr", "failed", third),
                res("test_4_cache_serves_each_blob_without_authorization", "failed",
                    findings.consequence(cache, cache_found))]
    verdict = compute(results, essential())
    assert verdict.word == NOT_READY
    assert [r.check for r in verdict.roots] == [dtr, cache]
    assert verdict.roots[0].consequences == ["test_1_push_a_fresh_image_to_dtr",
                                             "test_2_manifest_comes_from_dtr"]
    assert verdict.roots[0].hop == "client->DTR" and verdict.roots[0].fix == "check the address"
    text = "\n".join(verdict.lines())
    assert text.startswith("NOT READY: 2 root cause(s)") and "consequence of" not in text


def test_a_consequence_whose_root_was_not_selected_still_names_it():
    found = Finding("client->DTR", "no", "yes", root="test_1_push_a_fresh_image_to_dtr")
    verdict = compute([res("test_logs_show_the_miss_then_the_hit", "failed", found)],
                      essential())
    assert verdict.roots[0].check == "test_1_push_a_fresh_image_to_dtr"
    assert verdict.roots[0].hop == "client->DTR"
    assert verdict.roots[0].consequences == ["test_logs_show_the_miss_then_the_hit"]


def test_files_only_is_files_valid_only_when_every_static_check_passed():
    results = [res("test_blobttl_has_a_unit"), res("test_restart_policy")]
    verdict = compute(results, essential(), files_only=True)
    assert verdict.word == FILES_VALID and "not proven" in verdict.headline
    stack = [*results, res("test_restart_policy", "skipped", "no docker-stack.yml")]
    verdict = compute(stack, essential(), files_only=True)
    assert verdict.word == FILES_VALID and "no docker-stack.yml" in verdict.notes[0]
    unread = [*results, res("test_cas_files_are_mounted", "skipped", "no config.yml")]
    verdict = compute(unread, essential(), files_only=True)
    assert verdict.word == NOT_PROVEN and "no config.yml" in verdict.unproven[0]
    stack_only = [res("test_restart_policy")]  # no config.yml rule judged anything
    assert compute(stack_only, essential(), files_only=True).word == NOT_PROVEN
    assert compute([], essential(), files_only=True).word == NOT_PROVEN


def test_a_result_carries_the_declared_hop_of_a_passed_check_too():
    passed = res("test_cache_trusts_dtr")
    assert passed.hop == passed.group == "cache->DTR"
    assert passed.as_dict()["hop"] == "cache->DTR"
