"""distribution's lines as its source writes them (registry/registry.go: logrus text and JSON
formatters, RFC 3339 nano times; registry/handlers/app.go: "response completed" with
internal/dcontext's http.request.* and http.response.* fields; Go's net/http: "http: TLS
handshake error from ADDR: ERR" through the standard logger), kept in tests/data."""

from __future__ import annotations

import pytest

from dtr_cache_check.probes.logs import TLS_HANDSHAKE_ERROR, parse_lines
from dtr_cache_check.testkit.local import REPO_ROOT
from dtr_cache_formats.go_strings import GoQuoteError, unquote

SAMPLE = (REPO_ROOT / "tests" / "data" / "distribution-logs.txt").read_text().splitlines()
DIGEST = "sha256:" + "1" * 64


def test_a_text_access_line_gives_distributions_fields():
    line = parse_lines(SAMPLE)[0]
    assert line.get("msg") == "response completed"
    assert line.get("http.response.status") == "200"
    assert line.get("http.request.uri").startswith(f"/v2/alice/app/blobs/{DIGEST}?")
    assert line.get("http.request.useragent") == "dtr-cache-check/0.1.0 (run 3f2a)"
    assert line.time.isoformat() == "2026-12-07T11:50:02.123456+00:00"


def test_a_go_escape_in_a_text_line_is_decoded_not_a_crash():
    line = parse_lines(SAMPLE)[1]
    assert line.get("err.message") == "blob unknown to registry \x1b[31mred\x1b[0m café"
    assert line.get("level") == "error"


def test_a_json_access_line_keeps_numbers():
    line = parse_lines(SAMPLE)[2]
    assert line.get("http.response.status") == 200 and line.get("msg") == "response completed"


@pytest.mark.parametrize(("index", "client", "error"), [
    (3, "10.0.0.9:40112", "remote error: tls: bad certificate"),
    (4, "[fd00::9]:40113", "tls: first record does not look like a TLS handshake"),
])
def test_a_refused_handshake_is_a_line_with_its_client_and_error(index, client, error):
    line = parse_lines(SAMPLE)[index]
    assert (line.get("msg"), line.get("client"), line.get("error")) == (
        TLS_HANDSHAKE_ERROR, client, error)


@pytest.mark.parametrize(("quoted", "value"), [
    (r'"plain"', "plain"), (r'"tab\there"', "tab\there"), (r'"q\"uote"', 'q"uote'),
    (r'"\x1b[0m"', "\x1b[0m"), (r'"\u00e9\U0001F600"', "é\U0001f600"), (r'"\101"', "A"),
    (r'"back\\slash"', "back\\slash"),
])
def test_go_unquote_follows_the_go_spec(quoted, value):
    assert unquote(quoted) == value


@pytest.mark.parametrize("bad", ['plain', r'"\q"', '"open'])
def test_go_unquote_refuses_what_go_would(bad):
    with pytest.raises(GoQuoteError):
        unquote(bad)
