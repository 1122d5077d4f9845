"""Log lines are JSON and never carry a secret."""

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from cache_under_test.blobtoken import TOKEN_PARAM, SigningKey
from cache_under_test.events import _SECRET_TEXT, emit, redact, setup_logging


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
             "-----END EC PRIVATE KEY-----", "private key", "x9_-"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=6), max_size=12).map("".join))
def test_the_fast_path_never_skips_a_secret(text):
    rewritten = text
    for pattern, replacement in _SECRET_TEXT:
        rewritten = pattern.sub(replacement, rewritten)
    assert redact(text) == rewritten
