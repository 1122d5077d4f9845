"""The signed blob token: only a fresh, untampered token for this repo and digest passes."""

import time

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cache_under_test.blobtoken import (
    ALGORITHM,
    AUDIENCE,
    LEEWAY,
    ClockSkew,
    KeySet,
    SigningKey,
    TokenError,
    TokenMismatch,
    UnknownKey,
    jwks,
)

DIGEST = "sha256:" + "c" * 64


@pytest.fixture(scope="module")
def key():
    return SigningKey.generate("k1")


def sign(key, **kw):
    args = {"user": "alice", "repository": "alice/app", "digest": DIGEST, **kw}
    return key.sign(**args)


def test_good_token(key):
    grant = KeySet(jwks(key)).verify(sign(key), repository="alice/app", digest=DIGEST)
    assert (grant.user, grant.key_id) == ("alice", "k1")


def test_tampered_payload(key):
    token = sign(key)
    header, _payload, signature = token.split(".")
    other = sign(key, repository="bob/app").split(".")[1]
    with pytest.raises(TokenError) as info:
        KeySet(jwks(key)).verify(f"{header}.{other}.{signature}", repository="bob/app",
                                 digest=DIGEST)
    assert info.value.status == 401


def test_tampered_signature(key):
    token = sign(key)
    flipped = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(TokenError):
        KeySet(jwks(key)).verify(flipped, repository="alice/app", digest=DIGEST)


def test_expired(key):
    token = sign(key, ttl=60, now=time.time() - 3600)
    with pytest.raises(TokenError, match="expired"):
        KeySet(jwks(key)).verify(token, repository="alice/app", digest=DIGEST)


def test_wrong_repository_and_digest_are_403(key):
    keys = KeySet(jwks(key))
    with pytest.raises(TokenMismatch) as info:
        keys.verify(sign(key), repository="alice/other", digest=DIGEST)
    assert info.value.status == 403
    with pytest.raises(TokenMismatch):
        keys.verify(sign(key), repository="alice/app", digest="sha256:" + "d" * 64)


def test_unknown_key(key):
    other = SigningKey.generate("k2")
    with pytest.raises(UnknownKey):
        KeySet(jwks(key)).verify(sign(other), repository="alice/app", digest=DIGEST)


def test_same_kid_other_key_is_rejected(key):
    impostor = SigningKey.generate("k1")
    with pytest.raises(TokenError):
        KeySet(jwks(key)).verify(sign(impostor), repository="alice/app", digest=DIGEST)


def test_algorithm_none_and_hs256_are_refused(key):
    claims = {"sub": "alice", "repo": "alice/app", "digest": DIGEST, "aud": "dtr-content-cache",
              "exp": int(time.time()) + 60}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(TokenError):
        KeySet(jwks(key)).verify(unsigned, repository="alice/app", digest=DIGEST)
    hs = jwt.encode(claims, "secret-secret-secret-secret-32b!", algorithm="HS256",
                    headers={"kid": "k1"})
    with pytest.raises(TokenError):
        KeySet(jwks(key)).verify(hs, repository="alice/app", digest=DIGEST)


def test_garbage(key):
    with pytest.raises(TokenError):
        KeySet(jwks(key)).verify("not-a-jwt", repository="alice/app", digest=DIGEST)


def test_private_key_round_trip(key):
    again = SigningKey.from_pem(key.private_pem(), "k1")
    KeySet(jwks(key)).verify(sign(again), repository="alice/app", digest=DIGEST)


# -- the cache's own verifier never accepts what PyJWT's jwt.decode rejects --------------------

def pyjwt_accepts(token: str, key: SigningKey) -> bool:
    try:
        jwt.decode(token, key.private_key.public_key(), algorithms=[ALGORITHM],
                   audience=AUDIENCE, leeway=LEEWAY,
                   options={"require": ["exp", "iat", "sub", "aud"]})
        return True
    except jwt.PyJWTError:
        return False


def ours_accepts(token: str, key: SigningKey) -> bool:
    try:
        KeySet(jwks(key)).verify(token, repository="alice/app", digest=DIGEST)
        return True
    except TokenError:
        return False


def raw_token(key: SigningKey, claims: dict, header: dict | None = None) -> str:
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM,
                      headers={"kid": key.key_id, **(header or {})})


NOW = int(time.time())
BASE = {"sub": "alice", "repo": "alice/app", "digest": DIGEST, "aud": AUDIENCE,
        "iat": NOW, "exp": NOW + 300}
CLAIM_CASES = {
    "good": {},
    "audience in a list": {"aud": ["other", AUDIENCE]},
    "expired within the leeway": {"exp": NOW - LEEWAY // 2},
    "expired": {"exp": NOW - 2 * LEEWAY},
    "other audience": {"aud": "registry"},
    "no audience": {"aud": None},
    "no subject": {"sub": None},
    "subject not a string": {"sub": 7},
    "no expiry": {"exp": None},
    "expiry not a number": {"exp": "tomorrow"},
    "not valid before later": {"nbf": NOW + 2 * LEEWAY},
    "issued in the future": {"iat": NOW + 2 * LEEWAY},
    "issued in the future within the leeway": {"iat": NOW + LEEWAY // 2},
    "no issue time": {"iat": None},
}


@pytest.mark.parametrize("case", CLAIM_CASES)
def test_claims_verdicts_match_pyjwt(key, case):
    claims = {k: v for k, v in {**BASE, **CLAIM_CASES[case]}.items() if v is not None}
    token = raw_token(key, claims)
    assert ours_accepts(token, key) == pyjwt_accepts(token, key), case


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_token_is_never_accepted_when_pyjwt_rejects_it(key, data):
    token = sign(key)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from(
        "AQgw_-.=+/ " + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    cut = data.draw(st.booleans())
    mutated = token[:position] + ("" if cut else replacement) + token[position + 1:]
    if ours_accepts(mutated, key):
        assert pyjwt_accepts(mutated, key), mutated


def test_leeway_and_lifetime_are_the_callers(key):
    keys = KeySet(jwks(key))
    now = time.time()
    day = sign(key, ttl=86400)
    with pytest.raises(TokenError, match="lifetime"):
        keys.verify(day, repository="alice/app", digest=DIGEST)
    assert keys.verify(day, repository="alice/app", digest=DIGEST, max_lifetime=86400).user \
        == "alice"
    ahead = sign(key, now=now + 90)
    with pytest.raises(ClockSkew) as info:
        keys.verify(ahead, repository="alice/app", digest=DIGEST)
    assert 85 <= info.value.skew <= 95
    grant = keys.verify(ahead, repository="alice/app", digest=DIGEST, leeway=120)
    assert 85 <= grant.issued_at - now <= 95
