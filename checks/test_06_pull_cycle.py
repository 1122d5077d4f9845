"""The pull cycle: push to DTR, manifest from DTR, blobs redirected to the cache and served
by it without Authorization, a miss and then a hit. Numbered: each step stands on the last."""

from __future__ import annotations

import contextlib
from typing import NoReturn

import httpx
import pytest

from cache_under_test.tls import classify
from fixtures.harness.diagnosis import (
    CACHE_DTR,
    CLIENT_CACHE,
    CLIENT_DTR,
    PULL,
    REGISTRATION,
    fail,
    requires,
)
from fixtures.logs import LogSourceError
from fixtures.registry import RegistryError, verify_digest

pytestmark = pytest.mark.usefixtures("writes")


def _transport_failure(hop: str, url: str, exc: Exception) -> NoReturn:
    kind = classify(exc)
    fail(hop, f"cannot connect to {url}: {kind} ({exc})",
         "see the TLS checks for this hop; for unknown authority give the client the CA "
         "(--dtr-ca / --cache-ca)")


def test_1_push_a_fresh_image_to_dtr(target, push_image, cycle, evidence):
    """A freshly synthesized image is pushed to DTR's test repository as the test user."""
    requires("test_client_trusts_the_server[client->DTR]")
    if target.cache_logs is not None:
        with contextlib.suppress(LogSourceError):  # the log checks say why, if it persists
            cycle.log_start = len(target.cache_logs.lines())
    try:
        cycle.image = push_image()
    except RegistryError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        fail(CLIENT_DTR, f"DTR refused to store the test image in {target.test_repo} ({status})",
             f"give {target.dtr_user} push rights on {target.test_repo}, or pick one with "
             "--test-repo", str(exc))
    except httpx.TransportError as exc:
        _transport_failure(CLIENT_DTR, target.dtr_url, exc)
    evidence.note(f"pushed {target.test_repo}:check ({len(cycle.image.blobs)} blobs)")


def test_2_manifest_comes_from_dtr(target, cycle, evidence):
    """The manifest is served by DTR itself (200, no redirect): DTR stays the source of truth."""
    requires("test_1_push_a_fresh_image_to_dtr")
    with target.client() as client:
        answer = client.get_manifest(target.test_repo, "check")
        evidence.transcript(client.transcript)
    if answer.status_code != 200:
        fail(CLIENT_DTR, f"the manifest GET answered {answer.status_code}, not 200",
             "manifests must come from DTR; check the user's pull rights")
    if answer.content != cycle.image.manifest:
        fail(CLIENT_DTR, "DTR returned a different manifest than the one pushed",
             "check that nothing else writes to the test repository")
    evidence.note("manifest 200 from DTR")


def test_3_blobs_redirect_to_the_registered_cache(target, cycle, evidence):
    """Every blob GET at DTR answers 307 to the registered cache's host and port."""
    requires("test_1_push_a_fresh_image_to_dtr", "test_user_points_at_the_cache")
    expected = target.cache_hostport()
    with target.client() as client:
        for blob in cycle.image.blobs:
            answer = client.get_blob(target.test_repo, blob.digest)
            cycle.redirects[blob.digest] = answer
        evidence.transcript(client.transcript)
    for digest, answer in cycle.redirects.items():
        if answer.status_code == 200:
            fail(REGISTRATION, f"DTR served {digest[:19]} itself (200) instead of redirecting "
                 f"{target.dtr_user} to the cache",
                 f"point {target.dtr_user}'s Content Cache setting at the cache")
        if answer.status_code != 307:
            fail(CLIENT_DTR, f"the blob GET answered {answer.status_code}, not a 307",
                 "check the user's pull rights on the test repository")
        location = httpx.URL(answer.headers["location"])
        if f"{location.host}:{location.port or 443}" != _with_port(expected):
            fail(REGISTRATION, f"DTR redirects to {location.host}:{location.port}, not to the "
                 f"cache at {expected}", "register the cache with its external URL")
    evidence.note(f"{len(cycle.redirects)} blobs: 307 -> {expected}")


def _with_port(hostport: str | None) -> str:
    return hostport if hostport and ":" in hostport else f"{hostport}:443"


def test_4_cache_serves_each_blob_without_authorization(target, cycle, evidence):
    """Following each redirect without Authorization gives 200 and exactly the pushed bytes."""
    requires("test_3_blobs_redirect_to_the_registered_cache",
             "test_client_trusts_the_server[client->cache]", "test_cache_trusts_dtr",
             "test_cache_upstream_is_a_registry")
    with target.client() as client:
        for digest, redirect in cycle.redirects.items():
            try:
                answer = client.follow(redirect)
            except httpx.TransportError as exc:
                _transport_failure(CLIENT_CACHE, target.cache_url, exc)
            cycle.first[digest] = answer
            _judge_cache_answer(target, digest, answer)
        evidence.transcript(client.transcript)
    evidence.note(f"{len(cycle.first)} blobs 200 from the cache, digests verified")


def _judge_cache_answer(target, digest: str, answer: httpx.Response) -> None:
    if answer.status_code in (502, 503, 504):
        fail(CACHE_DTR, f"the cache could not get {digest[:19]} from DTR "
             f"({answer.status_code}: {answer.text[:300]})",
             "make the cache trust DTR's CA (cas: in config.yml, the seed's dtr.cert.pem) and "
             "check that upstreams: names DTR's URL and port")
    if answer.status_code in (401, 403):
        fail(CLIENT_CACHE, f"the cache refused DTR's signed redirect ({answer.status_code}: "
             f"{answer.text[:200]})",
             "the cache must reach DTR to learn its signing keys: check upstreams and cas")
    if answer.status_code != 200:
        fail(CLIENT_CACHE, f"the cache answered {answer.status_code} for {digest[:19]}",
             "read the cache's logs for this digest")
    if "authorization" in answer.request.headers:
        fail(PULL, "the redirect was followed with an Authorization header",
             "this is a harness defect: report it")
    if not verify_digest(answer.content, digest):
        fail(CLIENT_CACHE, f"the cache served bytes that do not match {digest[:19]}",
             "the cache's storage is corrupt or it serves unverified upstream bytes: clear its "
             "storage and check its version")


def test_5_first_request_misses_and_second_hits(target, cycle, evidence):
    """A second request for the same blob is a hit: the cache kept the copy it fetched."""
    requires("test_4_cache_serves_each_blob_without_authorization", "test_blobttl_has_a_unit")
    with target.client() as client:
        for digest in cycle.first:
            redirect = client.get_blob(target.test_repo, digest)
            answer = client.follow(redirect)
            _judge_cache_answer(target, digest, answer)
            cycle.second[digest] = answer
        evidence.transcript(client.transcript)
    marks = {(cycle.first[d].headers.get("x-cache"), cycle.second[d].headers.get("x-cache"))
             for d in cycle.first}
    if all(first and second for first, second in marks):
        if marks != {("MISS", "HIT")}:
            fail(PULL, f"X-Cache went {sorted(marks)} instead of MISS then HIT",
                 "the cache is not keeping its copies: check storage (rootdirectory, disk "
                 "space) and blobttl")
        evidence.note("MISS then HIT (X-Cache header)")
        return
    evidence.note("no X-Cache header: the log evidence check decides hit or miss")
