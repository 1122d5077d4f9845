"""TLS, hop by hop: what the client sees of DTR and of the cache, what the cache sees of DTR,
whether DTR trusts the cache, and the certificate files as deployed.

For each client hop the specific defects are checked first (chain complete, name covered,
validity, key, protocol); the overall trust check then reports only what they did not explain.
"""

from __future__ import annotations

import uuid
import warnings

import pytest

from fixtures.harness.diagnosis import CLIENT_CACHE, CLIENT_DTR, fail, requires
from fixtures.tlsprobe import MISSING_INTERMEDIATE, TlsReport, explain, probe

HOPS = [CLIENT_DTR, CLIENT_CACHE]
EXPIRY_WARNING_DAYS = 30


@pytest.fixture(scope="session")
def client_tls(target) -> dict[str, TlsReport]:
    """One probe per client hop, shared by the checks below."""
    reports = {}
    reports[CLIENT_DTR] = probe(target.dtr_url, [target.dtr_ca] if target.dtr_ca else None)
    if target.cache_url:
        reports[CLIENT_CACHE] = probe(target.cache_url,
                                      [target.cache_ca] if target.cache_ca else None)
    return reports


def _report(client_tls, hop: str, evidence) -> TlsReport:
    if hop not in client_tls:
        pytest.skip(f"no URL for {hop}: give --cache-url")
    report = client_tls[hop]
    evidence.chain(report.chain_rows())
    if not report.reachable:
        cause, fix = explain(report)
        fail(hop, cause, fix)
    return report


@pytest.mark.parametrize("hop", HOPS)
def test_full_chain_is_served(client_tls, hop, evidence):
    """The server sends its certificate with the intermediate(s) up to a trusted root."""
    report = _report(client_tls, hop, evidence)
    if report.failure_class == MISSING_INTERMEDIATE:
        cause, fix = explain(report)
        fail(hop, cause, fix)
    evidence.note(f"{len(report.chain)} certificate(s) served")


@pytest.mark.parametrize("hop", HOPS)
def test_certificate_names_the_host(client_tls, hop, evidence):
    """The certificate's subjectAltName covers the host name clients use."""
    report = _report(client_tls, hop, evidence)
    if not report.san_covers():
        report.failure_class = "hostname mismatch"
        cause, fix = explain(report)
        fail(hop, cause, fix)
    evidence.note(f"{report.host} in SANs {', '.join(report.san_names())}")


@pytest.mark.parametrize("hop", HOPS)
def test_certificate_is_within_its_validity(client_tls, hop, evidence):
    """The certificate is valid now, and warns when it expires within 30 days."""
    report = _report(client_tls, hop, evidence)
    if report.failure_class in ("expired", "not yet valid") or (report.days_left or 0) < 0:
        cause, fix = explain(report)
        fail(hop, cause, fix)
    if report.expiring_within(EXPIRY_WARNING_DAYS):
        warnings.warn(f"{hop}: the certificate of {report.address} expires in "
                      f"{report.days_left} days ({report.not_after:%Y-%m-%d}): renew it",
                      stacklevel=1)
        evidence.note(f"WARNING: expires in {report.days_left} days")
    evidence.note(f"valid until {report.not_after:%Y-%m-%d} ({report.days_left} days)")


@pytest.mark.parametrize("hop", HOPS)
def test_certificate_key_is_strong(client_tls, hop, evidence):
    """The certificate's key is at least RSA 2048 or EC P-256."""
    report = _report(client_tls, hop, evidence)
    if not report.key_strong_enough():
        cause, fix = explain(report)
        fail(hop, cause, fix)
    evidence.note(report.key_description())


@pytest.mark.parametrize("hop", HOPS)
def test_tls_1_2_or_newer(client_tls, hop, evidence):
    """The connection negotiates TLS 1.2 or newer."""
    report = _report(client_tls, hop, evidence)
    if not report.tls_at_least_1_2():
        cause, fix = explain(report)
        fail(hop, cause, fix)
    evidence.note(f"{report.version}, {report.cipher}")


@pytest.mark.parametrize("hop", HOPS)
def test_client_trusts_the_server(client_tls, hop, evidence):
    """The served chain verifies against the CA the client was given (else the system roots)."""
    report = _report(client_tls, hop, evidence)
    name = {CLIENT_DTR: "dtr", CLIENT_CACHE: "cache"}[hop]
    requires(*(f"{check}[{hop}]" for check in (
        "test_full_chain_is_served", "test_certificate_names_the_host",
        "test_certificate_is_within_its_validity", "test_certificate_key_is_strong",
        "test_tls_1_2_or_newer")))
    if not report.trusted:
        cause, fix = explain(report)
        fail(hop, cause, fix.replace("the client", f"the client (--{name}-ca)", 1))
    evidence.note(f"chain verified ({report.failure_detail or 'ok'})")


