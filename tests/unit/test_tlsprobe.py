"""probes.tlsprobe against real TLS servers on 127.0.0.1: every defect is seen, named the
project's way (``cache_under_test.tls``) and explained; deployed PEM files are inspected."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dtr_cache_check.pki import CertificateAuthority, Issued, fingerprint_sha256, server_context
from dtr_cache_check.probes.certfiles import inspect_files
from dtr_cache_check.probes.tlsprobe import (
    MISSING_INTERMEDIATE,
    TlsReport,
    explain,
    name_covers,
    probe,
)

ROOT = CertificateAuthority.create("tlsprobe Test Root CA")
CA = ROOT.intermediate("tlsprobe Test Intermediate CA")
HOSTS = ["localhost", "127.0.0.1"]
GOOD = CA.issue_server(HOSTS)
TRUST = [ROOT.cert_pem]


@contextlib.contextmanager
def serving(ctx: ssl.SSLContext | None, answer: bytes = b"", *,
            sni: list[str | None] | None = None) -> Iterator[int]:
    """Accept connections on 127.0.0.1 in a thread until the block ends and yield the port.
    With ``ctx``: TLS handshakes (SNI names go to ``sni``); with None: read the first bytes
    and answer ``answer`` in plain text."""
    if ctx is not None and sni is not None:
        ctx.sni_callback = lambda _sock, name, _ctx: sni.append(name)
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            if ctx is None:
                conn.recv(4096)
                conn.sendall(answer)
                return
            with ctx.wrap_socket(conn, server_side=True):
                pass

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError):  # the client refused: its side is under test
                handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _probe(issued: Issued, *, with_chain: bool = True, cas: list[bytes] | None = TRUST,
           host: str = "127.0.0.1") -> TlsReport:
    """Serve ``issued`` and probe it as ``https://{host}:{port}/`` (connecting to 127.0.0.1)."""
    with serving(server_context(issued, with_chain=with_chain)) as port:
        return probe(f"https://{host}:{port}/v2/", cas, connect_to=("127.0.0.1", port),
                     timeout=5)


def _refused(report: TlsReport, failure_class: str, code: int) -> tuple[str, str]:
    assert report.reachable and not report.trusted
    assert (report.failure_class, report.verify_code) == (failure_class, code)
    assert report.failure_detail  # OpenSSL's words
    cause, fix = explain(report)
    assert cause and fix and fix != "nothing to fix"
    return cause, fix


# --- what is served --------------------------------------------------------------------------


def test_good_chain(tmp_path: Path) -> None:
    with serving(server_context(GOOD)) as port:
        report = probe(f"https://127.0.0.1:{port}/v2/", [ROOT.write_cert(tmp_path / "ca.pem")])
    assert report.reachable and report.trusted and report.failure_class is None
    assert (report.host, report.port, report.address) == ("127.0.0.1", port, f"127.0.0.1:{port}")
    assert report.version in ("TLSv1.2", "TLSv1.3") and report.tls_at_least_1_2()
    assert report.cipher
    assert [fingerprint_sha256(c) for c in report.chain] == [
        fingerprint_sha256(GOOD.cert), fingerprint_sha256(CA.cert)]
    assert report.crypto_detail == ""
    assert report.san_names() == ["localhost", "127.0.0.1"]
    assert report.san_covers() and report.san_covers("localhost")
    assert report.san_covers("LOCALHOST.") and not report.san_covers("other.example")
    assert report.key_description() == "EC P-256" and report.key_strong_enough()
    assert report.not_before is not None and report.not_before < datetime.now(UTC)
    assert report.days_left in (89, 90)
    assert report.expiring_within(91) and not report.expiring_within(30)
    rows = report.chain_rows()
    assert [r["sha256"] for r in rows] == [fingerprint_sha256(c) for c in GOOD.chain]
    assert rows[0]["sans"] == ["localhost", "127.0.0.1"] and rows[0]["key"] == "EC P-256"
    assert "tlsprobe Test Intermediate CA" in rows[0]["issuer"]
    assert "tlsprobe Test Intermediate CA" in rows[1]["subject"]
    assert rows[0]["not_after"] == GOOD.cert.not_valid_after_utc.isoformat()
    assert explain(report) == (f"127.0.0.1:{port} serves a chain the client trusts",
                               "nothing to fix")


def test_connect_to_verifies_for_the_url_host() -> None:
    seen: list[str | None] = []
    with serving(server_context(CA.issue_server(["cache.example"])), sni=seen) as port:
        report = probe(f"cache.example:{port}", TRUST, connect_to=("127.0.0.1", port))
    assert report.trusted and report.host == "cache.example" and report.san_covers()
    assert seen == ["cache.example", "cache.example"]  # SNI: the URL's host, both connections


