"""Chains of caches: the user's (leaf) cache fetches from a regional cache, which fetches from
DTR. The guides: each cache lists only its next hop and trusts only its CA; avoid more than two
levels; every cache in a chain is registered with DTR; the user points at the leaf.

The chain is walked from the leaf's config.yml through each hop's (probes.chain). A cache whose
upstream is DTR itself is not a chain: these checks skip, saying so. The leaf's own hop is
judged by test_04_tls_between; here are the hops behind it. A cache chained to itself is a
static rule (test_01_config::test_upstream_is_not_the_cache_itself); longer loops are here.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from dtr_cache_check.probes import logevidence
from dtr_cache_check.probes.deployed_files import downstream_options
from dtr_cache_check.probes.logs import LogLine, LogSource, LogSourceError
from dtr_cache_check.steps.chain import DTR, HOPS_TRUST, LOOP, Walk, judge_hops_trust, walk
from dtr_cache_check.steps.findings import CACHE_CHAIN, fail, requires
from dtr_cache_check.steps.pullcycle import judge_cache_answer, transport_failure
from dtr_cache_check.steps.target import normalize_url

pytestmark = [pytest.mark.family("cache chain"), pytest.mark.hop(CACHE_CHAIN),
              pytest.mark.shape("chain")]

NOT_A_CHAIN = ("not a chain: the cache's upstream is DTR itself (for a chain, give the leaf "
               "cache with --chain-deploy-dirs naming the caches behind it, next hop first)")
MAX_DEPTH = 2


@pytest.fixture(scope="session")
def chain(target) -> Walk:
    """The chain walked from the leaf (each check judges what it needs of it)."""
    try:
        return walk(target)
    except ValueError as exc:
        pytest.skip(f"a config.yml of the chain is unreadable ({exc}): see the configuration "
                    "checks")


def _is_a_chain(found: Walk) -> None:
    """Skip, saying why, when there is no chain to judge."""
    if not found.hops:
        pytest.skip(f"not checked: {found.why}")
    if not found.is_chain:
        pytest.skip(NOT_A_CHAIN)


def _complete(found: Walk) -> None:
    """Skip when the walk stopped before DTR (a loop is the loop check's)."""
    _is_a_chain(found)
    requires("test_chain_does_not_loop")
    if found.end == LOOP:
        pytest.skip(f"the chain loops ({found.why}): see test_chain_does_not_loop")
    if found.end != DTR:
        pytest.skip(f"the chain could not be followed to DTR: {found.why}")


@pytest.mark.requires("test_upstream_is_not_the_cache_itself")  # a self-chain: static
def test_chain_does_not_loop(chain, evidence):
    """Following the upstreams from the leaf never comes back to a cache already seen (a loop
    never reaches DTR: every miss goes round until it times out)."""
    _is_a_chain(chain)
    if chain.end == LOOP:
        last = chain.hops[-1]
        fail(CACHE_CHAIN, f"the chain loops: {chain.why} (the upstream of {last.url} is a cache "
             "already in the chain, so a miss never reaches DTR)",
             f"point the upstreams of {last.url} at DTR or at a cache nearer DTR, never back "
             "down the chain")
    if chain.end != DTR:
        pytest.skip(f"not checked past {chain.hops[-1].url}: {chain.why}")
    evidence.note(f"no loop: {chain.path()}")


def test_chain_is_at_most_two_deep(chain, evidence):
    """At most two caches are chained (leaf and regional). The guides advise against deeper
    chains (each level adds a miss's latency and a cache to keep trusted and registered); it is
    advice, not a defect that stops pulls, so this check is not one of the verdict's essential
    checks (fixtures/harness/verdict.py): a deeper chain fails it, READY is then withheld by
    the failure like any other, but a chain it cannot see does not leave the verdict unproven."""
    _complete(chain)
    depth = len(chain.hops)
    if depth > MAX_DEPTH:
        fail(CACHE_CHAIN, f"{depth} caches are chained ({chain.path()}): the guides advise against "
             f"chains deeper than two levels",
             f"point the leaf at a cache one hop from DTR (the upstream of "
             f"{chain.hops[MAX_DEPTH - 1].url} should be DTR itself)")
    evidence.note(f"{depth} caches deep: {chain.path()}")


@pytest.mark.requires("test_cache_is_registered_in_dtr")  # the leaf's own, and the listing
def test_chain_every_cache_is_registered(chain, cache_listing, evidence):
    """Every cache of the chain (the leaf and each behind it) is registered in DTR, by its URL:
    the guides ask it of every cache in a chain."""
    _complete(chain)
    registered = {normalize_url(str(c["host"])): c for c in cache_listing if c.get("host")}
    evidence.text("GET /api/v0/content_caches", "\n".join(
        f"{c.get('id')}  {c.get('name')}  {c.get('host')}" for c in cache_listing) or "(none)")
    for hop in chain.hops:
        found = next((registered[u] for u in sorted(hop.aliases) if u in registered), None)
        if found is None:
            name = hop.name or "region-x"
            fail(CACHE_CHAIN, f"the cache {hop.url} of the chain ({chain.path()}) is not "
                 f"registered in DTR (registered: {', '.join(sorted(registered)) or 'none'})",
                 f'register it as an admin, as the guides ask of every cache in a chain: POST '
                 f'/api/v0/content_caches {{"name": "{name}", "host": "{hop.url}"}}')
        evidence.note(f"{hop.url}: registered as {found.get('name')!r}")


def test_chain_hop_trusts_its_next_hop(target, chain, steps, evidence):
    """Each cache behind the leaf reaches its upstream (from its config.yml) over TLS, and the
    served chain verifies against that cache's own cas files (the leaf's hop is
    test_04_tls_between::test_cache_trusts_dtr). A step (probes.chain.judge_hops_trust): the
    pull cycle's first pull stands on it, so a regional that cannot fetch is diagnosed here,
    once, and the pull's failures say "consequence of" this check."""
    _complete(chain)
    if len(chain.hops) < 2:
        pytest.skip(NOT_A_CHAIN)
    steps.run(HOPS_TRUST, lambda: judge_hops_trust(target))


def _read(source: LogSource, since: datetime, digests: list[str], *,
          want_hits: bool) -> list[LogLine]:
    """A cache's lines since ``since``, re-read for a few seconds until every digest shows
    (a line is written as its response ends)."""
    deadline = time.monotonic() + 10
    while True:
        lines = source.lines(since)
        found = [logevidence.for_blob(lines, d) for d in digests]
        if all(e.misses and (e.hits or not want_hits) for e in found) \
                or time.monotonic() > deadline:
            return lines
        time.sleep(0.3)


@pytest.mark.writes
@pytest.mark.requires("test_5_first_request_misses_and_second_hits",  # the leaf keeps copies
                       "test_chain_hop_trusts_its_next_hop")
def test_chain_first_pull_misses_on_every_cache_and_second_hits_the_leaf(
        target, chain, push_image, evidence):
    """A fresh image pulled twice through DTR as the test user: the first pull misses on the
    leaf and on every cache behind it (each fetched once from its upstream), the second is a
    hit on the leaf, and no cache behind it sees the blob again."""
    _complete(chain)
    behind = chain.hops[1:]
    if not behind:
        pytest.skip(NOT_A_CHAIN)
    if target.cache_logs is None:
        pytest.skip("no --cache-logs: the leaf's hit and miss are read from its logs")
    no_logs = [h.url for h in behind if h.peer is None or h.peer.logs is None]
    if no_logs:
        pytest.skip(f"no logs for {', '.join(no_logs)}: give --chain-logs (where each cache "
                    "behind the leaf logs, next hop first)")
    began = datetime.now(UTC)
    image = push_image(layers=1)
    digests = [b.digest for b in image.blobs]
    with target.client() as client:
        for attempt in ("first", "second"):
            for digest in digests:
                try:
                    redirect = client.get_blob(target.test_repo, digest)
                    if redirect.status_code != 307:
                        fail(CACHE_CHAIN, f"the {attempt} blob GET at DTR answered "
                             f"{redirect.status_code}, not a 307 to the leaf",
                             "see the pull cycle's checks (test_06_pull_cycle)")
                    judge_cache_answer(target, digest, client.follow(redirect), began)
                except httpx.TransportError as exc:
                    transport_failure(CACHE_CHAIN, target.cache_url or target.dtr_url, exc)
        evidence.transcript(client.transcript)
    try:
        leaf = _read(target.cache_logs, began, digests, want_hits=True)
        others = [(h, _read(h.peer.logs, began, digests, want_hits=False)) for h in behind]
    except LogSourceError as exc:
        fail(CACHE_CHAIN, f"a cache's logs cannot be read: {exc}",
             "point --cache-logs and --chain-logs at where each cache logs")
    for digest in digests:
        seen = logevidence.for_blob(leaf, digest)
        if seen.kind != "events":
            pytest.skip(f"the leaf's logs ({target.cache_logs}) label no hit or miss for "
                        f"{digest[:19]}: this check needs caches that log blob.hit/blob.miss")
        if not seen.misses or not seen.hits or seen.hits[0].number < seen.misses[0].number:
            fail(CACHE_CHAIN, f"the leaf {chain.hops[0].url} logged "
                 f"{[line.get('event') for line in seen.served]} for {digest[:19]}, not a "
                 "miss then a hit", "the leaf is not keeping its copies: check its storage "
                 "and blobttl")
        evidence.log_excerpt(f"leaf {chain.hops[0].url} ({target.cache_logs})", leaf,
                             [seen.misses[0].number, seen.hits[0].number])
        for hop, lines in others:
            at = logevidence.for_blob(lines, digest)
            if not at.kind:
                _missed_hop(chain, hop, digest, lines)
            if at.kind == "events" and (len(at.served) != 1 or not at.misses):
                fail(CACHE_CHAIN, f"the cache {hop.url} logged "
                     f"{[x.get('event') for x in at.served]} for {digest[:19]} across two "
                     "pulls: expected one miss (the second pull is the leaf's hit and must "
                     "not reach it)",
                     "the leaf is not keeping its copies, or something else pulls through "
                     f"{hop.url}: check the leaf's storage and blobttl")
            if at.kind == "access" and len(at.served) != 1:
                fail(CACHE_CHAIN, f"the cache {hop.url} answered {len(at.served)} requests for "
                     f"{digest[:19]} across two pulls, not one", "the leaf is not keeping "
                     "its copies: check its storage and blobttl")
            evidence.log_excerpt(f"{hop.url} ({hop.peer.logs})", lines,
                                 [x.number for x in at.served])
            evidence.note(f"{digest[7:19]}: {hop.url} saw one request (line "
                          f"{at.served[0].number}, {at.served[0].get('event') or 'access'})")
        evidence.note(f"{digest[7:19]}: leaf miss line {seen.misses[0].number}, hit line "
                      f"{seen.hits[0].number}")
    _dtr_saw_one_fetch(target, began, digests, evidence)


def _missed_hop(chain: Walk, hop, digest: str, lines: list[LogLine]) -> None:
    """Fail for a cache behind the leaf that logged nothing for a blob the leaf missed: the
    leaf fetched it another way (an extra upstream), or its logs are not where we read."""
    ahead = chain.hops[chain.hops.index(hop) - 1]
    listed = [u for u in (downstream_options(ahead.files.effective()[0]) or {}).get(
        "upstreams") or [] if isinstance(u, str)] if ahead.files else []
    others = [u for u in listed if normalize_url(u) not in hop.aliases]
    if others:
        fail(CACHE_CHAIN, f"the cache {hop.url} logged no request for {digest[:19]}, which "
             f"{ahead.url} missed: {ahead.url} also lists {', '.join(others)} as upstreams "
             "(used round-robin), so its misses skip the chain",
             f"list only the next hop in the upstreams of {ahead.url} (each cache of a chain "
             f"lists only its next hop): remove {', '.join(others)}")
    fail(CACHE_CHAIN, f"the cache {hop.url} logged no request for {digest[:19]}, which {ahead.url} "
         f"missed ({len(lines)} lines read): these are not its logs, or {ahead.url} did not "
         "fetch through it", f"point --chain-logs at the logs of {hop.url}, and the upstreams "
         f"of {ahead.url} at {hop.url} only")


def _dtr_saw_one_fetch(target, began: datetime, digests: list[str], evidence) -> None:
    """With DTR's logs, the last cache's single fetch per blob, seen from DTR's side."""
    if target.dtr_logs is None:
        evidence.note("DTR's side not read (no --dtr-logs)")
        return
    try:
        lines = target.dtr_logs.lines(began)
    except LogSourceError:
        return
    for digest in digests:
        fetches = logevidence.upstream_fetches(lines, digest)
        if len(fetches) > 1:
            fail(CACHE_CHAIN, f"DTR's logs show {len(fetches)} fetches of {digest[:19]} across two "
                 "pulls through the chain, not one", "the chain is not keeping its copies: "
                 "check each cache's storage and blobttl")
        if fetches:
            evidence.note(f"{digest[7:19]}: DTR served it once to the chain (line "
                          f"{fetches[0].number})")