def test_dtr_trusts_the_cache(target, registered_cache, evidence, writes):
    """DTR accepts registering the cache's URL: it reaches the cache and trusts its certificate."""
    from fixtures.harness.diagnosis import DTR_CACHE

    if not target.cache_url:
        pytest.skip("no --cache-url")
    name = f"dtr-cache-check-probe-{uuid.uuid4().hex[:8]}"
    with target.api() as api:
        answer = api.post("/api/v0/content_caches", json={"name": name, "host": target.cache_url})
        if answer.status_code in (200, 201):
            probe_id = answer.json().get("id")
            if probe_id:
                api.delete(f"/api/v0/content_caches/{probe_id}")
            evidence.note(f"DTR accepted {target.cache_url} (probe registration, removed)")
            return
    if answer.status_code in (401, 403):
        pytest.skip(f"registering needs a DTR admin ({answer.status_code}): give "
                    "--dtr-admin-user/--dtr-admin-password")
    message = answer.text[:400]
    fail(DTR_CACHE, f"DTR refused a cache at {target.cache_url}: {message}",
         "give DTR the CA that signed the cache's certificate (DTR's trusted CAs), or serve the "
         "cache with a certificate from a CA DTR trusts")


# -- cache->DTR: the cache's own trust, from the files it was given ---------------------------

@pytest.fixture(scope="session")
def cache_files(target):
    from fixtures.harness.deployed import load_files

    try:
        return load_files(target)
    except ValueError as exc:
        pytest.skip(f"config.yml unreadable ({exc}): see the configuration checks")


def test_cache_trusts_dtr(target, cache_files, evidence):
    """DTR's served chain verifies against the cas files config.yml gives the cache."""
    from urllib.parse import urlsplit

    from fixtures.configrules import downstream_options
    from fixtures.harness.deployed import deployed_file
    from fixtures.harness.diagnosis import CACHE_DTR

    options = downstream_options(cache_files.effective()[0]) or {}
    upstreams = [u for u in options.get("upstreams") or [] if isinstance(u, str)]
    if not upstreams:
        pytest.skip("no plain upstream URL in config.yml: see the configuration checks")
    upstream = urlsplit(upstreams[0])
    dtr = urlsplit(target.dtr_url)
    upstream_port = upstream.port or 443
    connect_to = None
    if (upstream.hostname, upstream_port) != (dtr.hostname, dtr.port or 443):
        # The cache reaches DTR by another name (e.g. a service name): reach the same port
        # through DTR's URL, and still verify the certificate for the cache's name.
        connect_to = (dtr.hostname, dtr.port or 443)
    cas, sources = [], []
    for path in options.get("cas") or []:
        content, where = deployed_file(target, cache_files, str(path))
        if content is None:
            fail(CACHE_DTR, f"the cache's CA file {path} is missing ({where})",
                 "mount DTR's CA there: curl -sk https://<dtr>/ca > certs/dtr.cert.pem, "
                 "declared as the secret dtr.cert.pem")
        cas.append(content)
        sources.append(where)
    report = probe(f"https://{upstream.hostname}:{upstream_port}", cas or None,
                   connect_to=connect_to)
    evidence.chain(report.chain_rows(), "DTR's chain, as the cache sees it")
    evidence.text("the cache's trust", "\n".join(sources) or "system roots only (no cas)")
    if not report.trusted:
        cause, fix = explain(report)
        if report.failure_class in ("unknown authority", MISSING_INTERMEDIATE, "self-signed"):
            fix = ("put DTR's CA in the cache's cas: curl -sk https://<dtr>/ca > "
                   "certs/dtr.cert.pem, mounted as the secret dtr.cert.pem and listed under cas")
        fail(CACHE_DTR, f"{cause} (trusting {'the cas files' if cas else 'system roots only'})",
             fix)
    evidence.note(f"{upstreams[0]} verified against {len(cas) or 'system'} CA(s)")


# -- the certificate files as deployed ----------------------------------------------------------

def _deployed_tls_files(target, cache_files, tmp_path):
    from fixtures.harness.deployed import deployed_file

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


def test_cache_certificate_file_has_the_intermediate(target, cache_files, tmp_path, evidence):
    """cache.cert.pem holds the leaf with its intermediate appended (unless signed by a root)."""
    from fixtures.harness.diagnosis import FILES
    from fixtures.tlsprobe import inspect_files, load_certs

    paths = _deployed_tls_files(target, cache_files, tmp_path)
    roots = load_certs(target.cache_ca.read_bytes()) if target.cache_ca else []
    report = inspect_files(paths["certificate"], None, roots=roots)
    if not report.intermediate_appended:
        fail(FILES, f"the cache's certificate file holds {report.count} certificate(s) and not "
             "the intermediate that signed the leaf", "append the intermediate CA certificate "
             "to cache.cert.pem (cat cache.crt intermediate.crt > cache.cert.pem) and redeploy")
    evidence.note(f"{report.count} certificates in the file")


def test_cache_key_matches_its_certificate(target, cache_files, tmp_path, evidence):
    """cache.key.pem is unencrypted and is the private half of the certificate."""
    from fixtures.harness.diagnosis import FILES
    from fixtures.tlsprobe import inspect_files

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
