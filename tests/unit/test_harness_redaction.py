"""The harness's redactor: secrets masked by pattern and by value; ordinary text never rewritten,
even with a one-letter or dictionary-word password."""

from __future__ import annotations

import pytest

from dtr_cache_check.probes.redaction import MASK, Redactor

ORDINARY = ("[client->DTR] cannot connect to https://dtr.example:443: connection refused. "
            "Fix: check the address. test_expired_copy_is_fetched_again; the password field; "
            "consequence of test_4_cache_serves_each_blob_without_authorization: the cache's "
            "certificate; "
            "Basic authentication is off; --dtr-password-file")


@pytest.mark.parametrize("password", ["x", "e", "ab", "password", "admin", "docker"])
def test_weak_password_never_rewrites_ordinary_text_but_warns(password):
    redactor = Redactor()
    redactor.add_secret(password, "the password of alice")
    assert redactor(ORDINARY) == ORDINARY
    assert redactor.warnings and "the password of alice" in redactor.warnings[0]


def test_weak_password_in_its_contexts_is_masked():
    redactor = Redactor()
    redactor.add_secret("x", "the password of alice")
    assert redactor("https://alice:x@dtr:443/v2/") == f"https://alice:{MASK}@dtr:443/v2/"
    assert redactor('{"password": "x"}') == f'{{"password": "{MASK}"}}'
    assert redactor("user=alice&password=x") == f"user=alice&password={MASK}"
    assert redactor("Authorization:\tBasic eDp4") == f"Authorization:\t{MASK}"


def test_strong_values_are_masked_wherever_they_stand():
    secret = "Zq8-kP3vR7tW2yX5"
    redactor = Redactor()
    redactor.add_secret(secret, "the password of admin")
    assert redactor.warnings == []
    assert redactor(f"login failed for {secret}.") == f"login failed for {MASK}."
    assert redactor(f"a&amp;{secret.replace('-', '-')}") == f"a&amp;{MASK}"
    assert redactor.leaks(f"x {secret}") == ["a secret of 16 characters"]


def test_patterns_tokens_jwts_and_keys():
    redactor = Redactor()
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQ"
    text = (f"GET https://cache:443/v2/a/blobs/sha256:ab?dtr_cache_token={jwt}&x=1 "
            "https://s3/x?X-Amz-Signature=abcdef0123&X-Amz-Date=1 "
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY----- "
            "Bearer abc.DEF-123_456 Authorization: Negotiate YIIBhgYGKwYBBQUCoIIBejCCAX")
    out = redactor(text)
    assert "eyJ" not in out and "abcdef0123" not in out and "MHcCAQEE" not in out
    assert "abc.DEF-123_456" not in out and "YIIBhgYG" not in out
    assert "X-Amz-Date=1" in out and "&x=1" in out
    assert redactor.leaks(text) == ["a PEM private key", "a JWT"]
    assert redactor.leaks(out) == []


def test_an_observed_token_parameter_is_masked_percent_encoded_too():
    redactor = Redactor()
    redactor.add_token_param("sig_v2")
    assert redactor("/v2/a?sig_v2=Zm9vYmFy&b=1") == f"/v2/a?sig_v2={MASK}&b=1"
    assert redactor("url%3Fsig_v2%3DZm9vYmFy") == f"url%3Fsig_v2%3D{MASK}"
