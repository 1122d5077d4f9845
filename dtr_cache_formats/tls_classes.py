"""Names for TLS and connection failures, the words an operator searches for.

OpenSSL's X509_V_ERR_* codes map to a few classes; ``classify`` names any exception raised by
``ssl``, ``socket``, httpx or aiohttp the same way on both sides of a hop.
"""

from __future__ import annotations

import socket
import ssl

UNKNOWN_AUTHORITY = "unknown authority"
HOSTNAME_MISMATCH = "hostname mismatch"
EXPIRED = "expired"
NOT_YET_VALID = "not yet valid"
SELF_SIGNED = "self-signed"
WEAK_KEY = "weak key"
MISSING_INTERMEDIATE = "missing intermediate"
CONNECTION_REFUSED = "connection refused"
NAME_RESOLUTION = "name resolution"
TIMEOUT = "timeout"
CONNECTION_FAILED = "connection failed"

# Certificate classes (what a TLS-error scan of a log looks for).
CERTIFICATE_CLASSES = (UNKNOWN_AUTHORITY, HOSTNAME_MISMATCH, EXPIRED, NOT_YET_VALID,
                       SELF_SIGNED, WEAK_KEY, MISSING_INTERMEDIATE)

# OpenSSL X509_V_ERR_* codes -> the class an operator recognises.
VERIFY_CLASSES = {
    2: UNKNOWN_AUTHORITY,    # unable to get issuer certificate
    9: NOT_YET_VALID,
    10: EXPIRED,
    18: SELF_SIGNED,         # self-signed leaf
    19: UNKNOWN_AUTHORITY,   # self-signed certificate in chain (a root we do not trust)
    20: UNKNOWN_AUTHORITY,   # unable to get local issuer (unknown CA or missing intermediate)
    21: UNKNOWN_AUTHORITY,   # unable to verify the first certificate
    62: HOSTNAME_MISMATCH,
    64: HOSTNAME_MISMATCH,   # IP address mismatch
    66: WEAK_KEY,            # EE certificate key too weak
    67: WEAK_KEY,            # CA certificate key too weak
}


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
            return CONNECTION_REFUSED
        if isinstance(exc, socket.gaierror):
            return NAME_RESOLUTION
        if isinstance(exc, TimeoutError):
            return TIMEOUT
        exc = exc.__cause__ or exc.__context__
    return CONNECTION_FAILED
