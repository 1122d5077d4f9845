"""Log evidence: the cache's own logs, read for the window of this run (by time, with the
run's fresh digests as the nonce), show it fetched the blob and then served it from its copy."""

from __future__ import annotations

import pytest

from dtr_cache_check.probes import logevidence
from dtr_cache_check.probes.logs import LogLine, LogSourceError
from dtr_cache_check.probes.refusal import refused_handshake
from dtr_cache_check.steps import ha
from dtr_cache_check.steps.findings import CACHE_DTR, LOGS, fail
from dtr_cache_check.steps.pullcycle import cache_lines

pytestmark = [pytest.mark.family("log evidence"), pytest.mark.hop(LOGS)]

# What Go's TLS server says of 16 zero bytes where a ClientHello belongs (the control).
CONTROL_WORDS = "first record does not look like a tls handshake"
NO_LOGS = ("no --cache-logs: say where the cache logs (docker:CONTAINER, service:NAME, "
           "file:PATH, cmd:COMMAND) to read its evidence")


def _this_caches_lines(target, cycle) -> str:
    """Where the logs show this cache answering this run's requests (its fresh digests);
    skip when they do not."""
    lines = cache_lines(target, cycle.started, wait_for=lambda ls: any(
        logevidence.for_blob(ls, d, target.agent).served for d in cycle.first),
        elsewhere=lambda ls: all(logevidence.for_blob(ls, d, target.agent).others
                                 for d in cycle.first)) or []
    for digest in cycle.first:
        seen = logevidence.for_blob(lines, digest, target.agent)
        if seen.served:
            return (f"{digest[7:19]} answered at line {seen.served[0].number} "
                    f"({seen.kind})")
    pytest.skip(f"{target.cache_logs} does not show this cache answering this run's requests "
                f"(none of its fresh digests {', '.join(d[7:19] for d in cycle.first)} is "
                "answered there to this run's client): not this cache's logs, so no absence "
                "can be judged in them")


def _lines(target, since) -> list[LogLine]:
    if target.cache_logs is None:
        pytest.skip(NO_LOGS)
    try:
        lines = target.cache_logs.lines(since)
    except LogSourceError as exc:
        fail(LOGS, str(exc), "point --cache-logs at where the cache logs (e.g. "
             "service:dtr-cache_cache for the seed's stack)")
    if not lines:
        pytest.skip(f"not checked: {target.cache_logs} gave no line written since "
                    f"{since:%H:%M:%S} UTC (rotated, restarted, or not this cache's logs): "
                    "point --cache-logs at the cache's current logs")
    return lines


@pytest.mark.requires("test_blobttl_has_a_unit", "test_5_first_request_misses_and_second_hits")
def test_logs_show_the_miss_then_the_hit(target, cycle, evidence):
    """The cache's logs record the miss and then the hit for the very digests pulled."""
    cycle.second_pull()
    # A unit-less blobttl expires copies at once; a cache that kept no copy was diagnosed by
    # the hit check already: either explains a missing hit here.
    if target.cache_logs is None:
        pytest.skip(NO_LOGS)
    digests = list(cycle.first)

    def complete(lines):  # a miss and a hit line for each, or lines of no hit to wait for
        return all(logevidence.miss_and_hit_or_none(lines, d, target.agent) for d in digests)

    cache_lines(target, cycle.started, wait_for=complete)
    lines = _lines(target, cycle.started)
    marks = []
    for digest in digests:
        seen = logevidence.for_blob(lines, digest, target.agent)
        if not seen.kind and seen.others:
            fail(LOGS, f"the logs read from {target.cache_logs} answer {digest[:19]} only to "
                 f"other clients than this run's ({len(seen.others)} line(s), e.g. "
                 f"{logevidence.describe(seen.others[0])}): they look like another registry's "
                 "logs (DTR's?), not this cache's", "point --cache-logs at this cache's own "
                 "logs (e.g. service:dtr-cache_cache)")
        if not seen.kind:
            pytest.skip(f"the {len(lines)} lines read from {target.cache_logs} since the pull "
                        f"do not show this cache answering this run's requests for "
                        f"{digest[:19]} (served twice): not this cache's logs, or its log "
                        "level hides requests (point --cache-logs at its logs, log.level info)")
        if seen.kind == "access":
            if len(seen.served) < 2:
                fail(LOGS, f"the logs read from {target.cache_logs} show {len(seen.served)} "
                     f"request(s) answered 200 for {digest[:19]}, which the cache served "
                     "twice: they look like another registry's logs (DTR's?), not this "
                     "cache's", "point --cache-logs at this cache's own logs (e.g. "
                     "service:dtr-cache_cache)")
            marks += [line.number for line in seen.served[:2]]
            evidence.note(f"{digest[7:19]}: served 200 at lines {seen.served[0].number} and "
                          f"{seen.served[1].number} (access lines: these logs do not say hit "
                          "or miss; the hit itself is judged by test_5)")
            continue
        if not seen.misses or not seen.hits:
            fail(LOGS, f"the logs show {'no miss' if not seen.misses else 'no hit'} for "
                 f"{digest[:19]} though it was pulled twice", "the cache is not keeping its "
                 "copies: check storage and blobttl")
        if seen.hits[0].number < seen.misses[0].number:
            fail(LOGS, f"the hit for {digest[:19]} is logged before its miss",
                 "the cache served a copy older than this run: its TTL is not enforced")
        marks += [seen.misses[0].number, seen.hits[0].number]
        evidence.note(f"{digest[7:19]}: {seen.misses[0].get('event')} line "
                      f"{seen.misses[0].number}, blob.hit line {seen.hits[0].number} "
                      "(the cache's own events)")
    evidence.log_excerpt(f"cache logs ({target.cache_logs}, since {cycle.started:%H:%M:%S})",
                         lines, marks)


