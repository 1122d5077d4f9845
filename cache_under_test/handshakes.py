"""Refused TLS handshakes, logged: a client that distrusts the cache's certificate, or does not
speak TLS, is what an operator must see (asyncio's SSL protocol only debug-logs it).

The reference profile writes a ``tls.handshake_error`` event (``client``: the peer's
``ip:port`` as accepted; ``error``: Go's words for the failure; ``openssl``: OpenSSL's), the
distribution profile Go's own line (net/http/server.go, through the standard logger):
``2006/01/02 15:04:05 http: TLS handshake error from <ip:port>: <error>``. A flood from one
address is bounded (``BURST`` lines at once, then one a second, per server process); a
timed-out handshake is ``connection.timeout`` in the reference profile (``guard``).
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from typing import Any

from . import distlog
from .events import emit
from .golog import address

BURST = 10          # lines one address may have at once...
PER_SECOND = 1.0    # ...then this many a second
MAX_ADDRESSES = 4096  # addresses remembered; past it, the full buckets are forgotten

# crypto/tls's alert texts (alert.go), by the name OpenSSL gives the alert it received.
_ALERTS = {
    "CLOSE_NOTIFY": "close notify", "UNEXPECTED_MESSAGE": "unexpected message",
    "BAD_RECORD_MAC": "bad record MAC", "DECRYPTION_FAILED": "decryption failed",
    "RECORD_OVERFLOW": "record overflow", "DECOMPRESSION_FAILURE": "decompression failure",
    "HANDSHAKE_FAILURE": "handshake failure", "BAD_CERTIFICATE": "bad certificate",
    "UNSUPPORTED_CERTIFICATE": "unsupported certificate",
    "CERTIFICATE_REVOKED": "revoked certificate", "CERTIFICATE_EXPIRED": "expired certificate",
    "CERTIFICATE_UNKNOWN": "unknown certificate", "ILLEGAL_PARAMETER": "illegal parameter",
    "UNKNOWN_CA": "unknown certificate authority", "ACCESS_DENIED": "access denied",
    "DECODE_ERROR": "error decoding message", "DECRYPT_ERROR": "error decrypting message",
    "EXPORT_RESTRICTION": "export restriction",
    "PROTOCOL_VERSION": "protocol version not supported",
    "INSUFFICIENT_SECURITY": "insufficient security level", "INTERNAL_ERROR": "internal error",
    "INAPPROPRIATE_FALLBACK": "inappropriate fallback", "USER_CANCELLED": "user canceled",
    "NO_RENEGOTIATION": "no renegotiation", "MISSING_EXTENSION": "missing extension",
    "UNSUPPORTED_EXTENSION": "unsupported extension",
    "CERTIFICATE_UNOBTAINABLE": "certificate unobtainable",
    "UNRECOGNIZED_NAME": "unrecognized name",
    "BAD_CERTIFICATE_STATUS_RESPONSE": "bad certificate status response",
    "BAD_CERTIFICATE_HASH_VALUE": "bad certificate hash value",
    "UNKNOWN_PSK_IDENTITY": "unknown PSK identity",
    "CERTIFICATE_REQUIRED": "certificate required",
    "NO_APPLICATION_PROTOCOL": "no application protocol",
}
_ALERT = re.compile(r"^(?:SSLV3|TLSV1|TLSV13)_(?:ALERT_)?([A-Z_]+)$")
NOT_TLS = "tls: first record does not look like a TLS handshake"
# OpenSSL's reasons for a first record that is no TLS handshake record.
_NOT_TLS_REASONS = {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG",
                    "HTTPS_PROXY_REQUEST", "RECORD_LAYER_FAILURE", "UNEXPECTED_RECORD",
                    "RECORD_LENGTH_MISMATCH", "WRONG_VERSION"}
_OTHER_REASONS = {
    "HTTP_REQUEST": "client sent an HTTP request to an HTTPS server",
    "UNSUPPORTED_PROTOCOL": "tls: client offered only unsupported versions",
    "NO_SHARED_CIPHER": "tls: no cipher suite supported by both client and server",
    "NO_SUITABLE_SIGNATURE_ALGORITHM": "tls: no signature algorithm supported by both client "
                                       "and server",
}


def is_timeout(exc: BaseException) -> bool:
    """The handshake did not finish within the handshake timeout."""
    return isinstance(exc, TimeoutError) or "taking longer" in str(exc)


def go_error(exc: BaseException, local: str, remote: str) -> str:
    """What Go's crypto/tls and net say for the failure ``exc`` (ssl's, OpenSSL's words)."""
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or "")
        alert = _ALERT.match(reason)
        if alert and alert[1] in _ALERTS:
            return f"remote error: tls: {_ALERTS[alert[1]]}"
        if reason in _NOT_TLS_REASONS:
            return NOT_TLS
        if reason in _OTHER_REASONS:
            return _OTHER_REASONS[reason]
        if reason == "UNEXPECTED_EOF_WHILE_READING":
            return "EOF"
        return f"tls: {reason.lower().replace('_', ' ') or exc}"
    if is_timeout(exc):
        return f"read tcp {local}->{remote}: i/o timeout"
    if isinstance(exc, ConnectionResetError) and not exc.errno:
        return "EOF"  # the client closed before a full record (uvloop says it without errno)
    words = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).lower()
    return f"read tcp {local}->{remote}: read: {words}"


class _Buckets:
    """Per address: ``BURST`` lines, refilled at ``PER_SECOND``; what was held back, counted."""

    def __init__(self) -> None:
        self._by_address: dict[str, list[float]] = {}  # address: [tokens, at, held back]

    def take(self, host: str, now: float) -> int | None:
        """The number of lines held back before this one, or None to hold this one back."""
        bucket = self._by_address.get(host)
        if bucket is None:
            if len(self._by_address) >= MAX_ADDRESSES:
                self._forget_full(now)
            bucket = self._by_address[host] = [float(BURST), now, 0]
        bucket[0] = min(float(BURST), bucket[0] + (now - bucket[1]) * PER_SECOND)
        bucket[1] = now
        if bucket[0] < 1.0:
            bucket[2] += 1
            return None
        bucket[0] -= 1.0
        held, bucket[2] = int(bucket[2]), 0
        return held

    def _forget_full(self, now: float) -> None:
        for host, (tokens, at, held) in list(self._by_address.items()):
            if not held and tokens + (now - at) * PER_SECOND >= BURST:
                del self._by_address[host]
        if len(self._by_address) >= MAX_ADDRESSES:  # a flood from everywhere: start over
            self._by_address.clear()


_buckets = _Buckets()


def refused(peer: Any, local: Any, exc: BaseException) -> None:
    """Log the failed handshake of ``peer`` (accepted on ``local``) that raised ``exc``."""
    timeout = is_timeout(exc)
    writer = distlog.writer()
    if writer is None and timeout:
        return  # the reference profile's connection.timeout says it (guard)
    client = address(peer)
    held = _buckets.take(client.rsplit(":", 1)[0], time.monotonic())
    if held is None:
        return
    error = go_error(exc, address(local), client)
    if writer is not None:
        writer.go_line(f"http: TLS handshake error from {client}: {error}")
        return
    fields: dict[str, Any] = {"client": client, "error": error,
                              "openssl": re.sub(r" \(_ssl\.c:\d+\)$", "", str(exc)) or None}
    if held:
        fields["held_back"] = held  # lines this address had beyond the rate, not written
    emit("tls.handshake_error", logging.WARNING, **fields)
