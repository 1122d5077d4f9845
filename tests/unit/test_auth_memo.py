"""A verified token is remembered, never beyond what verifying it again would say: an expired
one and one whose key was withdrawn are refused though they verified before."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import pytest

from cache_under_test import auth as auth_module
from cache_under_test.auth import Authorizer
from cache_under_test.blobtoken import SigningKey, TokenError, jwks

DIGEST = "sha256:" + "e" * 64


def authorizer(*keys: SigningKey) -> Authorizer:
    made = Authorizer(SimpleNamespace(token_verifier=None))
    made.keys.update(jwks(*keys))
    return made


def verify(made: Authorizer, token: str):
    return asyncio.run(made.verify_token(token, "alice/app", DIGEST))


def test_a_remembered_token_still_expires(monkeypatch):
    key = SigningKey.generate("k1")
    made = authorizer(key)
    token = key.sign(user="alice", repository="alice/app", digest=DIGEST, ttl=30)
    assert verify(made, token).user == "alice"
    assert verify(made, token).user == "alice"  # remembered
    later = time.time() + 30 + made.leeway + 1
    monkeypatch.setattr(auth_module.time, "time", lambda: later)
    with pytest.raises(TokenError, match="expired"):
        verify(made, token)


def test_a_remembered_token_of_a_withdrawn_key_is_refused(monkeypatch):
    old, new = SigningKey.generate("k1"), SigningKey.generate("k1")  # replaced under its id
    made = authorizer(old)
    token = old.sign(user="alice", repository="alice/app", digest=DIGEST)
    assert verify(made, token).user == "alice"

    async def fetched_new_keys(*args, **kwargs):
        return SimpleNamespace(upstream="https://dtr.test", release=lambda: None,
                               response=SimpleNamespace(status=200, read=_body(new)))

    made.pool.request = fetched_new_keys
    assert asyncio.run(made.refresh_keys(force=True))
    with pytest.raises(TokenError):
        verify(made, token)
    assert verify(made, new.sign(user="alice", repository="alice/app", digest=DIGEST)).user \
        == "alice"


def test_a_remembered_token_is_for_its_repository_and_digest_only():
    key = SigningKey.generate("k1")
    made = authorizer(key)
    token = key.sign(user="alice", repository="alice/app", digest=DIGEST)
    assert verify(made, token).user == "alice"
    with pytest.raises(TokenError):
        asyncio.run(made.verify_token(token, "alice/other", DIGEST))
    with pytest.raises(TokenError):
        asyncio.run(made.verify_token(token, "alice/app", "sha256:" + "f" * 64))


def _body(key: SigningKey):
    async def read() -> bytes:
        return json.dumps(jwks(key)).encode()

    return read
