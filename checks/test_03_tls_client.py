"""TLS as the client sees it, for DTR and for the cache: the server answers TLS, serves its
full chain, names the host, is within its validity, has a strong key and a modern protocol;
then the overall trust check reports only what those did not already explain."""

from __future__ import annotations

import warnings

import pytest

from dtr_cache_check.probes.tlsprobe import MISSING_INTERMEDIATE, TlsReport, explain, probe
from dtr_cache_check.steps.findings import CLIENT_CACHE, CLIENT_DTR, fail, requires
from dtr_cache_check.steps.ha import replicas_first
from dtr_cache_formats.tls_classes import (
    EXPIRED,
    HOSTNAME_MISMATCH,
    NOT_YET_VALID,
    UNKNOWN_AUTHORITY,
)

pytestmark = [pytest.mark.family("TLS client")]

# Each parameter is a hop, and the check belongs to it; the trust check stands for the
# verdict's row of that hop.
HOPS = [pytest.param(hop, id=hop, marks=pytest.mark.hop(hop))
        for hop in (CLIENT_DTR, CLIENT_CACHE)]
TRUST = [pytest.param(hop, id=hop, marks=[pytest.mark.hop(hop),
                                          pytest.mark.essential(f"{hop} trust")])
         for hop in (CLIENT_DTR, CLIENT_CACHE)]
EXPIRY_WARNING_DAYS = 30
SPECIFIC = ("test_full_chain_is_served", "test_certificate_names_the_host",
            "test_certificate_is_within_its_validity", "test_certificate_key_is_strong",
            "test_tls_1_2_or_newer")
# What explains a failure on the cache's side before the live checks run (for "consequence").
CACHE_CAUSES = {
    # The cache refuses to start with a weak, mismatched or encrypted key: it does not answer.
    "test_server_answers_tls": ("test_cache_key_matches_its_certificate",
                                "test_cache_certificate_file_key_is_strong"),
    "test_full_chain_is_served": ("test_cache_certificate_file_has_the_intermediate",),
    "test_certificate_names_the_host": ("test_http_host_is_covered_by_the_certificate",),
    "test_certificate_is_within_its_validity": (
        "test_cache_certificate_file_is_within_its_validity",),
    "test_certificate_key_is_strong": ("test_cache_certificate_file_key_is_strong",),
}


@pytest.fixture(scope="session")
def client_tls(target) -> dict[str, TlsReport]:
    """One probe per client hop, shared by the checks below."""
    reports = {CLIENT_DTR: probe(target.dtr_url, [target.dtr_ca] if target.dtr_ca else None)}
    if target.cache_url:
        reports[CLIENT_CACHE] = probe(target.cache_url,
                                      [target.cache_ca] if target.cache_ca else None)
    return reports


def _report(client_tls, hop: str, evidence, check: str) -> TlsReport:
    if hop not in client_tls:
        pytest.skip(f"no URL for {hop}: give --cache-url")
    if hop == CLIENT_CACHE:
        requires(*CACHE_CAUSES.get(check, ()))
    report = client_tls[hop]
    evidence.chain(report.chain_rows())
    return report


def _fail_with(report: TlsReport, hop: str, request=None) -> None:
    if request is not None:
        _balancer_first(request, report, hop)
    cause, fix = explain(report)
    fail(hop, cause, fix)


def _balancer_first(request, report: TlsReport, hop: str) -> None:
    """HA: through the balancer the client sees one replica's certificate, or the balancer's
    own (terminating TLS): one replica that differs, or the balancer, is an HA check's
    diagnosis, run now so that this one says "consequence of" it."""
    target = request.getfixturevalue("target")
    if hop != CLIENT_CACHE or not target.replicas or not report.reachable:
        return
    replicas_first(target, request.getfixturevalue("steps"))


@pytest.mark.parametrize("hop", HOPS)
def test_server_answers_tls(client_tls, hop, evidence):
    """The server accepts a TLS connection at the URL given."""
    report = _report(client_tls, hop, evidence, "test_server_answers_tls")
    if not report.reachable:
        _fail_with(report, hop)
    evidence.note(f"{report.address} answers {report.version}")


