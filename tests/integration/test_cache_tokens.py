"""Signed tokens at the cache: verified locally against DTR's keys, which a chained cache serves.

The stand-in (fixtures/dtr) signs the redirects; the cache fetches its JWKS through the
upstream, refetches on an unknown key id, and serves not one byte to a bad token.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from cache_under_test.blobtoken import JWKS_PATH, TOKEN_PARAM, SigningKey
from dtr_cache_check.probes.logs import events
from dtr_cache_check.probes.oci import synthesize
from dtr_cache_check.probes.registry import verify_digest
from dtr_cache_check.testkit.local import start_cache, start_dtr, wait_ready

from .serverkit import Stack, wait_for_event

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pushed(stack: Stack, registered):
    image = synthesize(layers=1, layer_size=128 * 1024)
    with stack.client("alice") as alice:
        image.push(alice, "alice/tokens", "v1")
    return image


def redirect_token(stack: Stack, digest: str, repo: str = "alice/tokens") -> tuple[str, str]:
    """(Location, token) of alice's signed 307 for ``digest``."""
    with stack.client("alice") as alice:
        answer = alice.get_blob(repo, digest)
    assert answer.status_code == 307, answer.text
    location = answer.headers["location"]
    return location, parse_qs(urlsplit(location).query)[TOKEN_PARAM][0]


def signing_key(stack: Stack) -> SigningKey:
    kid = httpx.get(stack.dtr.url + JWKS_PATH, verify=stack.verify).json()["keys"][0]["kid"]
    return SigningKey.from_pem(stack.dtr.extra["signing_key"].read_bytes(), kid)


def cache_get(stack: Stack, url: str) -> httpx.Response:
    with httpx.Client(verify=stack.verify, timeout=30) as http:
        return http.get(url)


def test_valid_token_is_served_and_a_hit_asks_nobody(stack, pushed):
    digest = pushed.layers[0].digest
    location, _ = redirect_token(stack, digest)
    first = cache_get(stack, location)
    assert first.status_code == 200 and verify_digest(first.content, digest)
    location, _ = redirect_token(stack, digest)
    dtr_requests_before = len(stack.dtr.log_lines())
    second = cache_get(stack, location)
    assert second.headers["x-cache"] == "HIT" and verify_digest(second.content, digest)
    # A hit is authorized locally: DTR saw nothing of it.
    assert len(stack.dtr.log_lines()) == dtr_requests_before
    hit = wait_for_event(stack.cache, "blob.hit", digest=digest)
    assert hit and hit[-1].get("user") == "alice"


@pytest.mark.parametrize(("forge", "status"), [
    ("tampered", 401), ("expired", 401), ("wrong-digest", 403), ("wrong-repo", 403),
    ("foreign-key", 401), ("missing", 401),
])
def test_bad_tokens_get_nothing(stack, pushed, forge, status):
    digest = pushed.layers[0].digest
    base = f"{stack.cache.url}/v2/alice/tokens/blobs/{digest}"
    location, token = redirect_token(stack, digest)
    cache_get(stack, location)  # make sure it is cached: a hit must be refused too
    key = signing_key(stack)
    forged = {
        "tampered": lambda: token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB"),
        "expired": lambda: key.sign(user="alice", repository="alice/tokens", digest=digest,
                                    ttl=30, now=time.time() - 3600),
        "wrong-digest": lambda: key.sign(user="alice", repository="alice/tokens",
                                         digest=pushed.config.digest),
        "wrong-repo": lambda: key.sign(user="alice", repository="alice/other", digest=digest),
        "foreign-key": lambda: SigningKey.generate(key.key_id).sign(
            user="alice", repository="alice/tokens", digest=digest),
        "missing": lambda: "",
    }[forge]()
    url = f"{base}?{TOKEN_PARAM}={forged}" if forged else base
    answer = cache_get(stack, url)
    assert answer.status_code == status
    assert pushed.layers[0].data not in answer.content
    assert answer.json()["errors"][0]["code"] in ("UNAUTHORIZED", "DENIED")
    if forged:
        denied = events(stack.cache.log_lines(), "auth.denied", digest=digest)
        assert denied and denied[-1].get("status") == status
        assert forged not in stack.cache.log_path.read_text()


def test_chained_cache_verifies_with_dtrs_keys_served_by_its_upstream(stack, pushed, tmp_path,
                                                                      servers):
    """client -> leaf cache -> middle cache (the registered one) -> DTR."""
    leaf = start_cache(tmp_path, stack.dtr_tls, upstreams=[stack.cache.url],
                       cas=[stack.ca_file], name="leaf")
    servers.append(leaf)
    wait_ready(leaf, stack.verify, path="/health")
    keys_at_middle = httpx.get(stack.cache.url + JWKS_PATH, verify=stack.verify).json()
    keys_at_dtr = httpx.get(stack.dtr.url + JWKS_PATH, verify=stack.verify).json()
    assert keys_at_middle == keys_at_dtr
    digest = pushed.config.digest
    _, token = redirect_token(stack, digest)
    answer = cache_get(stack, f"{leaf.url}/v2/alice/tokens/blobs/{digest}?{TOKEN_PARAM}={token}")
    assert answer.status_code == 200 and verify_digest(answer.content, digest)
    miss = wait_for_event(leaf, "blob.miss", digest=digest)
    assert miss and miss[0].get("upstream") == stack.cache.url
    forged = SigningKey.generate("nope").sign(user="alice", repository="alice/tokens",
                                              digest=digest)
    refused = cache_get(stack, f"{leaf.url}/v2/alice/tokens/blobs/{digest}?{TOKEN_PARAM}={forged}")
    assert refused.status_code == 401


def test_key_rotation_at_dtr_is_picked_up_on_the_unknown_key_id(stack, pushed):
    """DTR gets a new signing key: the cache refetches the JWKS on the first unknown kid."""
    old_kid = signing_key(stack).key_id
    stack.dtr.stop()
    stack.dtr.extra["signing_key"].unlink()
    stack.dtr = start_dtr(stack.workdir, stack.dtr_tls, ca_pem_path=stack.ca_file,
                          registry_url=stack.registry.url, cache_cas=[stack.ca_file],
                          port=stack.dtr.port)
    wait_ready(stack.dtr, stack.verify)
    assert signing_key(stack).key_id != old_kid
    digest = pushed.layers[0].digest
    location, _ = redirect_token(stack, digest)
    answer = cache_get(stack, location)
    assert answer.status_code == 200 and verify_digest(answer.content, digest)
    fetched = events(stack.cache.log_lines(), "keys.fetched")
    assert len(fetched) >= 2 and signing_key(stack).key_id in fetched[-1].get("key_ids")
