"""The cache's certificate files as deployed (or, with --files-only, before they are): the
intermediate appended, valid now and for a while, a strong key, the key unencrypted and
matching. Checked before the live hops, whose failures these files would explain."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest

from dtr_cache_check.probes.certfiles import inspect_files
from dtr_cache_check.probes.tlsprobe import describe_key, load_certs
from dtr_cache_check.steps.deployed import deployed_file, load_files
from dtr_cache_check.steps.findings import FILES, fail
from dtr_cache_formats.keys import key_is_strong

pytestmark = [pytest.mark.family("certificate files"), pytest.mark.hop(FILES), pytest.mark.static]

EXPIRY_WARNING_DAYS = 30


@pytest.fixture(scope="session")
def cache_files(target):
    try:
        return load_files(target)
    except ValueError as exc:
        pytest.skip(f"config.yml unreadable ({exc}): see the configuration checks")


def _deployed_tls_files(target, cache_files, tmp_path, which=("certificate", "key")):
    config = cache_files.effective()[0]
    tls = (config.get("http") or {}).get("tls") or {}
    if not tls.get("certificate"):
        pytest.skip("http.tls is not set: see the configuration checks")
    paths = {}
    for key in which:
        content, where = deployed_file(target, cache_files, str(tls.get(key)))
        if content is None:
            pytest.skip(f"the cache's {key} cannot be read ({where}): give --cache-host")
        paths[key] = tmp_path / key
        paths[key].write_bytes(content)
        paths[key].chmod(0o600)
    return paths


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
    """cache.key.pem is unencrypted and the private half of the certificate."""
    paths = _deployed_tls_files(target, cache_files, tmp_path)
    report = inspect_files(paths["certificate"], paths["key"])
    if report.key_encrypted:
        fail(FILES, "the cache's private key is encrypted: the cache cannot start with it",
             "decrypt it (openssl pkey -in cache.key.pem -out cache.key.pem) and redeploy")
    if report.key_matches is False:
        fail(FILES, "the cache's private key does not match its certificate",
             "deploy the key that was generated with the certificate's request, or reissue "
             "the certificate for this key")
    evidence.note(f"key matches the certificate ({report.key_description})")


def _leaf(target, cache_files, tmp_path):
    paths = _deployed_tls_files(target, cache_files, tmp_path, ("certificate",))
    certs = load_certs(paths["certificate"].read_bytes())
    if not certs:
        fail(FILES, "the cache's certificate file holds no PEM certificate",
             "put the cache's certificate (then its intermediate) in cache.cert.pem")
    return certs[0]


def test_cache_certificate_file_is_within_its_validity(target, cache_files, tmp_path, evidence):
    """The certificate in cache.cert.pem is valid now, and warns when it expires within 30 days."""
    leaf = _leaf(target, cache_files, tmp_path)
    now = datetime.now(UTC)
    if now > leaf.not_valid_after_utc:
        fail(FILES, f"the cache's certificate file holds a certificate that expired on "
             f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
             "renew the certificate and redeploy cache.cert.pem with its key")
    if now < leaf.not_valid_before_utc:
        fail(FILES, f"the cache's certificate file holds a certificate not valid before "
             f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (not yet valid)",
             "check the issuer's clock (NTP), or reissue it with a start date in the past")
    days = (leaf.not_valid_after_utc - now).days
    if days < EXPIRY_WARNING_DAYS:
        warnings.warn(f"deployment files: cache.cert.pem expires in {days} days: renew it",
                      stacklevel=1)
        evidence.note(f"WARNING: expires in {days} days")
    evidence.note(f"valid {leaf.not_valid_before_utc:%Y-%m-%d} to "
                  f"{leaf.not_valid_after_utc:%Y-%m-%d} ({days} days left)")


def test_cache_certificate_file_key_is_strong(target, cache_files, tmp_path, evidence):
    """The certificate in cache.cert.pem has an RSA 2048+, EC P-256+ or Ed25519 key."""
    leaf = _leaf(target, cache_files, tmp_path)
    key = describe_key(leaf.public_key())
    if not key_is_strong(leaf.public_key()):
        fail(FILES, f"the cache's certificate has a weak key ({key}): clients and DTR refuse "
             "it", "issue a new certificate with an RSA 2048+ or EC P-256 key and deploy it "
             "with that key")
    evidence.note(f"{key} key")
