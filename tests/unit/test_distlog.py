"""The distribution profile's lines (``cache_under_test.distlog``, ``golog``): as distribution's
source writes them, and as the harness's parser reads them. tests/data/distribution-profile-
logs.txt holds lines the cache wrote in the integration tests (text and JSON formatters, the
combined access log, Go's refused-handshake lines)."""

from __future__ import annotations

import json

import pytest

from cache_under_test import golog
from dtr_cache_check.probes.logs import TLS_HANDSHAKE_ERROR, parse_lines
from dtr_cache_check.testkit.local import REPO_ROOT
from dtr_cache_formats.go_strings import unquote

SAMPLE = parse_lines((REPO_ROOT / "tests" / "data" / "distribution-profile-logs.txt")
                     .read_text().splitlines())
DIGEST = "sha256:7493d1fe1d41282df152ed3c1f9e5d3c443d697fdfc89018cbe9244cd6a5f111"
AGENT = "dtr-cache-check/0.1.0 (run profile-test)"


def test_a_text_access_line_gives_the_fields_the_harness_reads():
    line = SAMPLE[2]
    assert (line.get("msg"), line.get("level")) == ("response completed", "info")
    assert line.get("http.request.uri") == f"/v2/team/app/blobs/{DIGEST}"
    assert (line.get("http.response.status"), line.get("http.response.written")) == (
        "200", "204800")
    assert line.get("http.request.useragent") == AGENT
    assert (line.get("vars.digest"), line.get("vars.name")) == (DIGEST, "team/app")
    assert line.time is not None and line.get("go.version") == golog_version()


def test_an_error_line_says_the_error_as_distribution_does_and_no_token():
    line = SAMPLE[5]
    assert (line.get("msg"), line.get("level")) == ("response completed with error", "error")
    assert (line.get("err.code"), line.get("err.message")) == ("unauthorized", "malformed token")
    assert line.get("http.request.uri").endswith("?dtr_cache_token=REDACTED")


def test_a_json_line_keeps_numbers_and_sorts_its_keys():
    line = SAMPLE[7]
    assert line.get("http.response.status") == 200 and line.get("msg") == "response completed"
    keys = list(json.loads(line.raw))
    assert keys == sorted(keys)


@pytest.mark.parametrize(("index", "error"), [
    (8, "tls: first record does not look like a TLS handshake"),
    (9, "remote error: tls: unknown certificate authority"),
])
def test_a_refused_handshake_line_gives_its_client_and_error(index, error):
    line = SAMPLE[index]
    assert line.get("msg") == TLS_HANDSHAKE_ERROR and line.get("error") == error
    assert line.get("client").startswith("127.0.0.1:")


def test_no_line_is_one_of_the_reference_profiles_events():
    assert not [line.raw for line in SAMPLE if line.get("event")
                or str(line.get("msg", "")).startswith("blob.")]


def golog_version() -> str:
    from cache_under_test.distlog import GO_VERSION

    return GO_VERSION


# Values taken from distribution's own lines (docker-registry 2.8.2, Go 1.19) and Go's tests.
@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (850, "850ns"), (579_803, "579.803µs"), (1_276_342, "1.276342ms"),
    (18_516_627, "18.516627ms"), (1_000_000, "1ms"), (1_500_000_000, "1.5s"),
    (123_000_000_001, "2m3.000000001s"), (3_600_000_000_000, "1h0m0s"),
    (-1_500_000, "-1.5ms"),
])
def test_durations_are_gos(ns, text):
    assert golog.duration(ns) == text


@pytest.mark.parametrize(("value", "written"), [
    ("/v2/", "/v2/"), ("alice/app", "alice/app"), ("application/octet-stream",
                                                   "application/octet-stream"),
    ("127.0.0.1:5000", '"127.0.0.1:5000"'), ("579.803µs", '"579.803µs"'), ("", ""),
    ('say "hi"\n', '"say \\"hi\\"\\n"'), ("\x1b[0m", '"\\x1b[0m"'), ("\u200b", '"\\u200b"'),
])
def test_values_are_quoted_as_logrus_quotes_them(value, written):
    assert golog.text_value(value) == written


@pytest.mark.parametrize("value", ["plain", "a b", 'q"uote', "tab\t", "\x00\x7f", "é😀",
                                   "\u2028", "back\\slash"])
def test_go_quote_round_trips_through_the_harnesss_go_unquote(value):
    assert unquote(golog.quote(value)) == value


def test_times_are_rfc3339nano_without_trailing_zeros():
    assert golog.rfc3339nano(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"
    assert golog.rfc3339nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert golog.std_prefix(1_700_000_000_000_000_000) == "2023/11/14 22:13:20 "


def test_a_text_line_puts_time_level_msg_first_then_sorted_fields():
    line = golog.logrus_text(1_700_000_000_000_000_000, "info", "response completed",
                             {"z": 1, "a": "x y"})
    assert line == ('time="2023-11-14T22:13:20Z" level=info msg="response completed" '
                    'a="x y" z=1')


@pytest.fixture
def installed():
    """The distribution profile's logging in this process, for one test (then the JSON
    events again)."""
    import logging

    from cache_under_test import distlog
    from cache_under_test.config_log import LogOutput
    from cache_under_test.events import setup_logging

    distlog.install(LogOutput("distribution", "text", {"environment": "test"}, True), "INFO")
    yield distlog
    distlog._writer = None
    setup_logging("INFO")
    logging.getLogger().handlers[:] = []


def test_our_events_become_words_or_nothing(installed, capfd):
    from cache_under_test.events import emit

    emit("blob.hit", digest="sha256:" + "a" * 64, repo="team/app", bytes=1)
    emit("blob.fill_failed", 30, digest="sha256:" + "b" * 64, error="upstream body ended")
    emit("server.started", addr="0.0.0.0:443", tls=True)
    emit("server.started", addr="/tmp/dtrcache-x/fetcher.sock", tls=False)
    out, err = capfd.readouterr()
    lines = parse_lines(err.splitlines())
    assert [line.get("msg") for line in lines] == ["upstream body ended", "listening on "
                                                   "0.0.0.0:443, tls"]
    assert [line.get("level") for line in lines] == ["warning", "info"]
    assert all(line.get("environment") == "test" for line in lines), "log.fields on every line"
    assert "blob." not in err and "digest" not in err and not out


def test_a_token_never_reaches_a_line(installed, capfd):
    installed.writer().logrus(20, "response completed", {
        "http.request.uri": "/v2/a/blobs/sha256:1?dtr_cache_token=eyJhbGciOiJFUzI1NiJ9.e30.sig"})
    installed.writer().go_line("http: TLS handshake error from 10.0.0.7:5: EOF")
    err = capfd.readouterr().err
    assert "eyJhbGci" not in err and "dtr_cache_token=REDACTED" in err
    assert parse_lines(err.splitlines())[1].get("client") == "10.0.0.7:5"


def test_below_the_log_level_nothing_is_written(capfd):
    from cache_under_test import distlog
    from cache_under_test.config_log import LogOutput

    quiet = distlog.Writer(LogOutput("distribution"), 40)  # log.level: error
    quiet.logrus(20, "response completed", {})
    quiet.logrus(40, "response completed with error", {"err.code": "unknown"})
    assert [line.get("level") for line in parse_lines(capfd.readouterr().err.splitlines())] == [
        "error"]
