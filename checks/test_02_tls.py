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