def test_missing_intermediate() -> None:
    report = _probe(GOOD, with_chain=False)
    assert len(report.chain) == 1
    cause, fix = _refused(report, MISSING_INTERMEDIATE, 20)
    assert "candidates exhausted" in report.crypto_detail
    assert "issued by tlsprobe Test Intermediate CA" in cause
    assert "x509: certificate signed by unknown authority" in cause
    # Two causes look alike from the client: both named, the likelier (an issuer that calls
    # itself an intermediate) first, with what tells them apart and the CAs the client trusts.
    assert "Either (1) the server does not send the intermediate" in cause
    assert "or (2) the certificate comes from tlsprobe Test Intermediate CA, a CA the client " \
           "was not given" in cause
    assert "what decides" in cause and "SHA-256" in cause
    assert fix.startswith("if (1): append tlsprobe Test Intermediate CA's certificate")
    assert "if (2): give the client" in fix
    # the same lone leaf is fine for a client that has the intermediate
    assert _probe(GOOD, with_chain=False, cas=[*TRUST, CA.cert_pem]).trusted


def test_unknown_authority() -> None:
    stranger = CertificateAuthority.create("Stranger Root CA").intermediate("Stranger CA")
    report = _probe(stranger.issue_server(HOSTS))
    assert len(report.chain) == 2
    cause, fix = _refused(report, "unknown authority", 20)
    assert "candidates exhausted" in report.crypto_detail
    assert cause == (f"the certificate chain served by {report.address} does not lead to a CA "
                     "the client trusts (x509: certificate signed by unknown authority)")
    assert fix == ("give the client the CA that signed it (for DTR: curl -sk https://<dtr>/ca), "
                   "or serve a certificate from a CA the client already trusts")


def test_system_roots_do_not_know_the_test_ca() -> None:
    report = _probe(GOOD, cas=None)
    assert not report.trusted and report.failure_class == "unknown authority"


def test_hostname_mismatch() -> None:
    report = _probe(CA.issue_server(["other.example"]), host="cache.example")
    assert report.host == "cache.example" and not report.san_covers()
    cause, fix = _refused(report, "hostname mismatch", 62)
    assert "subjectAltName" in report.crypto_detail
    assert "is valid for other.example, not cache.example" in cause
    assert "subjectAltName includes cache.example" in fix and "other.example" in fix


def test_ip_mismatch() -> None:
    report = _probe(CA.issue_server(["localhost"]))
    assert _refused(report, "hostname mismatch", 64)[0].count("not 127.0.0.1") == 2


def test_expired() -> None:
    expired = CA.issue_server(HOSTS, not_after=datetime.now(UTC) - timedelta(days=3))
    report = _probe(expired)
    cause, fix = _refused(report, "expired", 10)
    assert "not valid at validation time" in report.crypto_detail
    assert report.crypto_detail.endswith("(expired)")
    assert report.days_left is not None and report.days_left < 0 and report.expiring_within(0)
    assert f"expired on {expired.cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC" in cause
    assert "3 days ago" in cause and "renew" in fix


def test_not_yet_valid() -> None:
    future = CA.issue_server(HOSTS, not_before=datetime.now(UTC) + timedelta(days=2))
    report = _probe(future)
    cause, fix = _refused(report, "not yet valid", 9)
    assert report.crypto_detail.endswith("(not yet valid)")
    assert f"not valid before {future.cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC" in cause
    assert "clocks" in fix


def test_self_signed() -> None:
    report = _probe(CertificateAuthority.self_signed_server(HOSTS))
    cause, fix = _refused(report, "self-signed", 18)
    assert "serves a self-signed certificate (localhost)" in cause
    assert "as a CA" in fix


def test_weak_key_is_seen_and_reported() -> None:
    weak = CA.issue_server(HOSTS, key_type="rsa", key_size=1024)
    report = _probe(weak)
    assert len(report.chain) == 2 and report.version  # the unverified handshake completed
    assert report.key_description() == "RSA 1024" and not report.key_strong_enough()
    assert report.crypto_detail == ""  # cryptography does not object to the key size
    assert report.failure_class is not None
    assert report.failure_class == "weak key"
    cause, fix = _refused(report, report.failure_class, 66)
    assert cause == (f"the certificate served by {report.address} has a weak key (RSA 1024): "
                     "clients need at least RSA 2048 or EC P-256")
    assert "RSA 2048" in fix


@pytest.mark.skipif(not ssl.HAS_TLSv1_1, reason="this OpenSSL has no TLS 1.1")
def test_old_tls() -> None:
    ctx = server_context(GOOD)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with serving(ctx) as port:
        report = probe(f"https://127.0.0.1:{port}", TRUST, timeout=5)
    assert report.reachable and report.version == "TLSv1.1" and not report.tls_at_least_1_2()
    assert not report.trusted and report.verify_code is None
    assert (report.failure_class or "").startswith("tls handshake")
    assert report.crypto_detail == ""  # the chain itself is fine
    cause, fix = explain(report)
    assert cause == f"127.0.0.1:{port} negotiated TLSv1.1; clients require TLS 1.2 or later"
    assert "TLS 1.2" in fix


# --- no TLS session at all -------------------------------------------------------------------


