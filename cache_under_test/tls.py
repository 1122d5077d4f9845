"""TLS contexts for both sides of the cache, and ``classify``: the cache's names for the TLS and
connection failures it meets (the neutral ``dtr_cache_formats.tls_classes`` names, which the
harness's checks search for)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from pathlib import Path

from dtr_cache_formats.tls_classes import (
    CONNECTION_FAILED,
    CONNECTION_REFUSED,
    NAME_RESOLUTION,
    TIMEOUT,
    VERIFY_CLASSES,
)


def server_context(certificate: Path, key: Path,
                   test_faults: frozenset[str] = frozenset()) -> ssl.SSLContext:
    """The cache's listening context: the certificate file may hold leaf + intermediates.
    ``test_faults`` (TEST-ONLY, see faults.py) may make it legacy on purpose."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if test_faults & {"tls-1.1-only", "allow-weak-key"}:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses both at its default level
    if "tls-1.1-only" in test_faults:
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
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
    """A short failure class for a TLS or connection error from ``ssl``, ``socket`` or
    aiohttp (an upstream's, in ``upstream.error`` lines)."""
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
            return CONNECTION_REFUSED
        if isinstance(exc, socket.gaierror):
            return NAME_RESOLUTION
        if isinstance(exc, TimeoutError):
            return TIMEOUT
        exc = exc.__cause__ or exc.__context__
    return CONNECTION_FAILED
