"""TLS contexts for both sides of the cache. Failure names (``classify``) are the neutral
``dtr_cache_formats.tls_classes``, shared with the harness."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from pathlib import Path

from dtr_cache_formats.tls_classes import classify as classify  # re-exported


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
