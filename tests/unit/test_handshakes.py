"""Refused TLS handshakes (``cache_under_test.handshakes``): Go's words for OpenSSL's failures,
Go's address format, and the per-address bound on how many lines a flood writes."""

from __future__ import annotations

import ssl

import pytest

from cache_under_test import handshakes
from cache_under_test.golog import address


def _ssl_error(reason: str) -> ssl.SSLError:
    exc = ssl.SSLError(1, f"[SSL: {reason}] ...")
    exc.reason = reason
    return exc


@pytest.mark.parametrize(("reason", "words"), [
    ("WRONG_VERSION_NUMBER", "tls: first record does not look like a TLS handshake"),
    ("HTTP_REQUEST", "client sent an HTTP request to an HTTPS server"),
    ("TLSV1_ALERT_UNKNOWN_CA", "remote error: tls: unknown certificate authority"),
    ("SSLV3_ALERT_BAD_CERTIFICATE", "remote error: tls: bad certificate"),
    ("SSLV3_ALERT_CERTIFICATE_EXPIRED", "remote error: tls: expired certificate"),
    ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "remote error: tls: certificate required"),
    ("NO_SHARED_CIPHER", "tls: no cipher suite supported by both client and server"),
    ("SOMETHING_NEW", "tls: something new"),
])
def test_openssls_reasons_in_gos_words(reason, words):
    assert handshakes.go_error(_ssl_error(reason), "10.0.0.1:443", "10.0.0.7:5") == words


def test_a_client_gone_and_a_timeout_in_gos_words():
    local, remote = "10.0.0.1:443", "10.0.0.7:5"
    assert handshakes.go_error(ConnectionResetError(), local, remote) == "EOF"
    assert handshakes.go_error(ConnectionResetError(104, "Connection reset by peer"), local,
                               remote) == ("read tcp 10.0.0.1:443->10.0.0.7:5: read: "
                                           "connection reset by peer")
    timeout = ConnectionAbortedError("SSL handshake is taking longer than 10 seconds")
    assert handshakes.go_error(timeout, local, remote) == \
        "read tcp 10.0.0.1:443->10.0.0.7:5: i/o timeout"


@pytest.mark.parametrize(("peer", "text"), [
    (("10.0.0.7", 51234), "10.0.0.7:51234"), (("fd00::9", 40113, 0, 0), "[fd00::9]:40113"),
    (("::ffff:10.0.0.7", 5, 0, 0), "10.0.0.7:5"),
])
def test_addresses_as_go_writes_them(peer, text):
    assert address(peer) == text


def test_a_flood_from_one_address_is_bounded_and_counted():
    buckets = handshakes._Buckets()
    written = [buckets.take("10.0.0.7", 100.0) for _ in range(handshakes.BURST + 5)]
    assert written[:handshakes.BURST] == [0] * handshakes.BURST
    assert written[handshakes.BURST:] == [None] * 5
    assert buckets.take("10.0.0.8", 100.0) == 0, "another address is not held back"
    # A second later one more line, saying how many were held back before it.
    assert buckets.take("10.0.0.7", 101.0) == 5
    assert buckets.take("10.0.0.7", 101.0) is None


def test_the_first_line_of_every_address_is_written_when_many_addresses_come():
    buckets = handshakes._Buckets()
    for n in range(handshakes.MAX_ADDRESSES + 10):
        assert buckets.take(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", 100.0) == 0
