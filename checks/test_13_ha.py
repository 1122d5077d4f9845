"""HA: every replica behind the balancer answers, presents a valid chain for the registered
name, serves from one shared storage and holds the same http.secret; the balancer passes the
cache's certificate and DTR's signed query through. Skipped, saying how to enable it, when
fewer than two replicas are known (a single cache, or no --cache-replicas)."""

from __future__ import annotations

import httpx
import pytest

from dtr_cache_check.probes.redaction import redact
from dtr_cache_check.probes.registry import verify_digest
from dtr_cache_check.steps import ha, replicas
from dtr_cache_check.steps.findings import CLIENT_CACHE, CONFIG, PULL, fail, requires
from dtr_cache_check.steps.pullcycle import FIRST_PULL, SECOND_PULL, TRUSTS_CACHE

pytestmark = [pytest.mark.family("HA"), pytest.mark.hop(CLIENT_CACHE), pytest.mark.shape("ha")]

SERVER_ANSWERS = ha.SERVER_ANSWERS
ANSWERS = ha.ANSWERS


def _known(target):
    found, how = replicas.known(target)
    if not found:  # the plugin tells a single cache (not applicable) before the check runs
        pytest.skip(f"{how} (one replica is no HA to check)")
    return found, how


def test_every_replica_answers(target, evidence):
    """Each replica behind the balancer answers /health (or /v2/) for the registered name."""
    found, how = _known(target)
    results = {replica.label: ha.answers(target, replica) for replica in found}
    for label, (_ok, said) in results.items():
        evidence.note(f"{label}: {said}")
    down = [label for label, (ok, _said) in results.items() if not ok]
    if down:
        balancer = ha.answers(target, replicas.Replica("the balancer",
                                                      replicas.registered(target)))
        still = ("the balancer still serves through the others"
                 if balancer[0] else f"the balancer does not answer either ({balancer[1]})")
        fail(CLIENT_CACHE, f"replica {down[0]} is down ({results[down[0]][1]})"
             + (f", and {', '.join(down[1:])}" if down[1:] else "") + f"; {still}",
             f"restart {down[0]} (docker start / let the orchestrator reschedule it), or "
             "remove it from the balancer's backends until it is mended")
    evidence.note(f"{len(found)} replicas ({how}) answer")


def test_every_replica_presents_a_valid_chain_for_the_registered_name(target, steps, evidence):
    """Each replica, asked at its own address for the registered name, serves a chain that
    verifies for that name with the cache's CA."""
    _known(target)  # no HA: skip here, never as a consequence of the other HA checks' skips
    try:
        evidence.note(ha.replica_chains(target, steps))
    except pytest.skip.Exception:
        # a replica down; or every replica serves the same faulty certificate, which the
        # client->cache checks report through the balancer
        requires(ANSWERS, SERVER_ANSWERS, *ha.CLIENT_CACHE_TLS)
        raise


@pytest.mark.hop(PULL)
@pytest.mark.writes
def test_blob_fetched_through_one_replica_is_a_hit_on_every_other(target, steps, cycle,
                                                                   push_image, evidence):
    """A fresh blob fetched through DTR's signed redirect from one replica is then a hit, with
    the same digest, on every other replica: they share one storage."""
    _known(target)
    try:
        evidence.note(ha.shared_storage(target, steps, cycle, push_image))
    except pytest.skip.Exception:
        # a replica down, or a cache that keeps no copy at all: those checks' findings
        requires(ANSWERS, SECOND_PULL)
        raise


@pytest.mark.hop(CONFIG)
def test_replicas_share_the_http_secret(target, evidence):
    """Every replica's effective http.secret (REGISTRY_HTTP_SECRET over config.yml) is the
    same, compared by SHA-256 fingerprint: the secret itself is never shown."""
    found = ha.require_every_replica_answers(target)
    read = {replica.label: replicas.http_secret(replica) for replica in found}
    unread = [f"{label} ({why})" for label, (fp, why) in read.items() if fp is None]
    if unread:
        pytest.skip(f"the http.secret of {', '.join(unread)} cannot be read: give a host "
                    "spec per replica (--cache-replica-hosts docker://R1,ssh://node2,...) "
                    "whose /config.yml and environment can be read")
    for label, (fp, where) in read.items():
        evidence.note(f"{label}: {fp} ({where})")
    unset = [label for label, (fp, _where) in read.items() if fp == replicas.UNSET]
    if unset:
        fail(CONFIG, f"replica {unset[0]} has no http.secret: each start makes up a random "
             "one, so the replicas never share it", "set one random http.secret (openssl "
             "rand -hex 32) in the config.yml every replica reads")
    groups: dict[str, list[str]] = {}
    for label, (fp, _where) in read.items():
        groups.setdefault(fp, []).append(label)
    if len(groups) > 1:
        shown = "; ".join(f"{', '.join(labels)}: {fp}" for fp, labels in groups.items())
        fail(CONFIG, f"the replicas' http.secret differ (SHA-256 fingerprints: {shown})",
             "give every replica behind the balancer the same http.secret (one config.yml, or "
             "the same REGISTRY_HTTP_SECRET), then restart them")
    evidence.note(f"{len(found)} replicas share one http.secret")


@pytest.mark.writes
def test_balancer_keeps_the_certificate_and_the_query(target, steps, cycle, evidence):
    """Through the registered URL, the certificate is one of the replicas' own, a signed
    redirect is served (200, right digest) and the same URL without its query is refused."""
    ha.require_every_replica_answers(target)
    requires(SERVER_ANSWERS)
    evidence.note(ha.balancer_certificate(target, steps))
    redirects = cycle.redirected()
    # through the balancer any replica answers
    requires(TRUSTS_CACHE, FIRST_PULL, ha.REPLICA_CHAINS)
    digest, redirect = next(iter(redirects.items()))
    url = redirect.request.url.join(redirect.headers["location"])
    with httpx.Client(verify=target.trust("cache"), timeout=60) as http:
        signed = http.get(url)
        bare = http.get(str(url).split("?", 1)[0])
    shown = redact(str(url))
    if signed.status_code != 200 or not verify_digest(signed.content, digest):
        ha.judge_refusal_through_balancer(target, url, digest, signed.status_code)
        fail(CLIENT_CACHE, f"{shown} through the balancer answered {signed.status_code}, "
             f"digest {'verified' if verify_digest(signed.content, digest) else 'not matching'}"
             ", and the replicas refuse it too", f"see {FIRST_PULL}")
    evidence.note(f"{shown}: 200 through the balancer, digest {digest[:19]} verified")
    if bare.status_code == 200:
        requires("test_tampered_token_gets_nothing")
        fail(CLIENT_CACHE, f"without its signed query, {shown.split('?')[0]} is still served "
             "(200) through the balancer: candidates are a balancer that caches and serves "
             "blobs itself, or a cache that does not check DTR's token",
             "make the balancer a passthrough (no caching, haproxy mode tcp / nginx stream) "
             "and the cache check every token")
    evidence.note(f"without its query: {bare.status_code} (refused)")
