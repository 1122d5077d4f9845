"""fixtures.configrules: the seed passes every rule; each broken variant fails naming its key."""

from __future__ import annotations

import copy
import secrets
from pathlib import Path

import pytest
import yaml
from dtr_cache_check.pki import CertificateAuthority, write_seed_certs
from dtr_cache_check.probes import configrules as cr
from dtr_cache_check.probes.configrules import ERROR, WARNING, CacheFiles, Finding
from dtr_cache_check.reference.seed_templates import cache_config, stack_file, write_yaml

IMAGE = "docker/dtr-content-cache:2.7.5"
OPTS = "middleware.registry[downstream].options"
LABELLED = [{"dtr.cache": "true"}]


def config(**kw) -> dict:
    return cache_config(upstreams=["https://dtr.example.com:443"], **kw)


def stack(**kw) -> dict:
    return stack_file(image=IMAGE, port=443, **kw)


def files(cfg: dict | None = None, stk: dict | None = None, **kw) -> CacheFiles:
    return CacheFiles(cfg or config(), stk or stack(), None, **kw)


def service(stk: dict) -> dict:
    return stk["services"]["cache"]


def fails(finding: Finding, key: str, fix: str, severity: str = ERROR) -> Finding:
    """A failed finding about ``key`` whose fix says ``fix``."""
    assert not finding.ok, finding
    assert finding.severity == severity, finding
    assert key in finding.subject, finding
    assert finding.cause and fix in finding.fix, finding
    return finding


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


@pytest.fixture()
def deployed(tmp_path: Path, ca: CertificateAuthority) -> CacheFiles:
    """The seed's layout on disk (random http.secret), loaded with CacheFiles.load."""
    write_seed_certs(tmp_path / "certs", ca.intermediate().issue_server(["cache.example.com"]), ca)
    write_yaml(tmp_path / "config.yml", config(secret=secrets.token_hex(16)))
    write_yaml(tmp_path / "docker-stack.yml", stack())
    return CacheFiles.load(tmp_path / "config.yml", tmp_path / "docker-stack.yml")


def all_findings(f: CacheFiles, cert=None) -> list[Finding]:
    return [rule(f) for rule in cr.STATIC_RULES] + [
        cr.rule_placement_constraint(f, LABELLED), cr.rule_host_covered_by_cert(f, cert),
        cr.rule_image_matches_dtr_version(f, "2.7.5")]


def test_the_seed_as_written_has_no_error_only_the_placeholder_warning(ca):
    cert = ca.issue_server(["cache.example.com"]).cert
    found = all_findings(files(), cert)
    assert [f.rule for f in found if not f.ok] == ["secret-not-placeholder"], found
    assert found[6].severity == WARNING
    assert {f.rule for f in found} == {
        "blobttl-needs-delete", "blobttl-has-unit", "upstreams-https", "cas-files-mounted",
        "tls-paths-mounted", "published-port-matches-addr", "secret-not-placeholder",
        "restart-policy", "configs-and-secrets-declared", "placement-constraint",
        "host-covered-by-cert", "image-matches-dtr-version"}


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


def test_no_blobttl_needs_no_delete_and_never_expires():
    f = files(config(blobttl=None, delete_enabled=False))
    assert cr.rule_blobttl_needs_delete(f).ok
    unit = cr.rule_blobttl_has_unit(f)
    assert unit.ok and "never expire" in unit.cause


def test_a_registry_env_override_counts_and_is_named():
    stk = stack()
    service(stk)["environment"] = ["REGISTRY_STORAGE_DELETE_ENABLED=true"]
    assert cr.rule_blobttl_needs_delete(files(config(delete_enabled=False), stk)).ok
    service(stk)["environment"] = {"REGISTRY_STORAGE_DELETE_ENABLED": False,
                                   "REGISTRY_HTTP_SECRET": "s3cr3t-shared"}
    fails(cr.rule_blobttl_needs_delete(files(config(), stk)),
          "services.cache.environment.REGISTRY_STORAGE_DELETE_ENABLED", "enabled: true")
    assert cr.rule_secret_not_placeholder(files(config(), stk)).ok


@pytest.mark.parametrize("value", [86400, "86400"])
def test_blobttl_without_unit_is_nanoseconds(value):
    f = fails(cr.rule_blobttl_has_unit(files(config(blobttl=value))), f"{OPTS}.blobttl",
              '"24h"')
    assert "nanoseconds" in f.cause and "86.4 µs" in f.cause


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
    fails(cr.rule_upstreams_https(files(cfg)), f"{OPTS}.upstreams", "https://<dtr-host>")
    assert cr.downstream_options(cfg) is None
    assert cr.downstream_options(config())["blobttl"] == "24h"


# --- mounts: cas and tls -------------------------------------------------------------------


