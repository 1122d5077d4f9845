"""Security: a bad signature gets nothing, a user without a cache gets no redirect, no private
key lies in the deployment directory, no secret reaches the report. Each refusal stands on a
positive control: the same request with DTR's own token was answered 200 with the right bytes
in this run (the pull cycle's first pull), so a cache that refuses everything cannot pass."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from dtr_cache_check.harness.report import EVIDENCE_KEY
from dtr_cache_check.probes import redaction
from dtr_cache_check.probes.minting import mint, unverified_expiry
from dtr_cache_check.steps import ha
from dtr_cache_check.steps.findings import (
    CLIENT_CACHE,
    FILES,
    REGISTRATION,
    SECURITY,
    fail,
)
from dtr_cache_formats.blob_token import JWKS_PATH, TOKEN_PARAM

pytestmark = [pytest.mark.family("security"), pytest.mark.hop(SECURITY)]
# What a cache answers a bad signature with (distribution's token auth: 401 UNAUTHORIZED; 403
# DENIED for a token of another blob).
REFUSALS = (401, 403)


@pytest.fixture(scope="session")
def signed(cycle):
    """A blob the cache served in this run with DTR's token (the positive control; the cache
    holds it now, so a bad token must be refused on a hit too), and its signed Location."""
    first = cycle.first_pull()
    digest = next(iter(first))
    location = cycle.redirects[digest].headers["location"]
    query = parse_qs(urlsplit(location).query)
    token_name = TOKEN_PARAM if TOKEN_PARAM in query else next(iter(query), None)
    if token_name is not None:
        redaction.current().add_token_param(token_name)
    return digest, first[digest].content, location, token_name, query


def _get(target, steps, url: str) -> httpx.Response:
    try:
        with httpx.Client(verify=target.trust("cache"), timeout=30) as http:
            return http.get(url)
    except httpx.TransportError as exc:
        failed = exc
    ha.replicas_first(target, steps)  # HA: this connection may have met a faulty replica
    raise failed


def _warm(target, steps, digest: str) -> None:
    """Have the cache hold ``digest`` now (a fresh redirect, followed): a refusal that follows is
    then the cache's own, not DTR's answer to a miss."""
    failed = None
    with target.client() as client:
        try:
            answer = client.follow(client.get_blob(target.test_repo, digest))
        except httpx.TransportError as exc:
            failed = exc
    if failed is not None:  # HA: this connection may have met a faulty replica
        ha.replicas_first(target, steps)
        raise failed
    if answer.status_code != 200:
        fail(CLIENT_CACHE, f"the cache no longer serves {digest[:19]} with DTR's fresh token "
             f"({answer.status_code}), so a refusal could not be told from a broken cache",
             "see the pull cycle checks")


def _refused(answer: httpx.Response, body: bytes, what: str) -> None:
    """A refusal is 401 or 403 with none of the blob: an error (500, 502) proves nothing."""
    if answer.status_code < 400 or body[:64] in answer.content:
        fail(CLIENT_CACHE, f"the cache served the blob to a request with {what} "
             f"({answer.status_code})", "the cache must verify DTR's signature on every "
             "request: deploy the cache image that matches DTR's version, and remove any "
             "setting or environment variable that turns verification off")
    if answer.status_code not in REFUSALS:
        fail(CLIENT_CACHE, f"the cache answered a request with {what} "
             f"{answer.status_code} instead of refusing it (401/403): an error is no proof "
             "that it checks signatures", "read the cache's logs for this request's error "
             "and mend it; a bad signature must be answered 401 UNAUTHORIZED")


@pytest.mark.essential("token enforcement")
@pytest.mark.writes
def test_tampered_token_gets_nothing(target, steps, signed, evidence):
    """A redirect whose signature was altered gets 401/403 and not one byte of the blob."""
    digest, body, location, token_name, query = signed
    if token_name is None:
        pytest.skip("DTR's redirect carries no query token to tamper with: its authorization "
                    "is not in the URL, so this check cannot alter it")
    value = query[token_name][0]
    tampered = location.replace(value, value[:-4] + ("AAAA" if value[-4:] != "AAAA" else "BBBB"))
    answer = _get(target, steps, tampered)
    _refused(answer, body, "a tampered signature")
    evidence.note(f"control: DTR's token for {digest[7:19]} was served 200 with the right "
                  f"bytes; tampered {token_name}: {answer.status_code}, no byte of the blob")


@pytest.mark.writes
@pytest.mark.requires("test_tampered_token_gets_nothing")
def test_expired_token_gets_nothing(target, steps, signed, evidence):
    """A correctly signed but expired redirect gets 401 and not one byte of the blob."""
    digest, body, location, token_name, query = signed
    if token_name is None:
        pytest.skip("DTR's redirect carries no query token: nothing to let expire")
    token = query[token_name][0]
    if target.signing_key is not None and Path(target.signing_key).exists():
        kid = httpx.get(target.dtr_url + JWKS_PATH,
                        verify=target.trust("dtr")).json()["keys"][0]["kid"]
        expired = mint(Path(target.signing_key).read_bytes(), kid, user=target.dtr_user,
                       repository=target.test_repo, digest=digest, issued=time.time() - 3600)
        url = location.replace(token, expired)
        how = "a token minted with DTR's key, expired an hour ago"
    else:  # a real DTR: nobody has its key, so let DTR's own token run out
        expiry = unverified_expiry(token)
        if expiry is None:
            pytest.skip("DTR's token is not a JWT (its expiry cannot be read) and no "
                        "--dtr-signing-key was given: the expired-token check cannot run")
        # Past the cache's leeway (--token-leeway; distribution's is 60 s)
        wait = expiry - time.time() + target.token_leeway + 2
        if wait > target.ttl_wait:
            pytest.skip(f"DTR's token expires in {wait:.0f} s: waiting for it needs "
                        f"--ttl-wait {int(wait) + 1} (now {target.ttl_wait:g})")
        # Asked from just past the expiry on: within its leeway a cache may still serve it,
        # and one with a shorter leeway refuses sooner (no need to wait the longest one).
        time.sleep(max(expiry - time.time() + 2, 0))
        deadline = expiry + target.token_leeway + 2
        url = location
        _warm(target, steps, digest)
        answer = _get(target, steps, url)
        while answer.status_code < 400 and time.time() < deadline:
            time.sleep(min(5.0, max(deadline - time.time(), 0.1)))
            _warm(target, steps, digest)
            answer = _get(target, steps, url)
        how = f"DTR's own token, {time.time() - expiry:.0f} s after it expired"
        _refused(answer, body, f"an expired signature ({how}, past the --token-leeway of "
                               f"{target.token_leeway:g} s)")
        evidence.note(f"{how}, asked while the cache held the blob: {answer.status_code}, no "
                      f"byte of {digest[7:19]}")
        return
    _warm(target, steps, digest)  # a hit now: the cache itself must refuse, not DTR on a miss
    answer = _get(target, steps, url)
    _refused(answer, body, "an expired signature")
    evidence.note(f"{how}, asked while the cache held the blob: {answer.status_code}, no byte "
                  f"of {digest[7:19]}")


@pytest.mark.writes
@pytest.mark.requires("test_client_trusts_the_server[client->DTR]")
def test_user_without_a_cache_gets_no_redirect(target, push_image, evidence):
    """A user whose settings name no cache gets blobs from DTR itself, never a redirect."""
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
    evidence.note(f"{target.other_user}: 200 from DTR for {image.layers[0].digest[7:19]}, "
                  "no redirect")


@pytest.mark.writes
def test_blob_of_another_repository_gets_no_redirect(target, steps, cycle, push_image,
                                                    evidence):
    """A blob that exists only in a repository the test user cannot read is not redirected to
    the cache when asked for through the user's own repository (DTR answers 404 BLOB_UNKNOWN
    or refuses), and the cache never serves its bytes: the cache stores blobs by digest for
    every repository, so DTR's signature must vouch for the link."""
    cycle.redirected()  # control: the user's own blobs are redirected in this run
    owner = target.other_user or target.admin_user
    if not owner or owner == target.dtr_user:
        pytest.skip("needs a second DTR account to own a private blob: give --other-user "
                    "(or --dtr-admin-user) with its password")
    repo = f"{owner}/dtr-cache-check-private"
    image = push_image(layers=1, layer_size=16 * 1024, tag="foreign", user=owner, repo=repo)
    digest = image.layers[0].digest
    with target.client(owner) as client:  # control: the blob exists for its owner
        own = client.get_blob(repo, digest)
    if own.status_code not in (200, 307):
        fail(SECURITY, f"{owner} cannot get the blob they just pushed to {repo} "
             f"({own.status_code})", "check that user's rights on their repository")
    asked = {}
    with target.client() as client:
        for where in (target.test_repo, repo):
            asked[where] = client.get_blob(where, digest)
        evidence.transcript(client.transcript)
    for where, answer in asked.items():
        if answer.status_code in (301, 302, 303, 307, 308):
            served = _get(target, steps, answer.headers.get("location", ""))
            leaked = served.status_code == 200 and image.layers[0].data[:64] in served.content
            fail(SECURITY, f"DTR signed a redirect for {target.dtr_user} to {digest[:19]}, a "
                 f"blob only in {repo}, asked through {where}; the cache then answered "
                 f"{served.status_code}{' with its bytes' if leaked else ''}",
                 "DTR must answer 404 BLOB_UNKNOWN for a blob not linked into the requested "
                 "repository (update DTR); until then, do not share caches between teams")
        if answer.status_code == 200:
            fail(SECURITY, f"DTR served {digest[:19]}, a blob only in {repo}, to "
                 f"{target.dtr_user} through {where}", "check DTR's repository permissions")
    evidence.note(f"{digest[7:19]} only in {repo}: asked as {target.dtr_user} through "
                  + ", ".join(f"{w} -> {a.status_code}" for w, a in asked.items())
                  + f"; its owner gets {own.status_code}; no redirect")


