"""The config.yml rules: the seed passes every rule; each broken variant fails naming its key."""

from __future__ import annotations

import copy

import pytest
import yaml
from rulekit import LABELLED, OPTS, config, fails, files, service, stack

from dtr_cache_check.probes import configrules as cr
from dtr_cache_check.probes import stackrules as sr
from dtr_cache_check.probes.deployed_files import CacheFiles, downstream_options
from dtr_cache_check.probes.findings import NOT_APPLICABLE, NOT_CHECKED, WARNING, Finding
from dtr_cache_check.reference.seed_templates import cache_config, write_yaml


def all_findings(f: CacheFiles, cert=None) -> list[Finding]:
    return [rule(f) for rule in cr.STATIC_RULES] + [
        sr.rule_placement_constraint(f, LABELLED), cr.rule_host_covered_by_cert(f, cert),
        sr.rule_image_matches_dtr_version(f, "2.7.5")]


def test_the_seed_as_written_has_no_error_only_the_placeholder_warning(ca):
    cert = ca.issue_server(["cache.example.com"]).cert
    found = all_findings(files(), cert)
    assert [f.rule for f in found if not f.ok] == ["secret-not-placeholder"], found
    assert found[7].severity == WARNING
    assert {f.rule for f in found} == {
        "blobttl-needs-delete", "blobttl-has-unit", "upstreams-https", "cas-files-mounted",
        "tls-paths-mounted", "published-port-matches-addr", "secret-not-placeholder",
        "restart-policy", "configs-and-secrets-declared", "placement-constraint",
        "host-covered-by-cert", "image-matches-dtr-version", "upstream-not-self"}


def test_the_seed_on_disk_with_a_real_secret_passes_every_rule(deployed, ca):
    cert = ca.issue_server(["cache.example.com"]).cert
    assert deployed.deploy_dir is not None and deployed.cache_service()[0] == "cache"
    for finding in all_findings(deployed, cert):
        assert finding.ok and not finding.fix, finding


def test_ok_findings_and_failures_are_concrete():
    broken = files(config(delete_enabled=False, blobttl=86400, addr=":5000"), {"services": {
        "cache": {"image": "x/dtr-content-cache:1", "ports": ["443:443"], "secrets": ["k"]}}})
    for finding in [rule(broken) for rule in cr.STATIC_RULES]:
        assert finding.subject and finding.cause, finding
        if not finding.ok:
            assert finding.fix, finding


# --- blobttl -------------------------------------------------------------------------------


def test_blobttl_without_delete_enabled_fails():
    f = fails(cr.rule_blobttl_needs_delete(files(config(delete_enabled=False))),
              "config.yml: storage.delete.enabled", "storage.delete.enabled: true")
    assert "'24h'" in f.cause and "False" in f.cause


def test_blobttl_with_delete_enabled_as_a_string_fails():
    cfg = config()
    cfg["storage"]["delete"]["enabled"] = "true"
    fails(cr.rule_blobttl_needs_delete(files(cfg)), "storage.delete.enabled", "true")


def test_no_blobttl_makes_the_ttl_rules_not_applicable_never_passed():
    f = files(config(blobttl=None, delete_enabled=False))
    for finding in (cr.rule_blobttl_needs_delete(f), cr.rule_blobttl_has_unit(f)):
        assert not finding.ok and finding.severity == NOT_APPLICABLE
        assert "never expire" in finding.cause


def test_a_registry_env_override_counts_and_is_named():
    stk = stack()
    service(stk)["environment"] = ["REGISTRY_STORAGE_DELETE_ENABLED=true"]
    assert cr.rule_blobttl_needs_delete(files(config(delete_enabled=False), stk)).ok
    service(stk)["environment"] = {"REGISTRY_STORAGE_DELETE_ENABLED": False,
                                   "REGISTRY_HTTP_SECRET": "s3cr3t-shared"}
    fails(cr.rule_blobttl_needs_delete(files(config(), stk)),
          "services.cache.environment.REGISTRY_STORAGE_DELETE_ENABLED", "enabled: true")
    assert cr.rule_secret_not_placeholder(files(config(), stk)).ok


