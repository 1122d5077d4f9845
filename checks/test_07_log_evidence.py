"""Log evidence: the cache's own logs show it fetched the blob and then served it from its copy."""

from __future__ import annotations

import re
import time

import pytest

from fixtures.harness.diagnosis import LOGS, fail, requires
from fixtures.logs import LogLine, LogSourceError

TLS_WORDS = re.compile(r"x509:|certificate|tls:|handshake", re.I)
TLS_KINDS = ("unknown authority", "hostname mismatch", "expired", "not yet valid", "self-signed")


def _lines(target, cycle) -> list[LogLine]:
    if target.cache_logs is None:
        pytest.skip("no --cache-logs: say where the cache logs (docker:CONTAINER, "
                    "service:NAME, file:PATH, cmd:COMMAND) to read its evidence")
    try:
        return target.cache_logs.lines()[cycle.log_start:]
    except LogSourceError as exc:
        fail(LOGS, str(exc), "point --cache-logs at where the cache logs (e.g. "
             "service:dtr-cache_cache for the seed's stack)")


def _evidence_for(lines: list[LogLine], digest: str) -> tuple[str, list[LogLine], list[LogLine]]:
    """("events" | "access" | "", misses, hits) for ``digest`` in the lines.

    "events": this cache's own blob.* events (strong); "access": a registry's access lines for
    the blob (distribution's "response completed": requests seen, hit or miss unknown).
    """
    mine = [line for line in lines if line.get("digest") == digest
            and str(line.get("event", "")).startswith("blob.")]
    if mine:
        misses = [line for line in mine if line.get("event") in ("blob.miss", "blob.join")]
        hits = [line for line in mine if line.get("event") == "blob.hit"]
        return "events", misses, hits
    seen = [line for line in lines if line.get("msg") == "response completed"
            and digest in str(line.get("http.request.uri", ""))]
    return ("access" if seen else ""), seen[:1], seen[1:]


def test_logs_show_the_miss_then_the_hit(target, cycle, evidence):
    """The cache's logs record the miss and then the hit for the very digests pulled."""
    requires("test_5_first_request_misses_and_second_hits")
    digests = list(cycle.first)
    deadline = time.monotonic() + 10  # a line is written as the response ends
    while True:
        lines = _lines(target, cycle)
        found = {d: _evidence_for(lines, d) for d in digests}
        if all(kind == "events" and misses and hits for kind, misses, hits in found.values()):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.3)
    marks = []
    for digest, (kind, misses, hits) in found.items():
        if not kind:
            fail(LOGS, f"the logs read from {target.cache_logs} show no request for "
                 f"{digest[:19]}, which the cache just served: they are not this cache's logs, "
                 "or its log level hides requests", "point --cache-logs at this cache's logs "
                 "(e.g. service:dtr-cache_cache) and keep log.level at info or debug")
        if kind == "access" and (not misses or not hits):
            fail(LOGS, f"the logs read from {target.cache_logs} show {len(misses + hits)} "
                 f"request(s) for {digest[:19]}, which the cache served twice: they look like "
                 "another registry's logs (DTR's?), not this cache's", "point --cache-logs at "
                 "this cache's own logs (e.g. service:dtr-cache_cache)")
        if not misses or not hits:
            fail(LOGS, f"the logs show {'no miss' if not misses else 'no hit'} for "
                 f"{digest[:19]} though it was pulled twice", "the cache is not keeping its "
                 "copies: check storage and blobttl")
        if hits[0].number < misses[0].number:
            fail(LOGS, f"the hit for {digest[:19]} is logged before its miss",
                 "the cache served a copy older than this run: its TTL is not enforced")
        marks += [misses[0].number, hits[0].number]
        strength = ("strong: the cache's own miss/hit events" if kind == "events" else
                    "weak: the requests appear, but these logs do not say hit or miss")
        evidence.note(f"{digest[7:19]}: miss line {misses[0].number}, hit line "
                      f"{hits[0].number} ({strength})")
    evidence.log_excerpt(f"cache logs ({target.cache_logs})", lines, marks)


def test_no_tls_errors_in_the_cache_logs(target, cycle, evidence):
    """While the checks ran, the cache logged no TLS failure (towards DTR or from clients)."""
    requires("test_cache_trusts_dtr", "test_client_trusts_the_server[client->cache]")
    lines = _lines(target, cycle)
    bad = [line for line in lines
           if (line.get("event") == "upstream.error" and line.get("kind") in TLS_KINDS)
           or (line.get("level") in ("error", "warning") and TLS_WORDS.search(line.raw))]
    if bad:
        evidence.log_excerpt("TLS errors in the cache's logs", lines, [b.number for b in bad])
        first = bad[0]
        kind = first.get("kind") or "tls error"
        fail("cache->DTR" if first.get("event") == "upstream.error" else LOGS,
             f"the cache logged {len(bad)} TLS failure(s), first: {kind} "
             f"({str(first.get('detail') or first.raw)[:200]})",
             "make the cache trust DTR's CA: the seed's certs/dtr.cert.pem "
             "(curl -sk https://<dtr>/ca) listed under cas: in config.yml")
    evidence.note(f"{len(lines)} log lines read, no TLS error")