def test_refused_port() -> None:
    with socket.socket() as reserved:  # bound, never listening: connections are refused
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        report = probe(f"https://127.0.0.1:{port}/", TRUST, timeout=2)
    assert not report.reachable and not report.trusted and report.chain == []
    assert report.reason.startswith("connection refused")
    cause, fix = explain(report)
    assert cause.startswith(f"no TLS connection could be made to 127.0.0.1:{port}")
    assert "connection refused" in cause and "port" in fix


def test_not_tls() -> None:
    with serving(None, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as port:
        report = probe(f"https://127.0.0.1:{port}/", TRUST, timeout=2)
    assert not report.reachable and report.reason.startswith("not TLS")


def test_silent_server_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # never accepts, never answers
        report = probe(f"https://127.0.0.1:{listener.getsockname()[1]}/", TRUST, timeout=0.3)
    assert not report.reachable and report.reason.startswith("timeout")


def test_not_an_https_url() -> None:
    report = probe("http://127.0.0.1:1/", TRUST)
    assert not report.reachable and "https" in report.reason


# --- name rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "covered"), [
    ("a.example.com", True), ("A.Example.COM.", True), ("example.com", False),
    ("a.b.example.com", False), ("exact.example.org", True), ("10.0.0.1", True),
    ("10.0.0.2", False), ("::1", True), ("[::1]", True), ("1.0.0.10", False),
])
def test_name_covers(host: str, covered: bool) -> None:
    names = ["*.example.com", "exact.example.org", "*.0.0.10", "f*.example.net", "10.0.0.1",
             "::1"]
    assert name_covers(names, host) is covered


def test_partial_wildcards_and_ip_wildcards_do_not_match() -> None:
    assert not name_covers(["f*.example.net"], "foo.example.net")
    assert not name_covers(["*.0.0.10"], "1.0.0.10")
    assert not name_covers(["*.*.example.com"], "a.b.example.com")


# --- files on disk ---------------------------------------------------------------------------


def _files(tmp_path: Path, issued: Issued, **kwargs: object) -> tuple[Path, Path]:
    return issued.write(tmp_path / "cache.cert.pem", tmp_path / "cache.key.pem", **kwargs)  # type: ignore[arg-type]


def test_inspect_good_files(tmp_path: Path) -> None:
    report = inspect_files(*_files(tmp_path, GOOD))
    assert (report.count, report.intermediate_appended) == (2, True)
    assert report.key_present and not report.key_encrypted and report.key_matches is True
    assert report.key_description == "EC P-256" and report.error == ""
    assert "PRIVATE" not in repr(report) and "BEGIN" not in repr(report)


def test_inspect_encrypted_key(tmp_path: Path) -> None:
    report = inspect_files(*_files(tmp_path, GOOD, key_password=b"secret"))
    assert report.key_present and report.key_encrypted and report.key_matches is None
    assert report.error == ""


def test_inspect_mismatched_key(tmp_path: Path) -> None:
    report = inspect_files(*_files(tmp_path, GOOD.with_other_key()))
    assert report.key_present and not report.key_encrypted and report.key_matches is False


def test_inspect_without_intermediate(tmp_path: Path) -> None:
    cert, key = _files(tmp_path, GOOD, with_chain=False)
    report = inspect_files(cert, key)
    assert (report.count, report.intermediate_appended, report.key_matches) == (1, False, True)
    assert inspect_files(cert, key, roots=[CA.cert]).intermediate_appended  # issued by a root
    assert not inspect_files(cert, key, roots=[ROOT.cert]).intermediate_appended


def test_inspect_self_signed_weak_and_missing_files(tmp_path: Path) -> None:
    cert, _ = _files(tmp_path, CertificateAuthority.self_signed_server(HOSTS))
    assert inspect_files(cert, None).intermediate_appended
    weak, key = _files(tmp_path, CA.issue_server(HOSTS, key_type="rsa", key_size=1024))
    assert inspect_files(weak, key).key_description == "RSA 1024"
    missing = inspect_files(tmp_path / "nope.pem", tmp_path / "nope.key")
    assert (missing.count, missing.key_present, missing.key_matches) == (0, False, None)
    assert "cannot read" in missing.error
    (tmp_path / "garbage.key").write_text("not a key\n")
    garbled = inspect_files(weak, tmp_path / "garbage.key")
    assert garbled.key_present and garbled.key_matches is None and "not a PEM" in garbled.error


def test_a_leaf_straight_from_an_untrusted_ca_puts_the_missing_ca_first() -> None:
    """A leaf issued by a CA that is no intermediate (no AIA, not named so): the likelier cause
    is a CA the client was not given, and the message says so first."""
    report = _probe(CertificateAuthority.create("Acme Corp Root CA").issue_server(HOSTS),
                    with_chain=False)
    assert report.failure_class == MISSING_INTERMEDIATE
    cause, fix = explain(report)
    assert "Either (1) the certificate comes from Acme Corp Root CA, a CA the client was not " \
           "given" in cause
    assert fix.startswith("if (1): give the client Acme Corp Root CA's CA certificate")
