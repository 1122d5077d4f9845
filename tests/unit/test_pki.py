"""dtr_cache_check.pki: chains verify where they should and every broken variant fails as
expected."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from dtr_cache_check.pki import (
    CLOCK_SKEW,
    CertificateAuthority,
    Issued,
    fingerprint_sha256,
    key_matches,
    server_context,
    trust_context,
    unverified_chain,
    verify_server_chain,
    write_seed_certs,
)

E = TypeVar("E", bound=x509.ExtensionType)
HOSTS = ["localhost", "127.0.0.1", "cache.example"]


class Pki(NamedTuple):
    root: CertificateAuthority
    inter: CertificateAuthority
    leaf: Issued


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = CertificateAuthority.create("DTR Cache Test Root CA")
    inter = root.intermediate("DTR Cache Test Intermediate CA")
    return Pki(root, inter, inter.issue_server(HOSTS))


def _verify(root: CertificateAuthority, leaf: x509.Certificate,
            intermediates: list[x509.Certificate], host: str) -> list[x509.Certificate]:
    verifier = PolicyBuilder().store(Store([root.cert])).build_server_verifier(x509.DNSName(host))
    return verifier.verify(leaf, intermediates)


def _ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


# --- cryptography's verifier ---------------------------------------------------------------


def test_good_chain_verifies(pki: Pki) -> None:
    path = _verify(pki.root, pki.leaf.cert, [pki.inter.cert], "cache.example")
    assert path == [pki.leaf.cert, pki.inter.cert, pki.root.cert]
    assert verify_server_chain(pki.leaf.chain, [pki.root.cert], "127.0.0.1")[-1] == pki.root.cert


def test_extensions_and_layout(pki: Pki) -> None:
    leaf, inter, root = pki.leaf.cert, pki.inter.cert, pki.root.cert
    assert pki.leaf.chain == [leaf, inter] and pki.leaf.intermediates == [inter]
    assert pki.inter.chain == [inter] and pki.root.chain == [] and pki.inter.root is pki.root
    for ca, path_length in ((root, None), (inter, 0)):
        bc, ku = _ext(ca, x509.BasicConstraints), _ext(ca, x509.KeyUsage)
        assert bc.critical and bc.value.ca and bc.value.path_length == path_length
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        assert ca.not_valid_after_utc - ca.not_valid_before_utc >= timedelta(days=3650)
    for cert, issuer in ((leaf, inter), (inter, root)):
        aki = _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier
        assert aki == _ext(issuer, x509.SubjectKeyIdentifier).value.digest
    bc, ku = _ext(leaf, x509.BasicConstraints), _ext(leaf, x509.KeyUsage)
    assert bc.critical and not bc.value.ca
    assert ku.critical and ku.value.digital_signature and not ku.value.key_encipherment
    eku = _ext(leaf, x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    san = _ext(leaf, x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost", "cache.example"]
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert isinstance(pki.leaf.key, ec.EllipticCurvePrivateKey)
    assert len({leaf.serial_number, inter.serial_number, root.serial_number}) == 3
    skew = datetime.now(UTC) - leaf.not_valid_before_utc
    assert CLOCK_SKEW - timedelta(seconds=30) < skew <= CLOCK_SKEW + timedelta(seconds=30)
    assert pki.leaf.chain_pem == pki.leaf.cert_pem + pki.inter.cert_pem


def test_missing_intermediate_fails(pki: Pki) -> None:
    with pytest.raises(VerificationError, match="candidates exhausted"):
        _verify(pki.root, pki.leaf.cert, [], "localhost")


def test_wrong_host_fails(pki: Pki) -> None:
    with pytest.raises(VerificationError, match="subjectAltName"):
        _verify(pki.root, pki.leaf.cert, [pki.inter.cert], "other.example")


@pytest.mark.parametrize("window", ["expired", "not_yet_valid"])
def test_validity_window_fails(pki: Pki, window: str) -> None:
    now = datetime.now(UTC)
    if window == "expired":
        leaf = pki.inter.issue_server(HOSTS, not_after=now - timedelta(days=1))
        assert leaf.cert.not_valid_after_utc < now
    else:
        leaf = pki.inter.issue_server(HOSTS, not_before=now + timedelta(days=1))
        assert leaf.cert.not_valid_before_utc > now
    with pytest.raises(VerificationError, match="not valid at validation time"):
        _verify(pki.root, leaf.cert, [pki.inter.cert], "localhost")


def test_weak_rsa_key(pki: Pki) -> None:
    weak = pki.inter.issue_server(HOSTS, key_type="rsa", key_size=1024)
    assert isinstance(weak.key, rsa.RSAPrivateKey) and weak.key.key_size == 1024
    assert weak.cert.public_key().key_size == 1024  # type: ignore[union-attr]
    assert _ext(weak.cert, x509.KeyUsage).value.key_encipherment
    _verify(pki.root, weak.cert, [pki.inter.cert], "localhost")  # cryptography does not object


def test_other_key_does_not_match(pki: Pki) -> None:
    other = pki.leaf.with_other_key()
    assert other.cert == pki.leaf.cert and other.chain == pki.leaf.chain
    assert key_matches(pki.leaf.cert, pki.leaf.key)
    assert not key_matches(other.cert, other.key)
    with pytest.raises(ssl.SSLError):
        server_context(other)


def test_fingerprint(pki: Pki) -> None:
    fp = fingerprint_sha256(pki.leaf.cert)
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fp)
    assert fingerprint_sha256(pki.leaf.cert_pem) == fp


# --- files ---------------------------------------------------------------------------------


def test_encrypted_key_needs_password(pki: Pki, tmp_path: Path) -> None:
    cert_file, key_file = pki.leaf.write(tmp_path / "c.pem", tmp_path / "k.pem",
                                         key_password=b"s3cret")
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    with pytest.raises(TypeError):
        load_pem_private_key(key_file.read_bytes(), password=None)
    key = load_pem_private_key(key_file.read_bytes(), password=b"s3cret")
    assert key_matches(pki.leaf.cert, key)  # type: ignore[arg-type]
    assert len(x509.load_pem_x509_certificates(cert_file.read_bytes())) == 2


def test_write_seed_certs_layout(pki: Pki, tmp_path: Path) -> None:
    dtr_ca = CertificateAuthority.create("DTR CA")
    files = write_seed_certs(tmp_path / "certs", pki.leaf, dtr_ca)
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == [
        "cache.cert.pem", "cache.key.pem", "dtr.cert.pem"]
    assert files["cache.cert.pem"] == tmp_path / "certs" / "cache.cert.pem"
    assert x509.load_pem_x509_certificates(files["cache.cert.pem"].read_bytes()) == [
        pki.leaf.cert, pki.inter.cert]
    assert files["cache.key.pem"].stat().st_mode & 0o777 == 0o600
    key = load_pem_private_key(files["cache.key.pem"].read_bytes(), password=None)
    assert key_matches(pki.leaf.cert, key)  # type: ignore[arg-type]
    assert x509.load_pem_x509_certificate(files["dtr.cert.pem"].read_bytes()) == dtr_ca.cert
    bare = write_seed_certs(tmp_path / "bare", pki.leaf, dtr_ca, with_chain=False)
    assert len(x509.load_pem_x509_certificates(bare["cache.cert.pem"].read_bytes())) == 1


# --- real TLS on 127.0.0.1 -----------------------------------------------------------------


class Seen(NamedTuple):
    chain: list[x509.Certificate]
    peer: x509.Certificate


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> Seen:
    """Serve one TLS connection on 127.0.0.1 in a thread; connect as ``hostname``."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                conn.settimeout(5)
                with server.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except OSError:  # the client refused the certificate: its side is what we test
                pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            port = listener.getsockname()[1]
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                    client.wrap_socket(raw, server_hostname=hostname) as tls:
                assert tls.recv(2) == b"ok"
                der = tls.getpeercert(binary_form=True)
                assert der is not None
                return Seen(unverified_chain(tls), x509.load_der_x509_certificate(der))
        finally:
            thread.join(5)


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_tls_good_chain(pki: Pki, hostname: str) -> None:
    client = trust_context(pki.root.cert_pem)
    assert client.check_hostname and client.minimum_version == ssl.TLSVersion.TLSv1_2
    seen = _handshake(server_context(pki.leaf), client, hostname)
    assert seen.peer == pki.leaf.cert
    assert [fingerprint_sha256(c) for c in seen.chain] == [
        fingerprint_sha256(pki.leaf.cert), fingerprint_sha256(pki.inter.cert)]


