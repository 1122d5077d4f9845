"""The hops between the servers: the cache reaching and trusting DTR (with the files its
config.yml gives it), and DTR trusting the cache (the registration probe)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest

from dtr_cache_check.probes.deployed_files import downstream_options
from dtr_cache_check.probes.tlsfailure import classify
from dtr_cache_check.probes.tlsprobe import MISSING_INTERMEDIATE, explain, probe
from dtr_cache_check.steps import ha, registration
from dtr_cache_check.steps.chain import NotCheckableHere, connect_to_for, is_dtr
from dtr_cache_check.steps.deployed import deployed_file, load_files
from dtr_cache_check.steps.findings import (
    CACHE_DTR,
    CLIENT_CACHE,
    CLIENT_DTR,
    DTR_CACHE,
    fail,
    requires,
)
from dtr_cache_formats.registry_api import API_VERSION_HEADER
from dtr_cache_formats.tls_classes import SELF_SIGNED, UNKNOWN_AUTHORITY

pytestmark = [pytest.mark.family("TLS between"), pytest.mark.hop(CACHE_DTR)]

CACHE_SIDE = ("test_server_answers_tls", "test_full_chain_is_served",
              "test_certificate_names_the_host", "test_certificate_is_within_its_validity",
              "test_certificate_key_is_strong", "test_tls_1_2_or_newer")


@pytest.fixture(scope="session")
def upstream(target):
    """(upstream URL, connect_to, cas PEMs, where they came from) as the cache's config says."""
    try:
        files = load_files(target)
    except ValueError as exc:
        pytest.skip(f"config.yml unreadable ({exc}): see the configuration checks")
    options = downstream_options(files.effective()[0]) or {}
    upstreams = [u for u in options.get("upstreams") or [] if isinstance(u, str)]
    if not upstreams:
        pytest.skip("no plain upstream URL in config.yml: see the configuration checks")
    url = urlsplit(upstreams[0])
    port = url.port or 443
    # A name only the cache's network knows (a service name) is probed at DTR's host, still
    # verifying the certificate for that name; one that resolves here (DTR's other name, or
    # the next cache of a chain) is probed as is.
    try:
        connect_to = connect_to_for(upstreams[0], target.cache_host)
    except NotCheckableHere as exc:
        pytest.skip(f"not checkable from here: {exc}")
    cas, sources = [], []
    for path in options.get("cas") or []:
        content, where = deployed_file(target, files, str(path))
        cas.append((str(path), content))
        sources.append(where)
    return f"https://{url.hostname}:{port}", upstreams[0], connect_to, cas, sources


def _next_cache(target, configured: str) -> str:
    """" (its upstream X, the next cache of the chain)" when the upstream is not DTR: in a
    chain the leaf's next hop is a cache, and the words must not send the operator to DTR."""
    verdict = is_dtr(configured, target.dtr_url, target.cache_host)
    if verdict:
        return ""
    if verdict is None:
        return f" (its upstream {configured}: DTR, or the next cache of a chain)"
    return f" (its upstream {configured}, the next cache of the chain)"


@pytest.mark.requires("test_upstreams_are_https", f"test_server_answers_tls[{CLIENT_DTR}]")
def test_cache_reaches_dtr(upstream, evidence):
    """The cache's upstream answers TLS at the host and port config.yml names."""
    url, configured, connect_to, _cas, _sources = upstream
    report = probe(url, None, connect_to=connect_to)
    if not report.reachable:
        fail(CACHE_DTR, f"the cache's upstream {configured} does not answer: {report.reason}",
             "check upstreams: in config.yml: DTR's URL and port (or the next cache's, in "
             "a chain), reachable from the cache node")
    evidence.note(f"{configured} answers {report.version}")


@pytest.mark.requires("test_cache_reaches_dtr", f"test_tls_1_2_or_newer[{CLIENT_DTR}]")
def test_cache_upstream_is_a_registry(target, upstream, evidence):
    """The cache's upstream answers as a registry (Docker-Distribution-API-Version)."""
    url, configured, connect_to, _cas, _sources = upstream
    base = target.dtr_url if connect_to else url
    try:
        answer = httpx.get(f"{base}/v2/", verify=False, timeout=15)
    except httpx.TransportError as exc:
        fail(CACHE_DTR, f"GET {configured}/v2/ failed: {classify(exc)} ({exc})",
             "check upstreams: in config.yml: DTR's URL and port, serving TLS 1.2 or newer")
    if API_VERSION_HEADER.lower() not in answer.headers:
        fail(CACHE_DTR, f"{configured} is not a registry: GET /v2/ answered "
             f"{answer.status_code} without {API_VERSION_HEADER}",
             "point upstreams: at DTR itself (or the next cache), not at a portal or proxy page")
    evidence.note(f"{configured}/v2/ -> {answer.status_code}, {API_VERSION_HEADER} present")


