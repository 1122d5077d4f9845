"""ECDSA malleability: (r, s) and (r, n - s) are both valid signatures of one token. The cache
accepts either spelling (PyJWT and cryptography sign without normalising s, so refusing the
high-s one would refuse about half of all honest tokens) and treats them as ONE token: the
same canonical spelling and the same ``token_id``."""

import base64
import hashlib
import time

import jwt
import pytest

from cache_under_test import blobtoken
from cache_under_test.blobtoken import ALGORITHM, KeySet, SigningKey, TokenError, jwks

DIGEST = "sha256:" + "e" * 64
# The order of the P-256 group (FIPS 186-4, D.1.2.3).
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture(scope="module")
def key():
    return SigningKey.generate("k1")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def split_signature(token: str) -> tuple[str, int, int]:
    signing_input, signature = token.rsplit(".", 1)
    raw = unb64(signature)
    assert len(raw) == 64
    return signing_input, int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def with_signature(signing_input: str, r: int, s: int) -> str:
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def other_spelling(token: str) -> str:
    """The same signature with s replaced by n - s: still valid for plain ECDSA."""
    signing_input, r, s = split_signature(token)
    return with_signature(signing_input, r, N - s)


def sign(key, **kw) -> str:
    return key.sign(**{"user": "alice", "repository": "alice/app", "digest": DIGEST, **kw})


def pyjwt_signed(key) -> str:
    """A token as a stand-in signing with PyJWT directly would issue it."""
    now = int(time.time())
    claims = {"sub": "alice", "repo": "alice/app", "digest": DIGEST,
              "aud": "dtr-content-cache", "iat": now, "exp": now + 300}
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.key_id})


def test_both_spellings_of_one_signature_are_one_token(key):
    keys = KeySet(jwks(key))
    for token in (sign(key), pyjwt_signed(key)):
        twin = other_spelling(token)
        assert twin != token
        first = keys.verify(token, repository="alice/app", digest=DIGEST)
        second = keys.verify(twin, repository="alice/app", digest=DIGEST)
        assert first.token_id and first.token_id == second.token_id
        assert blobtoken.canonical_token(token) == blobtoken.canonical_token(twin)
        _, _, s = split_signature(blobtoken.canonical_token(token))
        assert s <= N // 2  # the canonical spelling is the low-s one
        canonical = blobtoken.canonical_token(token).encode()
        assert first.token_id == hashlib.sha256(canonical).hexdigest()


def test_honest_tokens_verify_whichever_s_the_signer_produced(key):
    # About half of cryptography's (and PyJWT's) signatures are high-s: all must verify.
    keys = KeySet(jwks(key))
    seen_high = seen_low = False
    for _ in range(40):
        token = pyjwt_signed(key)
        _, _, s = split_signature(token)
        seen_high |= s > N // 2
        seen_low |= s <= N // 2
        keys.verify(token, repository="alice/app", digest=DIGEST)
        # and PyJWT agrees with us on both spellings
        jwt.decode(other_spelling(token), key.private_key.public_key(), algorithms=[ALGORITHM],
                   audience="dtr-content-cache")
    assert seen_high and seen_low


def test_different_tokens_have_different_ids(key):
    keys = KeySet(jwks(key))
    ids = {keys.verify(sign(key), repository="alice/app", digest=DIGEST).token_id
           for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize("bad", ["s=0", "s=n", "s=n+1", "r=0", "r=n", "s=s+1"])
def test_out_of_range_or_altered_signatures_are_refused(key, bad):
    signing_input, r, s = split_signature(sign(key))
    r, s = {"s=0": (r, 0), "s=n": (r, N), "s=n+1": (r, N + 1), "r=0": (0, s), "r=n": (N, s),
            "s=s+1": (r, s + 1 if s + 1 < N else s - 1)}[bad]
    with pytest.raises(TokenError):
        KeySet(jwks(key)).verify(with_signature(signing_input, r, s), repository="alice/app",
                                 digest=DIGEST)


def test_canonical_token_leaves_what_it_cannot_parse_alone():
    assert blobtoken.canonical_token("not-a-jwt") == "not-a-jwt"
    assert blobtoken.canonical_token("a.b.c") == "a.b.c"
