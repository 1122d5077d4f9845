"""The cache's certificate files as deployed: the intermediate appended, the key unencrypted
and matching. Checked before the live hops, whose failures these files would explain."""

from __future__ import annotations

import pytest

from fixtures.harness.deployed import deployed_file, load_files
from fixtures.harness.diagnosis import FILES, fail
from fixtures.tlsprobe import inspect_files, load_certs


@pytest.fixture(scope="session")
def cache_files(target):
    try:
        return load_files(target)
    except ValueError as exc:
        pytest.skip(f"config.yml unreadable ({exc}): see the configuration checks")


def _deployed_tls_files(target, cache_files, tmp_path):
    config = cache_files.effective()[0]
    tls = (config.get("http") or {}).get("tls") or {}
    if not tls.get("certificate"):
        pytest.skip("http.tls is not set: see the configuration checks")
    paths = {}
    for key in ("certificate", "key"):
        content, where = deployed_file(target, cache_files, str(tls.get(key)))
        if content is None:
            pytest.skip(f"the cache's {key} cannot be read ({where}): give --cache-host")
        paths[key] = tmp_path / key
        paths[key].write_bytes(content)
        paths[key].chmod(0o600)
    return paths


def _strong(description: str) -> bool:
    kind, _, bits = description.rpartition(" ")
    size = int("".join(ch for ch in bits if ch.isdigit()) or 0)
    return size >= (2048 if kind.startswith("RSA") else 256)


def test_cache_certificate_file_has_the_intermediate(target, cache_files, tmp_path, evidence):
    """cache.cert.pem holds the leaf with its intermediate appended (unless signed by a root)."""
    paths = _deployed_tls_files(target, cache_files, tmp_path)
    roots = load_certs(target.cache_ca.read_bytes()) if target.cache_ca else []
    report = inspect_files(paths["certificate"], None, roots=roots)
    if not report.intermediate_appended:
        fail(FILES, f"the cache's certificate file holds {report.count} certificate(s) and not "
             "the intermediate that signed the leaf", "append the intermediate CA certificate "
             "to cache.cert.pem (cat cache.crt intermediate.crt > cache.cert.pem) and redeploy")
    evidence.note(f"{report.count} certificates in the file")


def test_cache_key_matches_its_certificate(target, cache_files, tmp_path, evidence):
    """cache.key.pem is unencrypted, strong enough, and the private half of the certificate."""
    paths = _deployed_tls_files(target, cache_files, tmp_path)
    report = inspect_files(paths["certificate"], paths["key"])
    if report.key_encrypted:
        fail(FILES, "the cache's private key is encrypted: the cache cannot start with it",
             "decrypt it (openssl pkey -in cache.key.pem -out cache.key.pem) and redeploy")
    if report.key_description and not _strong(report.key_description):
        fail(FILES, f"the cache's key is weak ({report.key_description}): clients and DTR "
             "refuse it", "issue a new certificate with an RSA 2048+ or EC P-256 key and "
             "deploy it with that key")
    if report.key_matches is False:
        fail(FILES, "the cache's private key does not match its certificate",
             "deploy the key that was generated with the certificate's request, or reissue "
             "the certificate for this key")
    evidence.note(f"key matches the certificate ({report.key_description})")
