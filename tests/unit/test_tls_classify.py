"""The cache's own names for the TLS failures it meets (``cache_under_test.tls.classify``):
aiohttp's wrappers unwrapped to OpenSSL's verify code, as ``upstream.error`` lines say them."""

from __future__ import annotations

import socket
import ssl

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

import dtr_cache_formats.tls_classes as neutral
from cache_under_test.tls import classify


def _verify_error(code: int) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_code, exc.verify_message = code, "verify failed"
    return exc


def _key() -> ConnectionKey:
    return ConnectionKey("dtr", 443, True, True, None, None, None)


@pytest.mark.parametrize(("exc", "expected"), [
    (_verify_error(20), neutral.UNKNOWN_AUTHORITY),
    (_verify_error(10), neutral.EXPIRED),
    (_verify_error(62), neutral.HOSTNAME_MISMATCH),
    (ConnectionRefusedError(111, "refused"), neutral.CONNECTION_REFUSED),
    (socket.gaierror(-2, "Name or service not known"), neutral.NAME_RESOLUTION),
    (TimeoutError(), neutral.TIMEOUT),
    (ValueError("nothing we know"), neutral.CONNECTION_FAILED),
])
def test_a_failure_gets_the_neutral_class(exc, expected):
    assert classify(exc) == expected


def test_aiohttps_certificate_wrapper_is_unwrapped_to_the_verify_code():
    wrapped = aiohttp.ClientConnectorCertificateError(_key(), _verify_error(10))
    assert classify(wrapped) == neutral.EXPIRED


def test_a_cause_chain_is_followed():
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as inner:
            raise RuntimeError("upstream failed") from inner
    except RuntimeError as outer:
        assert classify(outer) == neutral.CONNECTION_REFUSED


def test_the_neutral_module_holds_names_only():
    assert not hasattr(neutral, "classify")
