"""Clocks and DTR's redirect as the field uses them: DTR's and the cache's clocks agree with
this machine's, their certificates are valid on each other's clocks, and the signed redirect
survives a HEAD, a Range resume, a second use, and shared proxies (it must not be stored)."""

from __future__ import annotations

import pytest

from dtr_cache_check.probes import clock, redirects
from dtr_cache_check.probes.redirects import HopFinding
from dtr_cache_check.probes.tlsprobe import probe
from dtr_cache_check.steps.findings import CLIENT_DTR, fail, requires, unobserved

# The pull cycle's checks the redirect checks stand on (run first; their failure makes these
# "consequence of" it).
REDIRECTED = "test_3_blobs_redirect_to_the_registered_cache"
SERVED = "test_4_cache_serves_each_blob_without_authorization"
# Each asks DTR and the cache over TLS: a hop that does not answer or is not trusted is the TLS
# checks' diagnosis, and these fail as its consequence.
pytestmark = [pytest.mark.family("clock and redirects"), pytest.mark.hop(CLIENT_DTR),
              pytest.mark.requires("test_client_trusts_the_server[client->DTR]",
                                   "test_client_trusts_the_server[client->cache]")]


def _judge(findings: list[HopFinding], evidence) -> None:
    """Evidence for every finding; the first bad one fails the check, the others in its
    details."""
    for found in findings:
        evidence.note(f"{found.probe}: {found.cause}")
    bad = [f for f in findings if not f.ok]
    if bad:
        fail(bad[0].hop, bad[0].cause, bad[0].fix,
             "\n".join(f"{f.cause} ({f.details})" for f in bad))
    if not findings:
        unobserved("nothing to judge")


@pytest.mark.requires("test_server_answers_tls[client->DTR]")
def test_clocks_agree_and_certificates_are_valid_on_them(target, evidence):
    """DTR's and the cache's Date headers are within the skew limit of this machine's clock
    (signed redirects and tokens carry times the other hosts check), and each served
    certificate is valid on the clock of every host that verifies it."""
    readings = {clock.DTR: clock.read_clock(clock.DTR, f"{target.dtr_url}/v2/",
                                            target.trust("dtr"))}
    served = {clock.DTR: probe(target.dtr_url, [target.dtr_ca] if target.dtr_ca else None)}
    if target.cache_url:
        readings[clock.CACHE] = clock.read_clock(clock.CACHE, f"{target.cache_url}/v2/",
                                                 target.trust("cache"))
        served[clock.CACHE] = probe(target.cache_url,
                                    [target.cache_ca] if target.cache_ca else None)
    leaves = {owner: report.leaf for owner, report in served.items() if report.leaf}
    _judge(clock.clock_findings(readings, leaves), evidence)


@pytest.fixture(scope="module")
def layer(target, push_image):
    """A layer of a fresh image of this module's own (so a run of one check needs no pull
    cycle), 256 KiB: enough for a resume from its middle."""
    return push_image(layers=1, layer_size=256 * 1024, tag="redirects").layers[0]


def _through_redirect(target, layer, evidence, probe_of) -> None:
    """Run one redirect probe as the test user on this module's layer, and judge it."""
    with target.client() as client:
        found = probe_of(client, target.test_repo, layer, cache_netloc=target.cache_hostport())
        evidence.transcript(client.transcript)
    _judge([found], evidence)


@pytest.mark.writes
@pytest.mark.requires(REDIRECTED, SERVED)
def test_blob_head_through_the_redirect(target, layer, evidence):
    """HEAD of a blob at DTR (a redirect followed with HEAD) answers 200 with its size."""
    _through_redirect(target, layer, evidence, redirects.head_through_redirect)


@pytest.mark.writes
@pytest.mark.requires(REDIRECTED, SERVED)
def test_range_resume_through_the_redirect(target, layer, evidence):
    """A resumed download (``Range: bytes=N-``) through DTR's redirect gets 206 and exactly
    the blob's bytes from N on."""
    _through_redirect(target, layer, evidence, redirects.range_resume)


@pytest.mark.writes
@pytest.mark.requires("test_1_push_a_fresh_image_to_dtr")  # its image is pushed as the user
def test_signed_url_works_twice(target, layer, evidence):
    """The same signed URL from DTR's redirect works again within its lifetime (a retry)."""
    # Folded into the pull cycle's failure when it ran and failed, but not run first: the
    # single-use fault (a redirect to DTR's own storage) is diagnosed by this check run alone.
    requires(REDIRECTED, SERVED)
    _through_redirect(target, layer, evidence, redirects.signed_url_reused)


@pytest.mark.writes
@pytest.mark.requires(REDIRECTED, SERVED)
def test_redirect_is_not_replayable_by_a_proxy(target, layer, evidence):
    """DTR's signed 307 tells shared proxies not to store it (no-store or private; no
    public, max-age or s-maxage above 0), so none replays it after its token expired."""
    _through_redirect(target, layer, evidence, redirects.redirect_cacheability)
