"""Configuration: the cache's config.yml and docker-stack.yml against the seed guide's rules."""

from __future__ import annotations

import warnings

import pytest

from dtr_cache_check.probes import configrules as rules
from dtr_cache_check.probes import stackrules
from dtr_cache_check.probes.deployed_files import CacheFiles
from dtr_cache_check.probes.findings import ERROR, NOT_APPLICABLE, NOT_CHECKED, Finding
from dtr_cache_check.probes.tlsprobe import served
from dtr_cache_check.steps.deployed import deployed_certificate, load_files
from dtr_cache_check.steps.findings import CONFIG, STACK, fail, not_applicable

pytestmark = [pytest.mark.family("configuration"), pytest.mark.hop(CONFIG), pytest.mark.static]


@pytest.fixture(scope="session")
def files(target) -> CacheFiles:
    try:
        return load_files(target)
    except ValueError as exc:
        fail(CONFIG, str(exc), "fix the YAML (quote durations such as '24h')")


def judge(finding: Finding, evidence) -> None:
    """Fail on an error, warn on a warning, note what was verified."""
    if finding.ok:
        evidence.note(finding.cause)
        return
    if finding.severity == NOT_CHECKED:
        pytest.skip(f"not checked: {finding.subject}: {finding.cause} ({finding.fix})")
    if finding.severity == NOT_APPLICABLE:
        not_applicable(f"{finding.subject}: {finding.cause}")
    hop = STACK if "docker-stack" in finding.subject.split(":")[0] else CONFIG
    key = finding.subject.partition(": ")[2]
    cause = finding.cause if key and key in finding.cause else f"{finding.subject}: " \
        f"{finding.cause}"
    if finding.severity == ERROR:
        fail(hop, cause, finding.fix or "see the seed guide")
    warnings.warn(f"{hop}: {finding.subject}: {finding.cause}", stacklevel=2)
    evidence.note(f"WARNING {finding.subject}: {finding.cause}")


def test_blobttl_needs_delete_enabled(files, evidence):
    """With blobttl set, storage.delete.enabled is true (else expired blobs cannot be removed)."""
    judge(rules.rule_blobttl_needs_delete(files), evidence)


def test_blobttl_has_a_unit(files, evidence):
    """blobttl carries a unit (a bare number is nanoseconds)."""
    judge(rules.rule_blobttl_has_unit(files), evidence)


def test_upstreams_are_https(files, evidence):
    """Every upstream is an https://host[:port] URL of DTR or of the next cache."""
    judge(rules.rule_upstreams_https(files), evidence)


def test_cas_files_are_mounted(files, evidence):
    """Every cas file is mounted into the cache where config.yml expects it."""
    judge(stackrules.rule_cas_files_mounted(files), evidence)


def test_tls_files_are_mounted(files, evidence):
    """http.tls's certificate and key are mounted as secrets where config.yml expects them."""
    judge(stackrules.rule_tls_paths_mounted(files), evidence)


@pytest.mark.hop(STACK)
def test_published_port_is_the_listening_port(files, evidence):
    """The port in http.addr is the one the stack publishes."""
    judge(stackrules.rule_published_port_matches_addr(files), evidence)


def test_upstream_is_not_the_cache_itself(files, evidence):
    """No upstream is the cache's own http.host (a cache chained to itself never reaches DTR;
    longer loops through other caches are test_12_chain's)."""
    judge(rules.rule_upstream_not_self(files), evidence)


def test_http_secret_is_not_the_placeholder(files, evidence):
    """http.secret is a real random value when more than one replica runs."""
    judge(rules.rule_secret_not_placeholder(files), evidence)


def test_http_host_is_covered_by_the_certificate(target, files, evidence):
    """http.host's name is in the SANs of the certificate file the stack deploys (when that
    file cannot be read: of the certificate the cache serves)."""
    cert, where = deployed_certificate(target, files)
    if cert is None and target.cache_url and not target.files_only:
        # Read without judging it: a refused certificate would be a TLS error in its logs
        chain = served(target.cache_url)[1]
        cert, where = (chain[0] if chain else None), f"served by {target.cache_url}"
    judge(rules.rule_host_covered_by_cert(files, cert), evidence)
    evidence.note(f"certificate {where}")


@pytest.mark.hop(STACK)
@pytest.mark.shape("swarm")
def test_placement_constraint_matches_a_node(target, files, evidence):
    """The service is pinned with a placement constraint, and some node of the swarm that runs
    the cache (the reference swarm, or the one --cache-host manages) satisfies it."""
    judge(stackrules.rule_placement_constraint(files, target.swarm_nodes), evidence)


@pytest.mark.hop(STACK)
def test_restart_policy(files, evidence):
    """The service restarts on failure."""
    judge(stackrules.rule_restart_policy(files), evidence)


@pytest.mark.hop(STACK)
def test_configs_and_secrets_are_declared(files, evidence):
    """Every config and secret the service uses is declared with a file that exists."""
    judge(stackrules.rule_configs_and_secrets_declared(files), evidence)


@pytest.mark.hop(STACK)
def test_image_matches_the_dtr_version(target, files, evidence):
    """The cache image's tag matches DTR's version, where DTR's version is known."""
    judge(stackrules.rule_image_matches_dtr_version(files, target.dtr_version), evidence)
