"""TLS contexts for both sides of the cache, and names for certificate failures.

``classify`` turns an ``ssl`` verification failure into the words an operator searches for
(unknown authority, hostname mismatch, expired...). The harness uses the same names.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from pathlib import Path

# OpenSSL X509_V_ERR_* codes -> the class an operator recognises.
VERIFY_CLASSES = {
    2: "unknown authority",   # unable to get issuer certificate
    9: "not yet valid",
    10: "expired",
    18: "self-signed",        # self-signed leaf
    19: "unknown authority",  # self-signed certificate in chain (a root we do not trust)
    20: "unknown authority",  # unable to get local issuer (unknown CA or missing intermediate)
    21: "unknown authority",  # unable to verify the first certificate
    62: "hostname mismatch",
    64: "hostname mismatch",  # IP address mismatch
    66: "weak key",           # EE certificate key too weak
    67: "weak key",           # CA certificate key too weak
}


def server_context(certificate: Path, key: Path) -> ssl.SSLContext:
    """The cache's listening context: the certificate file may hold leaf + intermediates."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(certificate), str(key))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client_context(cas: Iterable[Path] = ()) -> ssl.SSLContext:
    """Trusts the system roots plus ``cas`` (the seed's ``cas`` option); TLS 1.2 at least."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for ca in cas:
        ctx.load_verify_locations(cafile=str(ca))
    return ctx


def classify(exc: BaseException) -> str:
    """A short failure class for a TLS or connection error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        # aiohttp's wrappers subclass ssl's errors without their fields: unwrap them first.
        inner = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None)
        if isinstance(inner, BaseException) and inner is not exc:
            exc = inner
            continue
        if isinstance(exc, ssl.SSLCertVerificationError):
            code = getattr(exc, "verify_code", None)
            fallback = f"certificate rejected ({getattr(exc, 'verify_message', exc)})"
            return VERIFY_CLASSES.get(code, fallback)
        if isinstance(exc, ssl.SSLError):
            return f"tls handshake ({exc.reason or exc.strerror or exc})".lower()
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused"
        if isinstance(exc, socket.gaierror):
            return "name resolution"
        if isinstance(exc, TimeoutError):
            return "timeout"
        exc = exc.__cause__ or exc.__context__
    return "connection failed"