def test_a_cas_path_nothing_mounts_fails():
    f = fails(cr.rule_cas_files_mounted(files(config(cas=["/etc/ssl/dtr.pem"]))),
              f"{OPTS}.cas[0]", "target: /etc/ssl/dtr.pem")
    assert "/run/secrets/dtr.cert.pem" in f.cause


def test_secrets_long_syntax_with_a_custom_target():
    stk = stack()
    service(stk)["secrets"] = [
        {"source": "dtr.cert.pem", "target": "/etc/ssl/dtr.pem"},
        {"source": "cache.cert.pem", "target": "tls.crt"},  # relative: under /run/secrets
        {"source": "cache.key.pem", "target": "tls.key", "mode": 0o400}]
    cfg = config(cas=["/etc/ssl/dtr.pem"], certificate="/run/secrets/tls.crt",
                 key="/run/secrets/tls.key")
    assert cr.rule_cas_files_mounted(files(cfg, stk)).ok
    assert cr.rule_tls_paths_mounted(files(cfg, stk)).ok
    fails(cr.rule_tls_paths_mounted(files(config(), stk)), "http.tls.certificate",
          "set http.tls.certificate to /run/secrets/tls.crt")


def test_a_cas_file_as_a_config_long_syntax_is_mounted():
    stk = stack()
    service(stk)["configs"] = ["config.yml", {"source": "dtr-ca", "target": "/certs/dtr.pem"}]
    stk["configs"]["dtr-ca"] = {"external": True}
    f = files(config(cas=["/certs/dtr.pem"]), stk)
    assert cr.rule_cas_files_mounted(f).ok and cr.rule_configs_and_secrets_declared(f).ok


def test_no_cas_is_ok():
    assert "system roots" in cr.rule_cas_files_mounted(files(config(cas=[]))).cause


def test_a_missing_config_source_file_fails_but_deleted_secrets_are_the_seeds_advice(deployed):
    # The seed's last step deletes certs/: swarm keeps the secrets, so that is fine.
    (deployed.deploy_dir / "certs" / "dtr.cert.pem").unlink()
    assert cr.rule_cas_files_mounted(deployed).ok
    assert cr.rule_configs_and_secrets_declared(deployed).ok
    (deployed.deploy_dir / "config.yml").unlink()
    fails(cr.rule_configs_and_secrets_declared(deployed), "configs.config.yml.file",
          "config.yml")


def test_the_tls_key_not_mounted_fails():
    stk = stack()
    service(stk)["secrets"].remove("cache.key.pem")
    fails(cr.rule_tls_paths_mounted(files(config(), stk)), "config.yml: http.tls.key",
          "add `cache.key.pem` to services.cache.secrets")


def test_the_tls_key_as_a_config_fails():
    stk = stack()
    service(stk)["secrets"].remove("cache.key.pem")
    service(stk)["configs"].append({"source": "key", "target": "/run/secrets/cache.key.pem"})
    f = fails(cr.rule_tls_paths_mounted(files(config(), stk)), "http.tls.key", "secrets")
    assert "config `key`" in f.cause


def test_no_tls_fails():
    cfg = config()
    del cfg["http"]["tls"]
    fails(cr.rule_tls_paths_mounted(files(cfg)), "http.tls.certificate", "cache.cert.pem")


# --- ports ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ports", [["443:443"], ["8443:443/tcp"], ["443"], [443],
                                   ["0.0.0.0:443:443"], ["440-450:440-450"],
                                   [{"target": 443, "published": 443}],
                                   [{"target": 443, "published": "8443", "mode": "ingress"}]])
def test_published_port_short_and_long_syntax(ports):
    stk = stack()
    service(stk)["ports"] = ports
    assert cr.rule_published_port_matches_addr(files(config(), stk)).ok


@pytest.mark.parametrize("ports", [["5000:5000"], ["443:5000"], ["443:443/udp"], [],
                                   [{"target": 5000, "published": 443}]])
def test_addr_port_not_published_fails(ports):
    stk = stack()
    service(stk)["ports"] = ports
    f = fails(cr.rule_published_port_matches_addr(files(config(), stk)),
              "docker-stack.yml: services.cache.ports", '"443:443"')
    assert "443" in f.cause


def test_host_networking_needs_no_published_port():
    stk = stack()
    del service(stk)["ports"]
    service(stk)["networks"] = ["hostnet"]
    stk["networks"] = {"hostnet": {"external": True, "name": "host"}}
    assert "host networking" in cr.rule_published_port_matches_addr(files(config(), stk)).cause
    stk["networks"] = {"hostnet": {"external": {"name": "host"}}}  # compose 3.3 form
    assert cr.rule_published_port_matches_addr(files(config(), stk)).ok