@pytest.mark.requires("test_cache_trusts_dtr", "test_client_trusts_the_server[client->cache]")
def test_no_tls_errors_in_the_cache_logs(target, steps, cycle, evidence):
    """While the checks ran, and after the cache fetched from DTR in this run (the pull cycle's
    first pull), the cache logged no TLS failure (towards DTR or from clients)."""
    if target.no_writes:
        pytest.skip("--no-writes: without this run's pull there are no fresh digests to tell "
                    "this cache's lines by (drop --no-writes to run it)")
    cycle.first_pull()  # the cache's TLS towards DTR was exercised in this window
    if target.cache_logs is None:
        pytest.skip(NO_LOGS)
    # These lines must be this cache's answers to this run (its fresh digests)...
    mine = _this_caches_lines(target, cycle)
    # ... and this cache must log a refused handshake at all: a control it must refuse.
    try:
        control = refused_handshake(target.cache_url)
    except OSError as exc:
        pytest.skip(f"the control handshake could not reach {target.cache_url}: {exc}")

    def controls_in(lines):
        # By the control's own port; behind a NAT (swarm's routing mesh) the port is not the
        # one the cache sees: then by the control's words, written since it was made.
        mine = logevidence.refused_handshakes(lines, control.local_port)
        return mine or [line for line in logevidence.refused_handshakes(lines)
                        if CONTROL_WORDS in str(line.get("error", "")).lower()
                        and (line.time is None or line.time >= control.made)]

    # A refused handshake is logged as it fails: a few seconds cover any log shipping.
    lines = cache_lines(target, target.started, wait_for=lambda ls: bool(controls_in(ls)),
                        patience=3.0) or []
    controls = controls_in(lines)
    if not controls:
        pytest.skip(f"{target.cache_logs} shows this cache answering this run ({mine}), but "
                    "not the handshake the checker made it refuse (from port "
                    f"{control.local_port}): this cache does not log refused handshakes, so "
                    "'no TLS error' cannot be told from 'not logged'")
    evidence.note(f"control: the refused handshake from port {control.local_port} is logged "
                  f"at line {controls[0].number}; {mine}")
    bad = [line for line in logevidence.tls_failures(lines) if line not in controls]
    if bad:
        evidence.log_excerpt("TLS errors in the cache's logs", lines, [b.number for b in bad])
        # HA: a client refusing one replica's certificate shows here as a handshake failure
        ha.replicas_first(target, steps)
        first = bad[0]
        kind = first.get("kind") or logevidence.tls_class_in(first.raw) or "tls error"
        # A refused handshake is a client's (Go's "TLS handshake error from", or the
        # reference's event); any other TLS failure is the cache's own call upstream.
        inbound = bool(logevidence.refused_handshakes([first]))
        fail(LOGS if inbound else CACHE_DTR,
             f"the cache logged {len(bad)} TLS failure(s), first: {kind} "
             f"({str(first.get('detail') or first.raw)[:200]})",
             "make the cache trust DTR's CA: the seed's certs/dtr.cert.pem "
             "(curl -sk https://<dtr>/ca) listed under cas: in config.yml")
    evidence.note(f"{len(lines)} lines logged since {target.started:%H:%M:%S} UTC (lines "
                  f"{lines[0].number}-{lines[-1].number}), none a TLS failure")