@pytest.mark.static
def test_no_private_key_in_the_deployment_directory(target, evidence):
    """As the seed's last step asks, no private key is left in the deployment directory."""
    if target.deploy_dir is None:
        pytest.skip("no --deploy-dir: nothing to inspect")
    files = [p for p in Path(target.deploy_dir).rglob("*") if p.is_file()]
    if not files:
        pytest.skip(f"not checked: {target.deploy_dir} holds no file (is it the deployment "
                    "directory?)")
    found = [p for p in files if p.stat().st_size < 1_000_000
             and b"PRIVATE KEY-----" in p.read_bytes()]
    if found:
        fail(FILES, f"{len(found)} private key file(s) left in {target.deploy_dir}: "
             f"{', '.join(str(p.relative_to(target.deploy_dir)) for p in found)}",
             "once deployed (swarm keeps its own copy as a secret), delete them: rm -rf certs")
    evidence.note(f"{len(files)} files under {target.deploy_dir} read, no private key")


def test_no_secret_in_the_reported_evidence(request, target, evidence):
    """No password, token or key appears in anything this run will put in its reports."""
    texts = []
    for item in request.session.items:
        kept = item.stash.get(EVIDENCE_KEY, None)
        if kept is not None:
            texts += kept.summary + [body for _title, body in kept.sections]
    leaks = [found for text in texts for found in redaction.current().leaks(text)]
    if leaks:
        fail(SECURITY, f"{len(leaks)} secret(s) reached the report's evidence "
             f"({', '.join(sorted(set(leaks)))})", "this is a harness defect: report it")
    evidence.note(f"{len(texts)} evidence texts scanned for {len(redaction.current().values)} "
                  "secret values, JWTs and private keys: none found")