@pytest.mark.essential("cache->DTR trust")
def test_cache_trusts_dtr(target, upstream, evidence):
    """DTR's served chain verifies against the cas files config.yml gives the cache."""
    # DTR's own certificate defects are reported once, on the client->DTR hop.
    url, configured, connect_to, cas, sources = upstream
    own = ["test_full_chain_is_served", "test_certificate_is_within_its_validity",
           "test_certificate_key_is_strong", "test_tls_1_2_or_newer"]
    if urlsplit(url).hostname == urlsplit(target.dtr_url).hostname:
        own.append("test_certificate_names_the_host")  # the cache uses the clients' name
    requires("test_cache_reaches_dtr", *(f"{check}[{CLIENT_DTR}]" for check in own))
    chained = _next_cache(target, configured)
    missing = [path for path, content in cas if content is None]
    if missing:
        fail(CACHE_DTR, f"the cache's CA file {missing[0]} is missing ({sources[0]}){chained}",
             "mount the CA of the next cache's certificate there (declared as the secret "
             "dtr.cert.pem)" if chained else "mount DTR's CA there: curl -sk "
             "https://<dtr>/ca > certs/dtr.cert.pem, declared as the secret dtr.cert.pem")
    pems = [content for _path, content in cas]
    report = probe(url, pems or None, connect_to=connect_to)
    evidence.chain(report.chain_rows(), "DTR's chain, as the cache sees it")
    evidence.text("the cache's trust", "\n".join(sources) or "system roots only (no cas)")
    if not report.trusted:
        if report.failure_class == MISSING_INTERMEDIATE and target.issued_by_dtr_ca(report.leaf):
            report.failure_class = UNKNOWN_AUTHORITY  # a complete chain, from DTR's own CA
        cause, fix = explain(report)
        if report.failure_class in (UNKNOWN_AUTHORITY, MISSING_INTERMEDIATE, SELF_SIGNED):
            fix = ("put DTR's CA in the cache's cas: curl -sk https://<dtr>/ca > "
                   "certs/dtr.cert.pem, mounted as the secret dtr.cert.pem and listed under cas")
            if chained:  # each cache of a chain trusts only its next hop's CA
                fix = (f"put the CA that issued {configured}'s certificate (the next cache's, "
                       "not DTR's) in the cache's cas: the seed's certs/dtr.cert.pem, mounted as "
                       "the secret dtr.cert.pem and listed under cas")
        fail(CACHE_DTR, f"{cause} (trusting {'its cas files' if pems else 'system roots only'})"
             f"{chained}", fix)
    evidence.note(f"{configured} verified against {len(pems) or 'the system'} CA(s)")


@pytest.mark.hop(DTR_CACHE)
@pytest.mark.essential("DTR->cache trust")
@pytest.mark.writes
@pytest.mark.requires(f"test_client_trusts_the_server[{CLIENT_DTR}]",
                       *(f"{check}[{CLIENT_CACHE}]" for check in CACHE_SIDE))
def test_dtr_trusts_the_cache(target, steps, evidence):
    """DTR connects to the cache over TLS and trusts its certificate: a probe registration is
    accepted, and DTR's side of that connection is observed (DTR's logs, or the cache's answer
    to DTR in its logs). A registration accepted alone proves no TLS."""
    if not target.cache_url:
        pytest.skip("no --cache-url")
    name = f"dtr-cache-check-probe-{uuid.uuid4().hex[:8]}"
    since = datetime.now(UTC)
    with target.api() as api:
        answer = api.post("/api/v0/content_caches", json={"name": name, "host": target.cache_url})
        if answer.status_code in (200, 201):
            probe_id = answer.json().get("id")
            if probe_id:
                api.delete(f"/api/v0/content_caches/{probe_id}")
            seen = registration.dtr_side_of(target, name, since)
            if seen is None:
                pytest.skip(f"DTR accepted {target.cache_url} (a probe registration, removed), "
                            "but nothing shows that it connected to the cache: DTR may not "
                            "contact a cache at registration at all. Give --dtr-logs (DTR's "
                            "logs) or --cache-logs (the cache's, showing DTR's request) to "
                            "observe the DTR->cache hop")
            evidence.note(f"DTR accepted {target.cache_url} (probe registration, removed); "
                          f"{seen}")
            return
    if answer.status_code in (401, 403):
        pytest.skip(f"registering needs a DTR admin ({answer.status_code}): give "
                    "--dtr-admin-user/--dtr-admin-password")
    try:
        message = answer.json()["errors"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        message = answer.text[:400]
    # HA: a replica's own certificate, or the balancer's, is an HA check's finding
    ha.replicas_first(target, steps)
    fail(DTR_CACHE, f"DTR refused a cache at {target.cache_url}: {message}",
         "give DTR the CA that signed the cache's certificate (DTR's trusted CAs), or serve the "
         "cache with a certificate from a CA DTR trusts")
