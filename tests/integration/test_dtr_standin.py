"""The DTR stand-in (fixtures/dtr) end to end: real distribution registry, real reference cache,
real TLS from fixtures.pki, all local processes on loopback.

One module-scoped stack: registry <- stand-in <- cache. alice pushes ``alice/app``; admin registers
the cache and alice points her settings at it; her blob GETs get a signed 307 to the cache, which
fills the miss from the stand-in with the signed token and then hits.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from cache_under_test.blobtoken import JWKS_PATH, TOKEN_PARAM, KeySet
from dtr_cache_check.pki import CertificateAuthority, trust_context
from dtr_cache_check.probes.logs import events
from dtr_cache_check.probes.oci import Image, synthesize
from dtr_cache_check.probes.registry import RegistryClient, RegistryError, verify_digest
from dtr_cache_check.reference.dtr import CACHE_SETTING_FIELD
from dtr_cache_check.testkit.local import (
    LocalServer,
    free_port,
    start_cache,
    start_dtr,
    wait_ready,
)

from .serverkit import CACHES, Stack

pytestmark = pytest.mark.integration



def make_image(size: int = 64 * 1024) -> Image:
    """A unique one-layer image (random content, so digests never collide across runs)."""
    return synthesize(layers=1, layer_size=size)


def push(client: RegistryClient, repo: str, image: Image, chunk_size: int | None = None) -> None:
    """Push ``image`` as ``repo:latest``; blobs in PATCH chunks when ``chunk_size``."""
    if chunk_size is None:
        image.push(client, repo, "latest")
        return
    for blob in image.blobs:
        client.push_blob(repo, blob.data, chunk_size=chunk_size)
    client.push_manifest(repo, "latest", image.manifest, image.manifest_media_type)


@pytest.fixture(scope="module")
def image(stack: Stack) -> Image:
    """alice/app:latest, pushed by alice through the stand-in (bearer flow)."""
    built = make_image()
    with stack.client("alice") as alice:
        push(alice, "alice/app", built)
    return built


@pytest.fixture
def rogue_cache(stack: Stack) -> Iterator[LocalServer]:
    """A cache whose certificate comes from a CA the stand-in does not trust."""
    other = CertificateAuthority.create("Some Other Root CA")
    server = start_cache(stack.workdir / "rogue", other.issue_server(["127.0.0.1"]),
                         upstreams=[stack.dtr.url], cas=[stack.ca_file], name="rogue")
    try:
        wait_ready(server, trust_context(other))
        yield server
    finally:
        server.stop()


def _cache_events(stack: Stack, name: str, digest: str, timeout: float = 5.0) -> list:
    """The cache's ``name`` events for ``digest``; waits a little, as the cache logs a blob
    event once the response is complete, which can be just after the client has it."""
    deadline = time.monotonic() + timeout
    while True:
        found = events(stack.cache.log_lines(), name, digest=digest)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# -- DTR's unauthenticated endpoints and the token flow ---------------------------------------


def test_ca_and_jwks_need_no_auth(stack: Stack) -> None:
    ca = httpx.get(stack.dtr.url + "/ca", verify=stack.verify)
    assert ca.status_code == 200
    assert ca.content.strip() == stack.ca_file.read_bytes().strip()
    keys = httpx.get(stack.dtr.url + JWKS_PATH, verify=stack.verify)
    assert keys.status_code == 200
    assert KeySet(keys.json()).keys, "the JWKS holds no usable key"


def test_unauthenticated_v2_gets_the_bearer_challenge(stack: Stack) -> None:
    answer = httpx.get(stack.dtr.url + "/v2/alice/app/manifests/latest", verify=stack.verify)
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer realm="{stack.dtr.url}/auth/token"')
    assert 'service="dtr-standin"' in challenge
    assert 'scope="repository:alice/app:pull"' in challenge
    assert answer.headers["docker-distribution-api-version"] == "registry/2.0"
    assert answer.json()["errors"][0]["code"] == "UNAUTHORIZED"
    base = httpx.get(stack.dtr.url + "/v2/", verify=stack.verify)
    assert base.status_code == 401 and "scope=" not in base.headers["www-authenticate"]


def test_token_grants_only_what_the_policy_allows(stack: Stack) -> None:
    def granted(user: str, scope: str) -> list:
        answer = httpx.get(stack.dtr.url + "/auth/token", verify=stack.verify,
                           params={"service": "dtr-standin", "scope": scope},
                           auth=(user, stack.password(user)))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["token"] == body["access_token"] and body["expires_in"] > 0
        return jwt.decode(body["token"], options={"verify_signature": False})["access"]

    assert granted("alice", "repository:alice/app:pull,push")[0]["actions"] == ["pull", "push"]
    assert granted("bob", "repository:alice/app:pull,push") == []
    assert granted("bob", "repository:public/base:pull,push")[0]["actions"] == ["pull"]
    assert granted("admin", "repository:alice/app:*")[0]["actions"] == ["*"]
    wrong = httpx.get(stack.dtr.url + "/auth/token", verify=stack.verify,
                      params={"scope": "repository:alice/app:pull"}, auth=("alice", "nope"))
    assert wrong.status_code == 401


def test_users_file_is_private_and_passwords_never_logged(stack: Stack, image: Image) -> None:
    for private in (stack.dtr.extra["users"], stack.dtr.extra["signing_key"]):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    log = stack.dtr.log_path.read_text()
    assert '"event": "dtr.token"' in log
    for user in ("admin", "alice", "bob"):
        assert stack.password(user) not in log
    assert "eyJ" not in log, "a JWT reached the stand-in's log"


# -- push and pull through the stand-in -------------------------------------------------------


def test_alice_pushes_and_gets_the_manifest_from_dtr(stack: Stack, image: Image,
                                                     registered: dict) -> None:
    with stack.client("alice") as alice:
        manifest = alice.get_manifest("alice/app", "latest")
    assert manifest.status_code == 200, "manifests always come from DTR, never redirected"
    assert manifest.content == image.manifest
    assert "location" not in manifest.headers


def test_chunked_push_of_a_larger_blob_streams_through(stack: Stack) -> None:
    big = make_image(size=3 * 1024 * 1024)
    with stack.client("alice") as alice:
        push(alice, "alice/big", big, chunk_size=1024 * 1024)
        assert alice.get_manifest("alice/big", "latest").status_code == 200


def test_bob_can_neither_push_nor_pull_alices_repo(stack: Stack, image: Image) -> None:
    with stack.client("bob") as bob:
        with pytest.raises(RegistryError) as refused:
            bob.push_blob("alice/app", b"bob was here")
        assert refused.value.response is not None
        assert refused.value.response.status_code in (401, 403)
        blob = bob.get_blob("alice/app", image.layers[0].digest)
        assert blob.status_code in (401, 403)
        assert "location" not in blob.headers, "an unauthorized pull must never be redirected"
        assert bob.get_manifest("alice/app", "latest").status_code in (401, 403)


# -- content cache registration and account settings ------------------------------------------


def test_cache_registration_rules(stack: Stack, registered: dict) -> None:
    with stack.api("admin") as admin:
        listed = admin.get(CACHES).json()
        assert registered in listed
        duplicate = admin.post(CACHES, json={"name": "region-test", "host": stack.cache.url})
        assert duplicate.status_code == 409
        plain = admin.post(CACHES, json={"name": "plain", "host": "http://127.0.0.1:1"})
        assert plain.status_code == 400 and "https" in plain.text
        dead = admin.post(CACHES, json={"name": "dead",
                                        "host": f"https://127.0.0.1:{free_port()}"})
        assert dead.status_code == 400 and "connection refused" in dead.text
        extra = admin.post(CACHES, json={"name": "short-lived", "host": stack.cache.url})
        assert extra.status_code == 201
        cache_id = extra.json()["id"]
        assert admin.post("/api/v0/accounts/bob/settings",
                          json={CACHE_SETTING_FIELD: cache_id}).status_code == 200
        assert admin.delete(f"{CACHES}/{cache_id}").status_code == 204
        assert admin.delete(f"{CACHES}/{cache_id}").status_code == 404
        bob = admin.get("/api/v0/accounts/bob/settings").json()
        assert bob[CACHE_SETTING_FIELD] == "", "deleting a cache unpoints its users"
    with stack.api("alice") as alice:
        assert alice.post(CACHES, json={"name": "mine", "host": stack.cache.url}
                          ).status_code == 403
        assert alice.delete(f"{CACHES}/{registered['id']}").status_code == 403


def test_cache_with_an_untrusted_certificate_is_refused(stack: Stack,
                                                        rogue_cache: LocalServer) -> None:
    with stack.api("admin") as admin:
        answer = admin.post(CACHES, json={"name": "rogue", "host": rogue_cache.url})
        assert answer.status_code == 400
        message = answer.json()["errors"][0]["message"]
        assert "unknown authority" in message
        assert "x509: certificate signed by unknown authority" in message
        assert rogue_cache.url in message and "trusted CAs" in message
        assert all(c["name"] != "rogue" for c in admin.get(CACHES).json())
    assert events(stack.dtr.log_lines(), "dtr.cache_refused", cache_name="rogue")


def test_settings_hold_the_cache_id(stack: Stack, registered: dict) -> None:
    with stack.api("alice") as alice:
        assert alice.get("/api/v0/accounts/alice/settings").json()[CACHE_SETTING_FIELD] == \
            registered["id"]
        bogus = alice.post("/api/v0/accounts/alice/settings", json={CACHE_SETTING_FIELD: "nope"})
        assert bogus.status_code == 400
        assert alice.get("/api/v0/accounts/bob/settings").status_code == 403
    with stack.api("bob") as bob:
        assert bob.get("/api/v0/accounts/bob/settings").json()[CACHE_SETTING_FIELD] == ""


# -- the redirect, the cache's fill, and the signed token -------------------------------------


def test_alice_is_redirected_to_the_cache_miss_then_hit(stack: Stack, image: Image,
                                                        registered: dict) -> None:
    digest = image.layers[0].digest
    with stack.client("alice") as alice:
        head = alice.get_blob("alice/app", digest, method="HEAD")
        assert head.status_code == 200, "HEADs are never redirected"
        redirect = alice.get_blob("alice/app", digest)
        assert redirect.status_code == 307
        assert redirect.headers["cache-control"] == "no-store"
        location = urlsplit(redirect.headers["location"])
        assert location.netloc == urlsplit(stack.cache.url).netloc
        assert location.path == f"/v2/alice/app/blobs/{digest}"
        assert TOKEN_PARAM in parse_qs(location.query)

        first = alice.follow(redirect)
        assert first.status_code == 200, first.text
        assert "authorization" not in first.request.headers
        assert verify_digest(first.content, digest)
        assert first.headers.get("x-cache") == "MISS"
        assert _cache_events(stack, "blob.miss", digest)

        second = alice.follow(alice.get_blob("alice/app", digest))
        assert second.status_code == 200 and verify_digest(second.content, digest)
        assert second.headers.get("x-cache") == "HIT"
        assert _cache_events(stack, "blob.hit", digest)
    assert events(stack.dtr.log_lines(), "dtr.redirect", user="alice", digest=digest)
    assert events(stack.dtr.log_lines(), "dtr.signed_blob", user="alice", digest=digest)


def test_tampered_token_gets_nothing(stack: Stack, image: Image, registered: dict) -> None:
    with stack.client("alice") as alice:
        redirect = alice.get_blob("alice/app", image.layers[0].digest)
    assert redirect.status_code == 307
    location = redirect.headers["location"]
    token = parse_qs(urlsplit(location).query)[TOKEN_PARAM][0]
    head, payload, signature = token.split(".")
    flipped = "A" if signature[10] != "A" else "B"
    tampered = f"{head}.{payload}.{signature[:10]}{flipped}{signature[11:]}"
    url = httpx.URL(location).copy_set_param(TOKEN_PARAM, tampered)
    at_cache = httpx.get(url, verify=stack.verify)
    assert at_cache.status_code == 401
    at_dtr = httpx.get(httpx.URL(stack.dtr.url + url.raw_path.decode()), verify=stack.verify)
    assert at_dtr.status_code == 401
    assert at_dtr.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_signed_token_is_served_by_dtr_without_bearer(stack: Stack, image: Image,
                                                      registered: dict) -> None:
    with stack.client("alice") as alice:
        redirect = alice.get_blob("alice/app", image.layers[0].digest)
    at_dtr = httpx.get(stack.dtr.url + urlsplit(redirect.headers["location"]).path + "?"
                       + urlsplit(redirect.headers["location"]).query, verify=stack.verify)
    assert at_dtr.status_code == 200
    assert verify_digest(at_dtr.content, image.layers[0].digest)


def test_bob_without_a_cache_gets_blobs_directly(stack: Stack, registered: dict) -> None:
    own = make_image()
    with stack.client("bob") as bob:
        push(bob, "bob/tools", own)
        blob = bob.get_blob("bob/tools", own.layers[0].digest)
    assert blob.status_code == 200
    assert "location" not in blob.headers
    assert verify_digest(blob.content, own.layers[0].digest)


def test_restart_keeps_users_caches_and_settings(stack: Stack, registered: dict) -> None:
    before = stack.password("alice")
    keys = httpx.get(stack.dtr.url + JWKS_PATH, verify=stack.verify).json()
    stack.dtr.stop()
    # Same workdir and port: the same config and state directory.
    restarted = start_dtr(stack.workdir, stack.dtr_tls, ca_pem_path=stack.ca_file,
                      registry_url=stack.registry.url, cache_cas=[stack.ca_file],
                      port=stack.dtr.port)
    stack.dtr = restarted
    wait_ready(restarted, stack.verify)
    assert stack.password("alice") == before
    assert httpx.get(restarted.url + JWKS_PATH, verify=stack.verify).json() == keys
    with stack.api("alice") as alice:
        assert alice.get("/api/v0/accounts/alice/settings").json()[CACHE_SETTING_FIELD] == \
            registered["id"]
        assert registered in alice.get(CACHES).json()
