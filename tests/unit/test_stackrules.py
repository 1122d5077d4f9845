"""The docker-stack.yml rules: the seed passes; each broken variant fails naming its key."""

from __future__ import annotations

import pytest
from rulekit import OPTS, config, fails, files, service, stack

from dtr_cache_check.probes import configrules as cr
from dtr_cache_check.probes import stackrules as sr
from dtr_cache_check.probes.deployed_files import CacheFiles
from dtr_cache_check.probes.findings import NOT_CHECKED, WARNING

# --- mounts: cas and tls -------------------------------------------------------------------


def test_a_cas_path_nothing_mounts_fails():
    f = fails(sr.rule_cas_files_mounted(files(config(cas=["/etc/ssl/dtr.pem"]))),
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
    assert sr.rule_cas_files_mounted(files(cfg, stk)).ok
    assert sr.rule_tls_paths_mounted(files(cfg, stk)).ok
    fails(sr.rule_tls_paths_mounted(files(config(), stk)), "http.tls.certificate",
          "set http.tls.certificate to /run/secrets/tls.crt")


def test_a_cas_file_as_a_config_long_syntax_is_mounted():
    stk = stack()
    service(stk)["configs"] = ["config.yml", {"source": "dtr-ca", "target": "/certs/dtr.pem"}]
    stk["configs"]["dtr-ca"] = {"external": True}
    f = files(config(cas=["/certs/dtr.pem"]), stk)
    assert sr.rule_cas_files_mounted(f).ok and sr.rule_configs_and_secrets_declared(f).ok


def test_no_cas_is_ok():
    assert "system roots" in sr.rule_cas_files_mounted(files(config(cas=[]))).cause


def test_a_missing_config_source_file_fails_but_deleted_secrets_are_the_seeds_advice(deployed):
    # The seed's last step deletes certs/: swarm keeps the secrets, so that is fine.
    (deployed.deploy_dir / "certs" / "dtr.cert.pem").unlink()
    assert sr.rule_cas_files_mounted(deployed).ok
    assert sr.rule_configs_and_secrets_declared(deployed).ok
    (deployed.deploy_dir / "config.yml").unlink()
    fails(sr.rule_configs_and_secrets_declared(deployed), "configs.config.yml.file",
          "config.yml")


def test_the_tls_key_not_mounted_fails():
    stk = stack()
    service(stk)["secrets"].remove("cache.key.pem")
    fails(sr.rule_tls_paths_mounted(files(config(), stk)), "config.yml: http.tls.key",
          "add `cache.key.pem` to services.cache.secrets")


def test_the_tls_key_as_a_config_fails():
    stk = stack()
    service(stk)["secrets"].remove("cache.key.pem")
    service(stk)["configs"].append({"source": "key", "target": "/run/secrets/cache.key.pem"})
    f = fails(sr.rule_tls_paths_mounted(files(config(), stk)), "http.tls.key", "secrets")
    assert "config `key`" in f.cause


def test_no_tls_fails():
    cfg = config()
    del cfg["http"]["tls"]
    fails(sr.rule_tls_paths_mounted(files(cfg)), "http.tls.certificate", "cache.cert.pem")


# --- ports ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ports", [["443:443"], ["8443:443/tcp"], ["443"], [443],
                                   ["0.0.0.0:443:443"], ["440-450:440-450"],
                                   [{"target": 443, "published": 443}],
                                   [{"target": 443, "published": "8443", "mode": "ingress"}]])
def test_published_port_short_and_long_syntax(ports):
    stk = stack()
    service(stk)["ports"] = ports
    assert sr.rule_published_port_matches_addr(files(config(), stk)).ok


@pytest.mark.parametrize("ports", [["5000:5000"], ["443:5000"], ["443:443/udp"], [],
                                   [{"target": 5000, "published": 443}]])
def test_addr_port_not_published_fails(ports):
    stk = stack()
    service(stk)["ports"] = ports
    f = fails(sr.rule_published_port_matches_addr(files(config(), stk)),
              "docker-stack.yml: services.cache.ports", '"443:443"')
    assert "443" in f.cause


def test_host_networking_needs_no_published_port():
    stk = stack()
    del service(stk)["ports"]
    service(stk)["networks"] = ["hostnet"]
    stk["networks"] = {"hostnet": {"external": True, "name": "host"}}
    assert "host networking" in sr.rule_published_port_matches_addr(files(config(), stk)).cause
    stk["networks"] = {"hostnet": {"external": {"name": "host"}}}  # compose 3.3 form
    assert sr.rule_published_port_matches_addr(files(config(), stk)).ok


def test_unparsable_addr_fails():
    fails(sr.rule_published_port_matches_addr(files(config(addr="443"))), "http.addr", ":443")