def test_blobttl_without_unit_is_nanoseconds():
    f = fails(cr.rule_blobttl_has_unit(files(config(blobttl=86400))), f"{OPTS}.blobttl",
              '"24h"')
    assert "nanoseconds" in f.cause and "86.4 µs" in f.cause


def test_a_quoted_number_is_no_duration_as_go_reads_it():
    """Go's time.ParseDuration("86400") fails with "missing unit in duration": a quoted
    number is an error of config.yml, not nanoseconds."""
    f = fails(cr.rule_blobttl_has_unit(files(config(blobttl="86400"))), f"{OPTS}.blobttl",
              '"24h"')
    assert "missing unit" in f.cause


def test_blobttl_sexagesimal_yaml_quirk_says_to_quote():
    ttl = yaml.safe_load("blobttl: 1:30")["blobttl"]
    assert ttl == 90
    f = fails(cr.rule_blobttl_has_unit(files(config(blobttl=ttl))), "blobttl", "quoted")
    assert "1:30" in f.cause and "90 ns" in f.cause


@pytest.mark.parametrize("value", ["soon", "0s", "-1h", 1.5])
def test_blobttl_garbage_or_not_positive_fails(value):
    fails(cr.rule_blobttl_has_unit(files(config(blobttl=value))), "blobttl", "24h")


def test_blobttl_with_unit_is_ok_in_human_units():
    assert "1.5 h" in cr.rule_blobttl_has_unit(files(config(blobttl="1h30m"))).cause


# --- upstreams -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://dtr.example.com:443", "dtr.example.com",
                                 "https://dtr.example.com/v2/"])
def test_an_upstream_that_is_not_https_host_port_fails(url):
    f = fails(cr.rule_upstreams_https(files(cache_config(upstreams=["https://a.example", url]))),
              f"{OPTS}.upstreams[1]", "https://dtr.example.com")
    assert repr(url) in f.cause


def test_legacy_upstreams_form_is_understood():
    cfg = config()
    cfg["middleware"]["registry"][0]["options"]["upstreams"] = [
        {"originhost": "https://dtr.example.com", "upstreamhosts": ["https://cache1.example.com:443"]}]
    assert cr.rule_upstreams_https(files(cfg)).ok
    cfg["middleware"]["registry"][0]["options"]["upstreams"][0]["upstreamhosts"].append(
        "http://cache2.example.com:80")
    fails(cr.rule_upstreams_https(files(cfg)), "upstreams[0].upstreamhosts[1]",
          "upstreamhosts[1] to https://cache2.example.com (")  # the http port dropped


def test_missing_upstreams_or_middleware_fails():
    cfg = config()
    del cfg["middleware"]
    found = fails(cr.rule_upstreams_https(files(cfg)), "config.yml: middleware.registry",
                  "downstream middleware")
    assert "not a content cache" in found.cause
    cfg = config()
    del downstream_options(cfg)["upstreams"]
    fails(cr.rule_upstreams_https(files(cfg)), f"{OPTS}.upstreams", "https://<dtr-host>")
    del cfg["middleware"]
    assert downstream_options(cfg) is None
    assert downstream_options(config())["blobttl"] == "24h"


# --- http.secret ---------------------------------------------------------------------------


def test_placeholder_secret_with_two_replicas_is_an_error():
    stk = stack()
    service(stk)["deploy"]["replicas"] = 2
    f = fails(cr.rule_secret_not_placeholder(files(config(), stk)), "config.yml: http.secret",
              "random value")
    assert "generate-random-secret" in f.cause and "replicas 2" in f.cause