@pytest.mark.parametrize("hop", HOPS)
@pytest.mark.requires("test_server_answers_tls[*]")
def test_full_chain_is_served(target, client_tls, hop, evidence, request):
    """The server sends its certificate with the intermediate(s) up to a trusted root."""
    report = _report(client_tls, hop, evidence, "test_full_chain_is_served")
    if report.failure_class == MISSING_INTERMEDIATE and not (
            hop == CLIENT_DTR and target.issued_by_dtr_ca(report.leaf)):
        _fail_with(report, hop, request)
    evidence.note(f"{len(report.chain)} certificate(s) served")


@pytest.mark.parametrize("hop", HOPS)
@pytest.mark.requires("test_server_answers_tls[*]")
def test_certificate_names_the_host(client_tls, hop, evidence, request):
    """The certificate's subjectAltName covers the host name clients use."""
    report = _report(client_tls, hop, evidence, "test_certificate_names_the_host")
    if not report.san_covers():
        report.failure_class = HOSTNAME_MISMATCH
        _fail_with(report, hop, request)
    evidence.note(f"{report.host} in SANs {', '.join(report.san_names())}")


@pytest.mark.parametrize("hop", HOPS)
@pytest.mark.requires("test_server_answers_tls[*]")
def test_certificate_is_within_its_validity(client_tls, hop, evidence):
    """The certificate is valid now, and warns when it expires within 30 days."""
    report = _report(client_tls, hop, evidence, "test_certificate_is_within_its_validity")
    if report.failure_class in (EXPIRED, NOT_YET_VALID) or (report.days_left or 0) < 0:
        _fail_with(report, hop)
    if report.expiring_within(EXPIRY_WARNING_DAYS):
        warnings.warn(f"{hop}: the certificate of {report.address} expires in "
                      f"{report.days_left} days ({report.not_after:%Y-%m-%d}): renew it",
                      stacklevel=1)
        evidence.note(f"WARNING: expires in {report.days_left} days")
    evidence.note(f"valid until {report.not_after:%Y-%m-%d} ({report.days_left} days)")


@pytest.mark.parametrize("hop", HOPS)
@pytest.mark.requires("test_server_answers_tls[*]")
def test_certificate_key_is_strong(client_tls, hop, evidence):
    """The certificate's key is at least RSA 2048 or EC P-256."""
    report = _report(client_tls, hop, evidence, "test_certificate_key_is_strong")
    if not report.key_strong_enough():
        _fail_with(report, hop)
    evidence.note(report.key_description())


@pytest.mark.parametrize("hop", HOPS)
@pytest.mark.requires("test_server_answers_tls[*]")
def test_tls_1_2_or_newer(client_tls, hop, evidence):
    """The connection negotiates TLS 1.2 or newer."""
    report = _report(client_tls, hop, evidence, "test_tls_1_2_or_newer")
    if not report.tls_at_least_1_2():
        _fail_with(report, hop)
    evidence.note(f"{report.version}, {report.cipher}")


@pytest.mark.parametrize("hop", TRUST)
@pytest.mark.requires(*(f"{check}[*]" for check in SPECIFIC))
def test_client_trusts_the_server(client_tls, hop, evidence, request):
    """The served chain verifies against the CA the client was given (else the system roots)."""
    report = _report(client_tls, hop, evidence, "test_client_trusts_the_server")
    if not report.trusted:
        _balancer_first(request, report, hop)
        if report.failure_class == MISSING_INTERMEDIATE:  # the full-chain check cleared that
            report.failure_class = UNKNOWN_AUTHORITY
        cause, fix = explain(report)
        if report.failure_class == UNKNOWN_AUTHORITY:
            fix = ("give the client DTR's CA (--dtr-ca; it is served at https://<dtr>/ca)"
                   if hop == CLIENT_DTR else "give the client the CA that signed the cache's "
                   "certificate (--cache-ca; for docker, beside DTR's CA in "
                   "/etc/docker/certs.d/<DTR host:port>/ca.crt: the daemon follows DTR's "
                   "redirect with DTR's trust)")
        fail(hop, cause, fix)
    evidence.note(f"chain verified ({report.failure_detail or 'ok'})")