def test_unparsable_addr_fails():
    fails(cr.rule_published_port_matches_addr(files(config(addr="443"))), "http.addr", ":443")


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
              cr.NOT_CHECKED)
    assert "no certificate" in f.cause


# --- placement and restart -----------------------------------------------------------------


def test_no_placement_constraint_fails():
    stk = stack()
    del service(stk)["deploy"]["placement"]
    fails(cr.rule_placement_constraint(files(config(), stk), None), "deploy.placement",
          "node.labels.dtr.cache == true")


def test_a_constraint_no_node_satisfies_fails():
    nodes = [{"dtr.cache": "false"}, {}, {"other": "true"}]
    f = fails(cr.rule_placement_constraint(files(), nodes), "deploy.placement.constraints",
              "docker node update --label-add dtr.cache=true")
    assert "0 of 3" in f.cause


def test_constraints_as_swarm_evaluates_them():
    stk = stack()
    service(stk)["deploy"]["placement"]["constraints"] = [
        "node.labels.dtr.cache==TRUE", "node.labels.region != asia", "node.role == worker"]
    f = files(config(), stk)
    assert cr.rule_placement_constraint(f, [{"dtr.cache": "true"}]).ok  # no region label: !=
    unknown = cr.rule_placement_constraint(f, None)  # no swarm reachable: not checked
    assert not unknown.ok and unknown.severity == cr.NOT_CHECKED and "--cache-host" in unknown.fix
    fails(cr.rule_placement_constraint(f, [{"dtr.cache": "true", "region": "asia"}]),
          "constraints", "--label-rm region")


def test_restart_policy():
    stk = stack()
    service(stk)["deploy"]["restart_policy"] = {"condition": "none"}
    fails(cr.rule_restart_policy(files(config(), stk)), "restart_policy.condition", "on-failure")
    service(stk)["deploy"]["restart_policy"] = {"condition": "any"}
    assert cr.rule_restart_policy(files(config(), stk)).ok
    del service(stk)["deploy"]["restart_policy"]
    fails(cr.rule_restart_policy(files(config(), stk)), "restart_policy", "on-failure", WARNING)


# --- declarations, image, service ----------------------------------------------------------


def test_an_undeclared_secret_fails():
    stk = stack()
    del stk["secrets"]["cache.key.pem"]
    fails(cr.rule_configs_and_secrets_declared(files(config(), stk)),
          "docker-stack.yml: secrets.cache.key.pem", "file: ./<path>")


def test_an_external_secret_needs_no_file(deployed):
    deployed.stack["secrets"]["cache.key.pem"] = {"external": True}
    (deployed.deploy_dir / "certs" / "cache.key.pem").unlink()
    assert cr.rule_configs_and_secrets_declared(deployed).ok


@pytest.mark.parametrize(("image", "repo"), [
    ("docker/dtr-content-cache:2.6.0", "docker/dtr-content-cache"),
    ("reg.example.com:5000/mirantis/dtr-content-cache", "reg.example.com:5000/mirantis/dtr-"),
    ("docker/dtr-content-cache:2.6.0@sha256:" + "a" * 64, "docker/dtr-content-cache")])
def test_an_image_of_another_version_fails(image, repo):
    stk = stack()
    service(stk)["image"] = image
    fails(cr.rule_image_matches_dtr_version(files(config(), stk), "2.7.5"), "image",
          f"{repo}")
    assert cr.rule_image_matches_dtr_version(files(config(), stk), "2.7.5").fix.endswith(
        ":2.7.5")


def test_image_version_v_prefix_and_unknown_version():
    assert cr.rule_image_matches_dtr_version(files(), "v2.7.5").ok
    fails(cr.rule_image_matches_dtr_version(files(), None), "image", "--dtr-version",
          cr.NOT_CHECKED)


def test_the_cache_service_is_found_among_others():
    stk = stack()
    stk["services"]["proxy"] = {"image": "nginx:1.25", "ports": ["80:80"]}
    f = files(config(), stk)
    assert f.cache_service()[0] == "cache" and cr.rule_restart_policy(f).ok
    del service(stk)["entrypoint"]
    service(stk)["image"] = "registry:2"
    for rule in cr.STATIC_RULES[3:]:
        finding = rule(f)
        if finding.rule != "secret-not-placeholder":
            fails(finding, "services", "CacheFiles(service=")
    assert cr.rule_restart_policy(files(config(), stk, service="cache")).ok


def test_without_a_stack_the_stack_rules_are_not_checked():
    f = CacheFiles(config(), None, None)
    for rule in (cr.rule_cas_files_mounted, cr.rule_tls_paths_mounted, cr.rule_restart_policy):
        finding = rule(f)
        assert finding.severity == cr.NOT_CHECKED and not finding.ok, finding
        assert "--stack-file" in finding.fix, finding
    assert cr.rule_blobttl_needs_delete(f).ok


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