@pytest.mark.parametrize("secret", ["", None])
def test_empty_secret_with_replicas_is_an_error(secret):
    cfg, stk = config(), stack()
    cfg["http"]["secret"] = secret
    service(stk)["deploy"] = {"mode": "global"}
    f = fails(cr.rule_secret_not_placeholder(files(cfg, stk)), "http.secret", "shared")
    assert "own secret" in f.cause


def test_placeholder_secret_with_one_replica_is_a_warning():
    fails(cr.rule_secret_not_placeholder(files()), "http.secret", "openssl rand", WARNING)


# --- certificate ---------------------------------------------------------------------------


def test_host_in_the_certificate(ca):
    ok = cr.rule_host_covered_by_cert(files(), ca.issue_server(["cache.example.com"]).cert)
    assert ok.ok and "DNS:cache.example.com" in ok.cause
    f = fails(cr.rule_host_covered_by_cert(files(), ca.issue_server(["other.example.com"]).cert),
              "http.host", "SAN cache.example.com")
    assert "other.example.com" in f.cause


def test_wildcard_san_covers_one_label_only(ca):
    cert = ca.issue_server(["*.example.com"]).cert
    assert "DNS:*.example.com" in cr.rule_host_covered_by_cert(files(), cert).cause
    for host in ("https://a.b.example.com", "https://example.com"):
        fails(cr.rule_host_covered_by_cert(files(config(host=host)), cert), "http.host", "SAN")


def test_ip_san_and_no_san(ca):
    cert = ca.issue_server(["10.0.0.5"]).cert
    assert cr.rule_host_covered_by_cert(files(config(host="https://10.0.0.5:443")), cert).ok
    no_san = ca.issue_server([], common_name="cache.example.com").cert
    f = fails(cr.rule_host_covered_by_cert(files(), no_san), "http.host", "reissue")
    assert "CN" in f.cause


def test_no_certificate_is_not_checked_never_a_pass():
    f = fails(cr.rule_host_covered_by_cert(files(), None), "http.host", "--deploy-dir",
              NOT_CHECKED)
    assert "no certificate" in f.cause


# --- loading -------------------------------------------------------------------------------


def test_load_bad_yaml_names_the_file(tmp_path):
    (tmp_path / "config.yml").write_text("http: [unclosed\n")
    with pytest.raises(ValueError, match=r"config\.yml"):
        CacheFiles.load(tmp_path / "config.yml")
    write_yaml(tmp_path / "config.yml", config())
    (tmp_path / "docker-stack.yml").write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match=r"docker-stack\.yml.*list"):
        CacheFiles.load(tmp_path / "config.yml", tmp_path / "docker-stack.yml")
    with pytest.raises(ValueError, match=r"missing\.yml"):
        CacheFiles.load(tmp_path / "missing.yml")


def test_load_keeps_the_file_names(tmp_path):
    write_yaml(tmp_path / "cache-config.yml", config())
    f = CacheFiles.load(tmp_path / "cache-config.yml")
    assert f.stack is None and f.deploy_dir is None
    assert cr.rule_blobttl_has_unit(f).subject.startswith("cache-config.yml: ")
    assert copy.deepcopy(f.config) == config()


# --- a cache chained to itself ---------------------------------------------------------------


def test_an_upstream_naming_the_cache_itself_fails():
    own = config(host="https://cache.example.com")
    downstream_options(own)["upstreams"] = ["https://dtr.example.com", "https://cache.example.com:443"]
    f = fails(cr.rule_upstream_not_self(files(own)), f"config.yml: {OPTS}.upstreams[1]",
              "never the cache itself")
    assert "chained to itself" in f.cause and "https://cache.example.com" in f.cause


def test_an_upstream_on_another_port_of_the_same_host_is_not_the_cache():
    other = config(host="https://cache.example.com:443")
    downstream_options(other)["upstreams"] = ["https://cache.example.com:8443"]
    assert cr.rule_upstream_not_self(files(other)).ok