def test_trust_context_accepts_path(pki: Pki, tmp_path: Path) -> None:
    client = trust_context(pki.root.write_cert(tmp_path / "ca.pem"))
    assert _handshake(server_context(pki.leaf), client, "localhost").peer == pki.leaf.cert


def _refused(pki: Pki, issued: Issued, hostname: str = "localhost", *,
             with_chain: bool = True) -> ssl.SSLCertVerificationError:
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        _handshake(server_context(issued, with_chain=with_chain), trust_context(pki.root),
                   hostname)
    return info.value


def test_tls_missing_intermediate(pki: Pki) -> None:
    assert _refused(pki, pki.leaf, with_chain=False).verify_code == 20


def test_tls_hostname_mismatch(pki: Pki) -> None:
    assert _refused(pki, pki.leaf, "other.example").verify_code == 62


def test_tls_expired_and_self_signed(pki: Pki) -> None:
    expired = pki.inter.issue_server(HOSTS, not_after=datetime.now(UTC) - timedelta(days=1))
    assert _refused(pki, expired).verify_code == 10
    assert _refused(pki, CertificateAuthority.self_signed_server(HOSTS)).verify_code == 18


def test_tls_weak_key_is_served_and_refused(pki: Pki) -> None:
    weak = pki.inter.issue_server(HOSTS, key_type="rsa", key_size=1024)
    assert _refused(pki, weak).verify_code == 66  # X509_V_ERR_EE_KEY_TOO_SMALL
