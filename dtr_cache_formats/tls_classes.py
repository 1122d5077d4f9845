"""Names for TLS and connection failures, the words an operator searches for.

OpenSSL's X509_V_ERR_* codes map to a few classes. Each side names the exceptions it meets with
its own code (the cache: ``cache_under_test.tls.classify``; the harness: ``probes.tlsfailure``).
"""

from __future__ import annotations

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

