"""The cache as a distribution-built cache shows itself (``DTRCACHE_PROFILE=distribution``): no
X-Cache, no JSON events, distribution's logrus lines; and what both profiles give: Go's line
for a refused TLS handshake (or the ``tls.handshake_error`` event), distribution's proxy
counters on the debug listener."""

from __future__ import annotations

import json
import re
import socket
import ssl
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cache_under_test import handshakes
from dtr_cache_check.probes.logevidence import refused_handshakes
from dtr_cache_check.probes.refusal import refused_handshake
from dtr_cache_formats import distribution_metrics as dm

pytestmark = [pytest.mark.integration]

PROFILES = ["reference", "distribution"]
NAMES = {"requests": dm.REQUESTS, "hits": dm.HITS, "misses": dm.MISSES,
         "pulled": dm.PULLED_BYTES, "pushed": dm.PUSHED_BYTES}


def proxy_counters(cache, kind: str = "blob") -> dict[str, float]:
    """distribution's proxy counters of ``kind`` on the cache's debug listener."""
    text = httpx.get(cache.extra["debug_url"] + "/metrics", timeout=10).text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("type") == kind:
                values[sample.name] = sample.value
    return {short: values.get(name) for short, name in NAMES.items()}


def profile_env(profile: str) -> dict:
    return {"DTRCACHE_PROFILE": profile} if profile != "reference" else {}


@pytest.mark.parametrize("profile", PROFILES)
def test_the_proxy_counters_move_as_distributions_across_a_miss_then_a_hit(
        registry, make_cache, push, client, profile):
    size = 300 * 1024
    digest, _ = push(registry, size=size)
    cache = make_cache([registry.url], debug=True, env=profile_env(profile))
    before = proxy_counters(cache)
    assert before == dict.fromkeys(NAMES, 0.0), "every series is there from the start, at 0"
    assert proxy_counters(cache, "manifest") == dict.fromkeys(NAMES, 0.0)
    c = client(cache)
    c.get_blob("team/app", digest)
    after_miss = proxy_counters(cache)
    assert after_miss == {"requests": 1, "hits": 0, "misses": 1, "pulled": size, "pushed": size}
    c.get_blob("team/app", digest)
    after_hit = proxy_counters(cache)
    assert after_hit == {"requests": 2, "hits": 1, "misses": 1, "pulled": size,
                         "pushed": 2 * size}


AGENT = "dtr-cache-check/0.1.0 (run profile-test)"
DISTRIBUTION = {"DTRCACHE_PROFILE": "distribution"}


