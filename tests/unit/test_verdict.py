"""The verdict: READY only on every essential check passed; NOT PROVEN on a skip; NOT READY
with root causes first and every consequence folded under its root, named once."""

from __future__ import annotations

from dtr_cache_check.harness import diagnosis
from dtr_cache_check.harness.verdict import (
    ESSENTIAL,
    NOT_PROVEN,
    NOT_READY,
    READY,
    TTL_CHECK,
    TTL_TOO_LONG,
    Result,
    compute,
)


def passed(name: str) -> Result:
    return Result.make(f"checks/x.py::{name}", name, "passed", "", "evidence")


def everything_passed() -> list[Result]:
    return [passed(n) for n in ESSENTIAL.values()] + [
        passed("test_blobttl_has_a_unit"), passed("test_blobttl_needs_delete_enabled")]


def replace(results: list[Result], result: Result) -> list[Result]:
    return [result if r.name == result.name else r for r in results]


def test_ready_only_when_every_essential_check_passed():
    verdict = compute(everything_passed())
    assert verdict.word == READY and not verdict.roots and not verdict.unproven
    partial = [r for r in everything_passed() if r.name != ESSENTIAL["hit evidence"]]
    assert compute(partial).word == NOT_PROVEN


def test_a_skipped_essential_check_is_not_proven_with_its_reason():
    skipped = Result.make("n", ESSENTIAL["hit evidence"], "skipped", "hit not proven: no logs")
    verdict = compute(replace(everything_passed(), skipped))
    assert verdict.word == NOT_PROVEN
    assert any("hit not proven: no logs" in u for u in verdict.unproven)


def test_a_long_ttl_stands_in_with_the_static_rules_and_says_so():
    skipped = Result.make("n", TTL_CHECK, "skipped", f"{TTL_TOO_LONG} (1d): needs --ttl-wait")
    verdict = compute(replace(everything_passed(), skipped))
    assert verdict.word == READY
    assert "not observed" in " ".join(verdict.notes)
    without_static = [r for r in replace(everything_passed(), skipped)
                      if r.name != "test_blobttl_has_a_unit"]
    assert compute(without_static).word == NOT_PROVEN


def test_two_unreachable_servers_read_as_two_root_causes_not_nested_consequences():
    dtr = "test_server_answers_tls[client->DTR]"
    cache = "test_server_answers_tls[client->cache]"
    dtr_line = "[client->DTR] dtr:443 refused the connection. Fix: check the address."
    cache_line = "[client->cache] cache:443 refused the connection. Fix: check the address."
    results = [Result.make("a", dtr, "failed", dtr_line),
               Result.make("b", cache, "failed", cache_line)]
    # A chain: C stands on B stands on A; each names the root once.
    first = diagnosis.consequence(dtr, dtr_line)
    second = diagnosis.consequence("test_1_push_a_fresh_image_to_dtr", first)
    third = diagnosis.consequence("test_2_manifest_comes_from_dtr", second)
    assert first == second == third == f"consequence of {dtr}: {dtr_line}"
    results += [Result.make("c", "test_1_push_a_fresh_image_to_dtr", "failed", first),
                Result.make("d", "test_2_manifest_comes_from_dtr", "failed", third),
                Result.make("e", "test_4_cache_serves_each_blob_without_authorization",
                            "failed", diagnosis.consequence(cache, cache_line))]
    verdict = compute(results)
    assert verdict.word == NOT_READY
    assert [r.check for r in verdict.roots] == [dtr, cache]
    assert verdict.roots[0].consequences == ["test_1_push_a_fresh_image_to_dtr",
                                             "test_2_manifest_comes_from_dtr"]
    assert verdict.roots[0].hop == "client->DTR" and verdict.roots[0].fix == "check the address"
    text = "\n".join(verdict.lines())
    assert text.startswith("NOT READY: 2 root cause(s)") and "consequence of" not in text


def test_a_consequence_whose_root_was_not_selected_still_names_it():
    line = "consequence of test_1_push_a_fresh_image_to_dtr: [client->DTR] no. Fix: yes."
    verdict = compute([Result.make("x", "test_logs_show_the_miss_then_the_hit", "failed", line)])
    assert verdict.roots[0].check == "test_1_push_a_fresh_image_to_dtr"
    assert verdict.roots[0].hop == "client->DTR"
    assert verdict.roots[0].consequences == ["test_logs_show_the_miss_then_the_hit"]


def test_files_only_says_files_valid_not_ready():
    results = [passed("test_blobttl_has_a_unit")]
    verdict = compute(results, files_only=True)
    assert verdict.word == "FILES VALID" and "not proven" in verdict.headline
