"""Fixtures the rule tests share (tests/unit/test_configrules.py, test_stackrules.py)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from rulekit import config, stack

from dtr_cache_check.pki import CertificateAuthority, write_seed_certs
from dtr_cache_check.probes.deployed_files import CacheFiles
from dtr_cache_check.reference.seed_templates import write_yaml


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
