"""The report's first screen: every check lands on a hop or a family, each hop/family takes the
colour of its worst outcome and the label of its first failure, the verdict shows the root
causes only (consequences folded, each linked to its row), the Hop column sorts by hop then
family, and the report is one self-contained file wherever it is written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from dtr_cache_check.harness import diagram, hopgroups, report, report_assets
from dtr_cache_check.harness.hopgroups import (
    FAILED,
    NOT_APPLICABLE,
    NOT_RUN,
    PASSED,
    SKIPPED,
    STYLE,
)
from dtr_cache_check.harness.verdict import Result, compute
from dtr_cache_check.probes import redaction
from dtr_cache_check.steps.findings import (
    CACHE_DTR,
    CLIENT_CACHE,
    CLIENT_DTR,
    CONFIG,
    DTR_CACHE,
    PULL,
    REGISTRATION,
    SECURITY,
    STACK,
    TTL,
    Finding,
    consequence,
)
from dtr_cache_check.testkit.local import REPO_ROOT
from tests.unit.checkfacts import declared, essential, res

SVG = "{http://www.w3.org/2000/svg}"


def test_every_check_declares_a_hop_or_family_the_report_draws():
    facts = declared()
    assert len(facts) >= 40
    unknown = [f"{f.name} -> {f.hop}" for f in facts.values()
               if f.hop not in hopgroups.HOPS + hopgroups.FAMILIES]
    assert not unknown, unknown
    assert facts["test_client_trusts_the_server[client->cache]"].hop == CLIENT_CACHE
    assert facts["test_dtr_trusts_the_cache"].hop == DTR_CACHE
    assert facts["test_restart_policy"].hop == STACK


def diag(hop: str, cause: str, fix: str = "do this") -> Finding:
    return Finding(hop, cause, fix, "details")


def test_a_failed_diagnosis_lands_on_its_hop_a_consequence_on_its_own_family():
    tampered = res("test_tampered_token_gets_nothing", FAILED,
                   diag(CLIENT_CACHE, "the cache served the blob to a tampered token"))
    root_line = Finding(CACHE_DTR, "the cache does not trust DTR", "add DTR's CA to cas")
    follow = res("test_2_manifest_comes_from_dtr", FAILED,
                 consequence("test_cache_trusts_dtr", root_line))
    assert follow.hop == CACHE_DTR and follow.root == "test_cache_trusts_dtr"
    assert hopgroups.group_of(tampered) == CLIENT_CACHE
    assert hopgroups.group_of(follow) == PULL
    assert hopgroups.group_of(res("test_tampered_token_gets_nothing")) == SECURITY


def test_each_group_takes_its_worst_outcome_failed_skipped_passed_not_run():
    results = [
        res("test_server_answers_tls[client->DTR]"),
        res("test_client_trusts_the_server[client->DTR]", FAILED,
            diag(CLIENT_DTR, "DTR's certificate is signed by an unknown authority")),
        res("test_server_answers_tls[client->cache]"),
        res("test_client_trusts_the_server[client->cache]", SKIPPED, "no URL for client->cache"),
        res("test_cache_trusts_dtr"),
    ]
    states = hopgroups.summarize(results)
    assert states[CLIENT_DTR].outcome == FAILED
    assert states[CLIENT_CACHE].outcome == SKIPPED
    assert states[CACHE_DTR].outcome == PASSED
    assert states[DTR_CACHE].outcome == NOT_RUN and states[TTL].outcome == NOT_RUN
    svg = ET.fromstring(diagram.diagram_svg(results))
    strokes = {}
    for g in svg.iter(f"{SVG}g"):
        if g.get("data-group"):
            strokes.setdefault(g.get("data-group"), set()).update(
                r.get("stroke") for r in g.iter(f"{SVG}rect"))
    assert strokes["client-dtr"] == {STYLE[FAILED][0]}
    assert strokes["client-cache"] == {STYLE[SKIPPED][0]}
    assert strokes["cache-dtr"] == {STYLE[PASSED][0]}
    assert strokes["dtr-cache"] == {STYLE[NOT_RUN][0]}
    assert strokes["cache-ttl"] == {STYLE[NOT_RUN][0]}


def test_labels_name_the_first_failure_short_and_prefer_a_diagnosis():
    root_line = Finding(CACHE_DTR, "the cache does not trust DTR", "add DTR's CA to cas")
    results = [
        res("test_1_push_a_fresh_image_to_dtr"),
        res("test_2_manifest_comes_from_dtr", FAILED,
            consequence("test_cache_trusts_dtr", root_line)),
        res("test_5_first_request_misses_and_second_hits", FAILED,
            diag(PULL, "X-Cache went ['MISS', 'MISS'] instead of MISS then HIT")),
        res("test_cache_is_registered_in_dtr", FAILED,
            consequence("test_cache_trusts_dtr", root_line)),
        res("test_expired_copy_is_fetched_again", SKIPPED,
            "blobttl is longer than --ttl-wait (24h > 60s)"),
        res("test_blobttl_has_a_unit"), res("test_blobttl_needs_delete_enabled"),
    ]
    states = hopgroups.summarize(results)
    assert states[PULL].label == "X-Cache went ['MISS', 'MISS'] instead of MISS then HIT " \
                                 "(+1 more)"
    assert states[REGISTRATION].label == "consequence of test_cache_trusts_dtr"
    assert states[TTL].label == "skipped: blobttl is longer than --ttl-wait (24h > 60s)"
    assert states[CONFIG].label == "2 checks passed"
    assert states[DTR_CACHE].label == "not run"
    assert diagram.wrap("a " * 100, 20)[-1].endswith("\u2026")
    assert len(diagram.wrap("a " * 100, 20)) == 2
    svg = diagram.diagram_svg(results)
    assert "X-Cache went" in svg and "consequence of test_cache_trusts_dtr" in svg


def test_the_diagram_is_one_svg_with_every_hop_and_family_clickable():
    svg = diagram.diagram_svg([])
    root = ET.fromstring(svg)
    assert root.get("id") == "dtr-diagram"
    groups = {g.get("data-group") for g in root.iter(f"{SVG}g") if g.get("data-group")}
    assert groups == {hopgroups.slug(g) for g in hopgroups.HOPS + hopgroups.FAMILIES}
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    for name in ("client", "DTR", "cache", "config.yml", "docker-stack.yml", "deployment files",
                 "registration", "pull", "logs", "TTL", "docker client", "containerd client",
                 "security"):
        assert name in texts
    assert "href" not in svg and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_several_caches_give_every_node_its_hops():
    nodes = ["client", "DTR", "cache-eu", "cache-asia"]
    results = [res("test_client_trusts_the_server[client->cache-us]", FAILED,
                   diag("client->cache-us", "no answer"))]
    root = ET.fromstring(diagram.diagram_svg(results, nodes))
    hops = {g.get("data-name") for g in root.iter(f"{SVG}g") if "dtr-hop" in (g.get("class")
                                                                          or "")}
    assert hops == {"client->DTR", "client->cache-eu", "cache-eu->DTR", "DTR->cache-eu",
                    "client->cache-asia", "cache-asia->DTR", "DTR->cache-asia",
                    "client->cache-us"}
    names = {t.text for t in root.iter(f"{SVG}text")}
    assert {"client", "DTR", "cache-eu", "cache-asia", "cache-us"} <= names
    width = float(root.get("width"))
    for rect in root.iter(f"{SVG}rect"):
        x = float(rect.get("x"))
        assert x >= 0 and x + float(rect.get("width")) <= width


def failing_run() -> list[Result]:
    root_line = Finding(CACHE_DTR, "the cache does not trust DTR", "add DTR's CA to cas")
    return [
        res("test_client_trusts_the_server[client->DTR]", file="03_tls_client"),
        res("test_cache_trusts_dtr", FAILED, diag(CACHE_DTR, "the cache does not trust DTR",
                                                  "add DTR's CA to cas"), "04_tls_between"),
        res("test_2_manifest_comes_from_dtr", FAILED,
            consequence("test_cache_trusts_dtr", root_line), "06_pull_cycle"),
        res("test_blobttl_needs_delete_enabled", FAILED,
            diag(CONFIG, "blobttl is set but storage.delete.enabled is false",
                 "set storage.delete.enabled: true"), "01_config"),
    ]


def test_the_verdict_shows_root_causes_only_with_consequences_folded_and_links():
    results = failing_run()
    verdict = compute(results, essential())
    page = report.verdict_html(verdict, results)
    assert 'id="dtr-verdict"' in page and "NOT READY" in page
    roots = re.findall(r'<li class="dtr-root">(.*?)</li>(?=<li class="dtr-root">|</ol>)', page)
    assert len(roots) == 2
    first = roots[0]
    assert '<span class="dtr-hopname">cache-&gt;DTR</span>' in first
    assert '<div class="dtr-cause">the cache does not trust DTR</div>' in first
    assert "<b>Fix:</b> add DTR&#x27;s CA to cas." in first
    assert 'data-target="checks/test_04_tls_between.py::test_cache_trusts_dtr"' in first
    folded = first[first.index("<details>"):]
    assert "1 consequence" in folded and "test_2_manifest_comes_from_dtr" in folded
    assert 'data-target="checks/test_06_pull_cycle.py::test_2_manifest_comes_from_dtr"' \
        in folded
    # Consequences appear only folded, under their root; unproven items folded after roots.
    assert page.count("test_2_manifest_comes_from_dtr</a>") == 1
    assert '<details class="dtr-unproven">' in page


def test_not_proven_lists_what_did_not_pass_and_files_valid_says_so():
    results = [res("test_blobttl_has_a_unit")]
    page = report.verdict_html(compute(results, essential()), results)
    assert "NOT PROVEN" in page and '<ul class="dtr-unproven">' in page
    files_only = compute(results, essential(), files_only=True)
    assert "FILES VALID" in report.verdict_html(files_only, results)


def test_the_top_block_carries_styles_script_verdict_and_diagram():
    results = failing_run()
    page = report.top_html(compute(results, essential()), results)
    assert page.index('id="dtr-verdict"') < page.index('<svg id="dtr-diagram"')
    assert 'data-sort="hop"' in page and "<script>" in page and "<style>" in page
    assert 'src="' not in page and "<link" not in page  # nothing external


def test_secrets_in_a_failure_never_reach_the_top_block():
    redactor = redaction.Redactor()
    redactor.add_secret("s3cr3t-Passw0rd-long", "test password")
    token = redaction.use(redactor)
    try:
        results = [res("test_cache_is_registered_in_dtr", FAILED,
                       diag(REGISTRATION, "login with s3cr3t-Passw0rd-long was refused"))]
        page = report.top_html(compute(results, essential()), results)
        assert "s3cr3t-Passw0rd-long" not in page and "REDACTED" in page
    finally:
        redaction.restore(token)


def test_the_inline_assets_pass_the_redactor_unchanged():
    assert redaction.Redactor()(report_assets.JS) == report_assets.JS
    assert redaction.Redactor()(report_assets.CSS) == report_assets.CSS


def test_the_hop_column_sorts_by_hop_then_family_then_run_order():
    results = [*failing_run(), res("test_restart_policy", file="01_config"),
               res("test_server_answers_tls[client->DTR]", file="03_tls_client")]
    cells = [report.hop_cell(r.id, r, seq) for seq, r in enumerate(reversed(results), 1)]
    keys = [re.search(r'<td class="col-hop".*?>(.*?)</td>', c)[1] for c in cells]
    order = [re.search(r"<b>(.*?)</b>", k)[1] for k in sorted(keys)]
    assert order == ["client-&gt;DTR", "client-&gt;DTR", "cache-&gt;DTR", "config.yml",
                     "docker-stack.yml", "pull through the cache"]
    assert all("\n" not in c for c in cells)
    assert sum('data-group="pull-through-the-cache"' in c for c in cells) == 1
    # A row without a recorded result (a teardown error) still lands on its declared hop.
    assert 'data-group="cache-dtr"' in report.hop_cell(
        "checks/test_04_tls_between.py::test_cache_reaches_dtr", None, 1,
        declared()["test_cache_reaches_dtr"].hop)


def test_a_checks_run_writes_a_self_contained_report_wherever_it_goes(tmp_path):
    option = SimpleNamespace(htmlpath=str(tmp_path / "elsewhere" / "r.html"),
                             self_contained_html=False, xmlpath=str(tmp_path / "j.xml"))
    config = SimpleNamespace(args=[str(REPO_ROOT / "checks")], option=option)
    report.configure_defaults(config)
    assert option.self_contained_html is True and option.htmlpath.endswith("r.html")
    other = SimpleNamespace(htmlpath="x.html", self_contained_html=False, xmlpath="j.xml")
    report.configure_defaults(SimpleNamespace(args=[str(REPO_ROOT / "tests")], option=other))
    assert other.self_contained_html is False


def write_seed_dir(directory: Path) -> None:
    """A seed-style deployment directory that passes the static checks."""
    from dtr_cache_check.pki import write_seed_certs
    from dtr_cache_check.reference.seed_templates import cache_config, stack_file, write_yaml
    from dtr_cache_check.reference.stack.write_files import Pki

    pki = Pki.create()
    write_seed_certs(directory / "certs", pki.cache_leaf(["cache.example.com"]), pki.dtr_ca)
    write_yaml(directory / "config.yml", cache_config(
        upstreams=["https://dtr.example.invalid:443"], host="https://cache.example.com",
        secret="4f1d6c0e8a9b2d3c5e7f9a1b3c5d7e9f"))
    write_yaml(directory / "docker-stack.yml",
               stack_file(image="mirantis/dtr-content-cache:2.9.0", port=443))


def test_files_only_report_elsewhere_is_one_file_with_the_top_block(tmp_path):
    deploy = tmp_path / "deploy"
    write_seed_dir(deploy)
    out = tmp_path / "out"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DTR_CHECK_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "checks/test_01_config.py",
         "checks/test_02_certificate_files.py", "-q", "-p", "no:cacheprovider", "--files-only",
         "--dtr-url", "https://dtr.example.invalid", "--deploy-dir", str(deploy),
         "--html", str(out / "report.html"), "--junitxml", str(out / "junit.xml")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=clean)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "results.json"]
    page = (out / "report.html").read_text()
    # In the source the block is the summary's prefix; its script moves it under the title
    # (tests/docker/test_report_render.py checks where a browser shows it).
    assert 'id="dtr-top"' in page and "insertBefore(top, title.nextSibling)" in page
    assert 'data-word="FILES VALID"' in page and '<svg id="dtr-diagram"' in page
    assert 'data-column-type="hop"' in page and "col-hop" in page
    assert "<link " not in page


@pytest.mark.parametrize("outcome", [FAILED, SKIPPED, PASSED, NOT_APPLICABLE, NOT_RUN])
def test_every_outcome_has_a_colour_a_fill_and_a_glyph(outcome):
    stroke, fill, glyph = STYLE[outcome]
    assert re.fullmatch(r"#[0-9a-f]{6}", stroke) and re.fullmatch(r"#[0-9a-f]{6}", fill)
    assert glyph and hopgroups.RANK[outcome] == [NOT_RUN, NOT_APPLICABLE, PASSED, SKIPPED,
                                                     FAILED].index(outcome)
