"""Security: a bad signature gets nothing, a user without a cache gets no redirect, no private
key lies in the deployment directory, no secret reaches the report."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from cache_under_test.blobtoken import TOKEN_PARAM, SigningKey
from cache_under_test.events import redact
from fixtures.harness.diagnosis import CLIENT_CACHE, FILES, REGISTRATION, SECURITY, fail, requires
from fixtures.harness.report import EVIDENCE_KEY


@pytest.fixture(scope="module")
def signed(target, push_image):
    """A blob, DTR's signed redirect for it (followed once, so the cache holds the blob and
    a bad token must be refused on a hit too), and the signed Location split in parts."""
    requires("test_3_blobs_redirect_to_the_registered_cache",
             "test_client_trusts_the_server[client->cache]")
    image = push_image(layers=1, layer_size=32 * 1024, tag="security")
    digest = image.layers[0].digest
    with target.client() as client:
        redirect = client.get_blob(target.test_repo, digest)
    if redirect.status_code != 307:
        pytest.fail(f"consequence of test_3_blobs_redirect_to_the_registered_cache: DTR "
                    f"answered {redirect.status_code}", pytrace=False)
    location = redirect.headers["location"]
    query = parse_qs(urlsplit(location).query)
    _get(target, location)  # cached now
    return image, digest, location, query


def _get(target, url: str) -> httpx.Response:
    with httpx.Client(verify=target.trust("cache"), timeout=30) as http:
        return http.get(url)


def _refused(target, image, answer: httpx.Response, what: str) -> None:
    if answer.status_code < 400 or image.layers[0].data[:64] in answer.content:
        fail(CLIENT_CACHE, f"the cache served the blob to a request with {what} "
             f"({answer.status_code})", "the cache must verify DTR's signature on every "
             "request: update it, and never run it with test fault modes enabled")


def test_tampered_token_gets_nothing(target, signed, evidence, writes):
    """A redirect whose signature was altered gets 401/403 and not one byte of the blob."""
    requires("test_3_blobs_redirect_to_the_registered_cache")
    image, _digest, location, query = signed
    if TOKEN_PARAM not in query:
        token_name, token = next(iter(query.items()), (None, [""]))
        if token_name is None:
            pytest.skip("DTR's redirect carries no query token to tamper with")
    else:
        token_name, token = TOKEN_PARAM, query[TOKEN_PARAM]
    value = token[0]
    tampered = location.replace(value, value[:-4] + ("AAAA" if value[-4:] != "AAAA" else "BBBB"))
    answer = _get(target, tampered)
    _refused(target, image, answer, "a tampered signature")
    evidence.note(f"tampered {token_name}: {answer.status_code}, no bytes")


def test_expired_token_gets_nothing(target, signed, evidence, writes):
    """A correctly signed but expired redirect gets 401 and not one byte of the blob."""
    requires("test_tampered_token_gets_nothing")
    if target.signing_key is None or not Path(target.signing_key).exists():
        pytest.skip("needs DTR's signing key to mint an expired token (reference deployment)")
    image, digest, location, query = signed
    kid = httpx.get(target.dtr_url + "/.well-known/dtr-content-cache/jwks.json",
                    verify=target.trust("dtr")).json()["keys"][0]["kid"]
    key = SigningKey.from_pem(Path(target.signing_key).read_bytes(), kid)
    expired = key.sign(user=target.dtr_user, repository=target.test_repo, digest=digest,
                       ttl=60, now=time.time() - 3600)
    url = location.replace(query[TOKEN_PARAM][0], expired)
    answer = _get(target, url)
    _refused(target, image, answer, "an expired signature")
    evidence.note(f"expired token: {answer.status_code}, no bytes")


def test_user_without_a_cache_gets_no_redirect(target, push_image, evidence, writes):
    """A user whose settings name no cache gets blobs from DTR itself, never a redirect."""
    requires("test_client_trusts_the_server[client->DTR]")
    if not target.other_user:
        pytest.skip("no --other-user: name a DTR user without a content cache")
    repo = f"{target.other_user}/dtr-cache-check"
    image = push_image(layers=1, layer_size=16 * 1024, tag="nocache", user=target.other_user,
                       repo=repo)
    with target.client(target.other_user) as client:
        answer = client.get_blob(repo, image.layers[0].digest)
        evidence.transcript(client.transcript)
    if answer.status_code in (301, 302, 303, 307, 308):
        fail(REGISTRATION, f"{target.other_user}, who has no cache selected, was redirected "
             f"to {answer.headers.get('location', '?').split('?')[0]}",
             f"clear {target.other_user}'s Content Cache setting, or check DTR's settings API")
    if answer.status_code != 200:
        fail(REGISTRATION, f"{target.other_user} could not pull their own blob "
             f"({answer.status_code})", "check that user's rights on their repository")
    evidence.note(f"{target.other_user}: 200 from DTR, no redirect")


def test_no_private_key_in_the_deployment_directory(target, evidence):
    """As the seed's last step asks, no private key is left in the deployment directory."""
    if target.deploy_dir is None:
        pytest.skip("no --deploy-dir: nothing to inspect")
    found = [p for p in Path(target.deploy_dir).rglob("*") if p.is_file()
             and p.stat().st_size < 1_000_000 and b"PRIVATE KEY-----" in p.read_bytes()]
    if found:
        fail(FILES, f"{len(found)} private key file(s) left in {target.deploy_dir}: "
             f"{', '.join(str(p.relative_to(target.deploy_dir)) for p in found)}",
             "once deployed (swarm keeps its own copy as a secret), delete them: rm -rf certs")
    evidence.note(f"no private key under {target.deploy_dir}")


def test_no_secret_in_the_reported_evidence(request, target, evidence):
    """No password, token or key appears in anything this run will put in its reports."""
    texts = []
    for item in request.session.items:
        kept = item.stash.get(EVIDENCE_KEY, None)
        if kept is not None:
            texts += kept.summary + [body for _title, body in kept.sections]
    leaks = [s for s in target.secrets() if any(s in t for t in texts)]
    tokens = [t for t in texts if redact(t) != t]
    if leaks or tokens:
        fail(SECURITY, f"{len(leaks)} password(s) and {len(tokens)} token-bearing text(s) "
             "reached the report's evidence", "this is a harness defect: report it")
    evidence.note(f"{len(texts)} evidence texts scanned, no secret")