# --- placement and restart -----------------------------------------------------------------


def test_no_placement_constraint_fails():
    stk = stack()
    del service(stk)["deploy"]["placement"]
    fails(sr.rule_placement_constraint(files(config(), stk), None), "deploy.placement",
          "node.labels.dtr.cache == true")


def test_a_constraint_no_node_satisfies_fails():
    nodes = [{"dtr.cache": "false"}, {}, {"other": "true"}]
    f = fails(sr.rule_placement_constraint(files(), nodes), "deploy.placement.constraints",
              "docker node update --label-add dtr.cache=true")
    assert "0 of 3" in f.cause


def test_constraints_as_swarm_evaluates_them():
    stk = stack()
    service(stk)["deploy"]["placement"]["constraints"] = [
        "node.labels.dtr.cache==TRUE", "node.labels.region != asia", "node.role == worker"]
    f = files(config(), stk)
    assert sr.rule_placement_constraint(f, [{"dtr.cache": "true"}]).ok  # no region label: !=
    unknown = sr.rule_placement_constraint(f, None)  # no swarm reachable: not checked
    assert not unknown.ok and unknown.severity == NOT_CHECKED and "--cache-host" in unknown.fix
    fails(sr.rule_placement_constraint(f, [{"dtr.cache": "true", "region": "asia"}]),
          "constraints", "--label-rm region")


def test_restart_policy():
    stk = stack()
    service(stk)["deploy"]["restart_policy"] = {"condition": "none"}
    fails(sr.rule_restart_policy(files(config(), stk)), "restart_policy.condition", "on-failure")
    service(stk)["deploy"]["restart_policy"] = {"condition": "any"}
    assert sr.rule_restart_policy(files(config(), stk)).ok
    del service(stk)["deploy"]["restart_policy"]
    fails(sr.rule_restart_policy(files(config(), stk)), "restart_policy", "on-failure", WARNING)


# --- declarations, image, service ----------------------------------------------------------


def test_an_undeclared_secret_fails():
    stk = stack()
    del stk["secrets"]["cache.key.pem"]
    fails(sr.rule_configs_and_secrets_declared(files(config(), stk)),
          "docker-stack.yml: secrets.cache.key.pem", "file: ./<path>")


def test_an_external_secret_needs_no_file(deployed):
    deployed.stack["secrets"]["cache.key.pem"] = {"external": True}
    (deployed.deploy_dir / "certs" / "cache.key.pem").unlink()
    assert sr.rule_configs_and_secrets_declared(deployed).ok


@pytest.mark.parametrize(("image", "repo"), [
    ("docker/dtr-content-cache:2.6.0", "docker/dtr-content-cache"),
    ("reg.example.com:5000/mirantis/dtr-content-cache", "reg.example.com:5000/mirantis/dtr-"),
    ("docker/dtr-content-cache:2.6.0@sha256:" + "a" * 64, "docker/dtr-content-cache")])
def test_an_image_of_another_version_fails(image, repo):
    stk = stack()
    service(stk)["image"] = image
    fails(sr.rule_image_matches_dtr_version(files(config(), stk), "2.7.5"), "image",
          f"{repo}")
    assert sr.rule_image_matches_dtr_version(files(config(), stk), "2.7.5").fix.endswith(
        ":2.7.5")


def test_image_version_v_prefix_and_unknown_version():
    assert sr.rule_image_matches_dtr_version(files(), "v2.7.5").ok
    fails(sr.rule_image_matches_dtr_version(files(), None), "image", "--dtr-version",
          NOT_CHECKED)


def test_the_cache_service_is_found_among_others():
    stk = stack()
    stk["services"]["proxy"] = {"image": "nginx:1.25", "ports": ["80:80"]}
    f = files(config(), stk)
    assert f.cache_service()[0] == "cache" and sr.rule_restart_policy(f).ok
    del service(stk)["entrypoint"]
    service(stk)["image"] = "registry:2"
    for rule in cr.STATIC_RULES[4:]:  # the stack rules, after the config.yml ones
        finding = rule(f)
        if finding.rule != "secret-not-placeholder":
            fails(finding, "services", "CacheFiles(service=")
    assert sr.rule_restart_policy(files(config(), stk, service="cache")).ok


def test_without_a_stack_the_stack_rules_are_not_checked():
    f = CacheFiles(config(), None, None)
    for rule in (sr.rule_cas_files_mounted, sr.rule_tls_paths_mounted, sr.rule_restart_policy):
        finding = rule(f)
        assert finding.severity == NOT_CHECKED and not finding.ok, finding
        assert "--stack-file" in finding.fix, finding
    assert cr.rule_blobttl_needs_delete(f).ok

