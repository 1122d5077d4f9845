"""Log lines are JSON and never carry a secret."""

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cache_under_test.blobtoken import TOKEN_PARAM, SigningKey
from cache_under_test.events import (
    _MAYBE_SECRET,
    _SCREEN,
    _SECRET_TEXT,
    _maybe_secret,
    emit,
    redact,
    setup_logging,
)


def test_json_line_with_redaction():
    stream = io.StringIO()
    setup_logging("INFO", stream)
    token = SigningKey.generate().sign(user="u", repository="r", digest="sha256:" + "0" * 64)
    emit("upstream.error", url=f"https://c/v2/r/blobs/x?{TOKEN_PARAM}={token}&a=1",
         authorization="Bearer abc.def.ghi", password="hunter2",
         detail=f"failed with Basic dXNlcjpwYXNz and {token}")
    line = json.loads(stream.getvalue().strip())
    text = stream.getvalue()
    assert line["event"] == "upstream.error"
    assert token not in text and "hunter2" not in text and "dXNlcjpwYXNz" not in text
    assert f"{TOKEN_PARAM}=REDACTED&a=1" in line["url"]


def test_debug_is_dropped_at_info():
    stream = io.StringIO()
    setup_logging("INFO", stream)
    import logging

    emit("noise", logging.DEBUG)
    assert stream.getvalue() == ""


def test_private_key_pem_is_masked():
    pem = SigningKey.generate().private_pem().decode()
    assert "PRIVATE KEY-----" not in redact(f"oops {pem}").replace("[REDACTED PRIVATE KEY]", "")


FRAGMENTS = ["dtr_cache_token=", "DTR_CACHE_TOKEN=", "Bearer ", "basic ", "eyJ", "abcdefghij",
             ".", "&", " ", "\n", "-----BEGIN EC PRIVATE KEY-----",
             "-----END EC PRIVATE KEY-----", "private key", "x9_-",
             "dtr%5Fcache%5Ftoken", "%3D", "%3d", "Authorization:", "\\t", "\t", "'",
             "Token ", "Negotiate ", "abcdefghijklmnop", "https://", "user:pw@", "@", "%"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=12).map("".join))
def test_the_fast_path_never_skips_a_secret(text):
    rewritten = text
    for pattern, replacement in _SECRET_TEXT:
        rewritten = pattern.sub(replacement, rewritten)
    assert redact(text) == rewritten


WORDS = [w for word in _SCREEN for w in (word, word.upper(), word.title(), word[::-1])]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from([*WORDS, "\u017f", "\u212a", "\u0130", "\u0131", "sha256:"])
                | st.text(max_size=5), max_size=8).map("".join))
def test_the_screen_is_the_case_insensitive_search(text):
    # ASCII text is screened on its lowercase (the per-line fast path), the rest by the regex.
    assert _maybe_secret(text) == (_MAYBE_SECRET.search(text) is not None)


# -- what aiohttp's parser errors quote: raw request lines and headers ------------------------

SECRET = "S3cretValue0123456789abcdef"


@pytest.mark.parametrize("text", [
    f"GET /v2/r/blobs/x?dtr_cache_token%3D{SECRET}\\x01 HTTP/1.1",
    f"GET /v2/r/blobs/x%3Fdtr%5Fcache%5Ftoken%3D{SECRET} HTTP/1.1x",
    f"GET /x?%64TR%5fcache_token%253D{SECRET}&a=1",
    f"b'Authorization:\\t{SECRET}\\x01'",
    f"b'authorization:\\tBearer\\t{SECRET}\\x01'",
    f"Proxy-Authorization: Digest username=\"u\", response=\"{SECRET}\"",
    f"b'Token {SECRET * 3}...'",
    f"b'Negotiate {SECRET * 3}...'",
    f"GET https://alice:{SECRET}@cache/v2/ HTTP/1.1",
    f"http%3A%2F%2Falice:{SECRET}@cache/",
    f"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ{SECRET}",  # a JWT cut short
    f"Cookie: session={SECRET}",
])
def test_secrets_in_raw_request_text_are_masked(text):
    assert SECRET not in redact(text), redact(text)


@pytest.mark.parametrize("text", [
    "token expired", "token signature or claims invalid", "token is for another digest",
    "https://dtr.example.com:443/v2/team/app/blobs/sha256:" + "a" * 64,
    "team/app@sha256:" + "b" * 64, "no Authorization header",
])
def test_ordinary_words_stay(text):
    assert redact(text) == text


def test_every_record_goes_through_the_redactor():
    """Other libraries' loggers, exception text, and values JSON cannot hold as text."""
    import logging
    from pathlib import PurePosixPath

    stream = io.StringIO()
    setup_logging("INFO", stream)
    try:
        raise ValueError(f"bad request line b'GET /x?dtr_cache_token%3D{SECRET} HTTP/1.1'")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "1.2.3.4")
    logging.getLogger("some.library").warning("fetching https://u:%s@h/", SECRET)
    emit("upstream.error", url=PurePosixPath(f"/x?dtr_cache_token={SECRET}"))
    text = stream.getvalue()
    assert len(text.splitlines()) == 3 and SECRET not in text, text
    assert all(json.loads(line) for line in text.splitlines())
