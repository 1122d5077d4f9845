"""The DTR stand-in signs a redirect only for a blob linked into the requested repository.

The cache stores blobs by digest for every repository and serves any digest it holds to a valid
token for that repository and digest. So a token for ``alice/app`` + the digest of a blob that
lives only in bob's private repository would hand bob's bytes to alice: the signer must answer
such a request ``404 BLOB_UNKNOWN``, as DTR and distribution do, and never sign it.
"""

from __future__ import annotations

import os

import httpx
import pytest

from cache_under_test.blobtoken import JWKS_PATH, TOKEN_PARAM, SigningKey
from dtr_cache_check.probes.logs import events
from dtr_cache_check.probes.registry import verify_digest
from dtr_cache_check.reference.dtr import CACHE_SETTING_FIELD

from .serverkit import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bobs_secret(stack: Stack, registered: dict) -> tuple[str, bytes]:
    """A blob only in ``bob/secret`` (alice cannot read it), already held by the cache: bob,
    pointed at the cache for this, pulled it through."""
    data = os.urandom(96 * 1024)
    with stack.client("bob") as bob:
        digest = bob.push_blob("bob/secret", data)
    with stack.api("bob") as api:
        pointed = api.post("/api/v0/accounts/bob/settings",
                           json={CACHE_SETTING_FIELD: registered["id"]})
        assert pointed.status_code == 200, pointed.text
    try:
        with stack.client("bob") as bob:
            redirect = bob.get_blob("bob/secret", digest)
            assert redirect.status_code == 307, "bob's own blob is signed for his cache"
            pulled = bob.follow(redirect)
            assert pulled.status_code == 200 and verify_digest(pulled.content, digest)
    finally:
        with stack.api("bob") as api:
            api.post("/api/v0/accounts/bob/settings", json={CACHE_SETTING_FIELD: ""})
    return digest, data


def test_a_blob_of_another_repository_is_never_signed(stack: Stack, registered: dict,
                                                      bobs_secret) -> None:
    digest, data = bobs_secret
    with stack.client("alice") as alice:
        alice.push_blob("alice/app", os.urandom(1024))  # alice/app exists and is hers
        answer = alice.get_blob("alice/app", digest)
        if answer.status_code == 307:  # show what the token would have bought
            leaked = alice.follow(answer)
            assert leaked.content != data, "bob's private blob was served to alice"
        assert answer.status_code == 404, answer.headers.get("location", answer.text)
    assert "location" not in answer.headers
    assert answer.headers["docker-distribution-api-version"] == "registry/2.0"
    error = answer.json()["errors"][0]
    assert error["code"] == "BLOB_UNKNOWN" and error["detail"] == digest
    assert not events(stack.dtr.log_lines(), "dtr.redirect", user="alice", digest=digest)
    assert events(stack.dtr.log_lines(), "dtr.blob_unknown", repo="alice/app", digest=digest)


def test_a_blob_that_exists_nowhere_is_unknown_not_signed(stack: Stack,
                                                          registered: dict) -> None:
    digest = "sha256:" + os.urandom(32).hex()
    with stack.client("alice") as alice:
        answer = alice.get_blob("alice/app", digest)
    assert answer.status_code == 404 and "location" not in answer.headers
    assert answer.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_a_linked_blob_is_still_signed_and_served(stack: Stack, registered: dict,
                                                  bobs_secret) -> None:
    data = os.urandom(48 * 1024)
    with stack.client("alice") as alice:
        digest = alice.push_blob("alice/app", data)
        redirect = alice.get_blob("alice/app", digest)
        assert redirect.status_code == 307
        served = alice.follow(redirect)
    assert served.status_code == 200 and served.content == data


def test_the_cache_still_serves_any_digest_to_a_valid_token(stack: Stack, registered: dict,
                                                           bobs_secret) -> None:
    """The decision the stand-in's check rests on: the cache does not re-check the link."""
    digest, data = bobs_secret
    key = SigningKey.from_pem(stack.dtr.extra["signing_key"].read_bytes(), "unused")
    jwks = httpx.get(stack.dtr.url + JWKS_PATH,
                     verify=stack.verify).json()
    key.key_id = jwks["keys"][0]["kid"]
    token = key.sign(user="bob", repository="bob/secret", digest=digest)
    answer = httpx.get(f"{stack.cache.url}/v2/bob/secret/blobs/{digest}",
                       params={TOKEN_PARAM: token}, verify=stack.verify)
    assert answer.status_code == 200 and answer.content == data
    assert answer.headers["x-cache"] == "HIT"