def wait_lines(cache, found, what: str, timeout: float = 5.0):
    """``found(lines)`` of the cache's log once it is true (lines follow the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = cache.log_lines()
        result = found(lines)
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {cache.name}'s log within {timeout} s: {what}\n"
                                 + cache.log_path.read_text()[-3000:])
        time.sleep(0.05)


def access_lines(lines, path: str):
    return [line for line in lines if line.get("msg") == "response completed"
            and str(line.get("http.request.uri", "")).split("?")[0] == path]


def test_a_pull_through_the_distribution_profile_shows_distributions_lines_only(
        registry, make_cache, push, pki, processes):
    size = 200 * 1024
    digest, _ = push(registry, size=size)
    cache = make_cache([registry.url], processes=processes, env=DISTRIBUTION)
    blob = f"/v2/team/app/blobs/{digest}"
    with httpx.Client(verify=pki.context, timeout=30, headers={"User-Agent": AGENT}) as http:
        assert http.get(f"{cache.url}/v2/").status_code == 200
        answers = [http.get(cache.url + blob) for _ in range(2)]  # a miss, then a hit
        refused = http.get(f"{cache.url}{blob}?dtr_cache_token=not.a-real.secret-token")
        unknown = http.get(f"{cache.url}/v2/team/app/manifests/no-such-tag")
        health = http.get(f"{cache.url}/health")  # an answer of the cache's own, not a blob's
    for answer in answers:
        assert answer.status_code == 200 and len(answer.content) == size
        assert "x-cache" not in answer.headers and "server" not in answer.headers
    # distribution's App.ServeHTTP sets the API version on every answer.
    assert health.headers["docker-distribution-api-version"] == "registry/2.0"
    assert refused.status_code in (400, 401, 403)

    served = wait_lines(cache, lambda lines: len(access_lines(lines, blob)) >= 2 and lines,
                        "two access lines for the blob")
    for line in access_lines(served, blob):
        assert line.get("http.request.method") == "GET"
        assert line.get("http.response.status") == "200"
        assert line.get("http.response.written") == str(size)
        assert line.get("http.request.useragent") == AGENT
        assert line.get("vars.digest") == digest and line.get("vars.name") == "team/app"
        assert line.get("level") == "info" and line.time is not None
        assert str(line.get("http.request.remoteaddr")).startswith("127.0.0.1:")
        assert str(line.get("http.response.duration")).endswith("s")
        assert re.fullmatch(r"[0-9a-f-]{36}", line.get("http.request.id"))
    assert access_lines(served, "/v2/"), "the /v2/ answer has its line too"
    errors = wait_lines(cache, lambda lines: [
        line for line in lines if line.get("msg") == "response completed with error"],
        "the refused request's error line")
    assert errors[0].get("level") == "error" and errors[0].get("err.code")
    assert unknown.status_code == 404
    manifest = wait_lines(cache, lambda lines: [
        line for line in lines if line.get("vars.reference") == "no-such-tag"],
        "the unknown manifest's line")[0]
    # The upstream's own error, in distribution's words (ErrorCode.Error()).
    assert (manifest.get("err.code"), manifest.get("http.response.status")) == (
        "manifest unknown", "404")
    text = cache.log_path.read_text()
    assert "not.a-real.secret-token" not in text, "a token in a URI is redacted"
    assert "dtr_cache_token=REDACTED" in text
    assert f'"GET {blob} HTTP/1.1" 200 {size} "" "{AGENT}"' in text  # the combined access log
    ours = [line for line in served if line.raw.lstrip().startswith("{")
            or str(line.event or "").startswith("blob.")]
    assert not ours, f"JSON events in the distribution profile: {ours[:3]}"


def test_log_formatter_json_gives_distributions_json_lines(registry, make_cache, push, pki):
    digest, _ = push(registry, size=64 * 1024)
    cache = make_cache([registry.url], processes="1",
                       env={**DISTRIBUTION, "REGISTRY_LOG_FORMATTER": "json",
                            "REGISTRY_LOG_ACCESSLOG_DISABLED": "true"})
    blob = f"/v2/team/app/blobs/{digest}"
    with httpx.Client(verify=pki.context, timeout=30, headers={"User-Agent": AGENT}) as http:
        assert http.get(cache.url + blob).status_code == 200
    line = wait_lines(cache, lambda lines: access_lines(lines, blob), "the blob's line")[0]
    assert line.raw.startswith("{") and line.get("http.response.status") == 200
    assert line.get("http.response.written") == 64 * 1024
    assert json.loads(line.raw)["go.version"].startswith("go")
    assert "HTTP/1.1\" 200" not in cache.log_path.read_text(), "accesslog.disabled is obeyed"


@pytest.mark.parametrize("profile", PROFILES)
def test_a_handshake_the_cache_refuses_is_logged_with_the_clients_port(registry, make_cache,
                                                                      profile):
    cache = make_cache([registry.url], env=profile_env(profile))
    refusal = refused_handshake(cache.url)  # the harness's positive control: 16 zero bytes
    began = time.monotonic()
    line = wait_lines(cache, lambda lines: refused_handshakes(lines, refusal.local_port),
                      f"the refused handshake from port {refusal.local_port}", timeout=2.0)[0]
    assert time.monotonic() - began < 2.0
    assert line.get("error") == "tls: first record does not look like a TLS handshake"
    assert line.get("client") == f"127.0.0.1:{refusal.local_port}"
    if profile == "distribution":
        assert re.match(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d http: TLS handshake error from ",
                        line.raw.split(" | ")[-1])
    else:
        assert line.get("event") == "tls.handshake_error"


@pytest.mark.parametrize("profile", PROFILES)
def test_a_client_that_refuses_the_certificate_is_logged(registry, make_cache, profile):
    cache = make_cache([registry.url], env=profile_env(profile))
    distrusting = ssl.create_default_context()  # the system roots: not the test CA
    with socket.create_connection(("127.0.0.1", cache.port)) as sock:
        port = sock.getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError):
            distrusting.wrap_socket(sock, server_hostname="127.0.0.1")
    line = wait_lines(cache, lambda lines: refused_handshakes(lines, port),
                      f"the distrusting client from port {port}", timeout=2.0)[0]
    assert line.get("error") == "remote error: tls: unknown certificate authority"


def test_a_flood_of_refused_handshakes_is_bounded_per_address(registry, make_cache):
    cache = make_cache([registry.url], processes="1", env=DISTRIBUTION)
    ports = [refused_handshake(cache.url).local_port for _ in range(40)]
    first = wait_lines(cache, lambda lines: refused_handshakes(lines, ports[0]),
                       "the flood's first line", timeout=2.0)
    assert first, "the first refusal of an address is always written"
    time.sleep(0.3)
    logged = refused_handshakes(cache.log_lines())
    assert len(logged) <= handshakes.BURST + 2, f"{len(logged)} lines for 40 refusals"


def test_a_handshake_that_never_finishes_is_gos_i_o_timeout(registry, make_cache):
    cache = make_cache([registry.url], processes="1",
                       env={**DISTRIBUTION, "DTRCACHE_TLS_HANDSHAKE_TIMEOUT": "0.5"})
    with socket.create_connection(("127.0.0.1", cache.port)) as silent:
        port = silent.getsockname()[1]
        line = wait_lines(cache, lambda lines: refused_handshakes(lines, port),
                          f"the silent client from port {port}", timeout=3.0)[0]
    assert re.fullmatch(rf"read tcp 127\.0\.0\.1:{cache.port}->127\.0\.0\.1:{port}: i/o timeout",
                        line.get("error"))
