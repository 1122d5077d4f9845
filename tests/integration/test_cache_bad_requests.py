"""A malformed request is one ``request.bad`` line at warning level, and never a secret in the
log: aiohttp's parser errors quote the raw request line or header they stopped at, and the
secrets in them come percent-encoded, after a tab, in long ``Token``/``Negotiate`` headers, or
as ``user:password@`` in a URL.

The requests go raw over TLS sockets to a running cache (no client library would send them).
"""

from __future__ import annotations

import json
import secrets
import socket
import time

import httpx

from dtr_cache_check.probes.logs import events

DIGEST = "sha256:" + "ab" * 32


def secret(n: int = 24) -> str:
    return "S3cret" + secrets.token_hex(n // 2)


def bad_requests() -> list[tuple[bytes, str]]:
    """(raw request, the secret in it): every one refused by aiohttp's HTTP parser."""
    s = [secret() for _ in range(10)]
    jwt_sig = secret()
    jwt = f"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.{jwt_sig}"
    long_token = (s[5] * 400)[:9000]
    long_negotiate = (s[6] * 400)[:9000]
    blob = f"/v2/team/app/blobs/{DIGEST}"
    cases = [
        # the token's "=" percent-encoded, a control character in the query
        (f"GET {blob}?dtr_cache_token%3D{s[0]}\x01 HTTP/1.1\r\nHost: c\r\n\r\n", s[0]),
        # "?" and "=" encoded: the parameter is in the path; a bad HTTP version
        (f"GET {blob}%3Fdtr%5Fcache%5Ftoken%3D{s[1]} HTTP/1.1x\r\nHost: c\r\n\r\n", s[1]),
        # a plain token parameter on a bad request line
        (f"GET {blob}?dtr_cache_token={s[2]} HTTP/1.1 extra\r\nHost: c\r\n\r\n", s[2]),
        # Authorization with a tab after the colon (no scheme), a control character after it
        (f"GET /v2/ HTTP/1.1\r\nHost: c\r\nAuthorization:\t{s[3]}\x01\r\n\r\n", s[3]),
        (f"GET /v2/ HTTP/1.1\r\nHost: c\r\nauthorization:\tBearer\t{s[4]}\x01\r\n\r\n", s[4]),
        # header values longer than aiohttp's limit: their start is quoted in its error
        (f"GET /v2/ HTTP/1.1\r\nHost: c\r\nAuthorization: Token {long_token}\r\n\r\n", s[5]),
        (f"GET /v2/ HTTP/1.1\r\nHost: c\r\nAuthorization: Negotiate {long_negotiate}\r\n\r\n",
         s[6]),
        # user:password@ in an absolute URL: on a bad line, and as a URL yarl refuses
        (f"GET https://alice:{s[7]}@cache/v2/ HTTP/1.1\x01\r\nHost: c\r\n\r\n", s[7]),
        (f"GET https://alice:{s[8]}@[cache/v2/ HTTP/1.1\r\nHost: c\r\n\r\n", s[8]),
        # a signed token (a JWT) in the query of a bad request line
        (f"GET {blob}?dtr_cache_token={jwt}\x7f HTTP/1.1\r\nHost: c\r\n\r\n", jwt_sig),
    ]
    return [(raw.encode("latin-1"), hidden) for raw, hidden in cases]


def send_raw(cache, context, raw: bytes) -> bytes:
    """Send ``raw`` over TLS; the cache's whole answer (it closes after a 400)."""
    with socket.create_connection(("127.0.0.1", cache.port), timeout=10) as tcp, \
            context.wrap_socket(tcp, server_hostname="127.0.0.1") as tls:
        tls.sendall(raw)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer


def test_bad_requests_are_one_redacted_line_each(registry, make_cache, pki, processes):
    cache = make_cache([registry.url], processes=processes)
    cases = bad_requests()
    for raw, _ in cases:
        answer = send_raw(cache, pki.context, raw)
        assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400"), answer

    # The cache logs a refused request before it answers: every line is there by now.
    time.sleep(0.3)
    text = cache.log_path.read_text()
    leaked = [hidden for _, hidden in cases if hidden in text]
    assert not leaked, f"{len(leaked)} secret(s) in the cache's log:\n{text[-3000:]}"
    assert "s3cret" not in text.lower()  # no fragment of any secret's prefix either

    bad = events(cache.log_lines(), "request.bad")
    assert len(bad) == len(cases), [b.raw for b in bad]  # one line per bad request
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert all(line["level"] == "warning" for line in lines if line["event"] == "request.bad")
    assert all(line.get("status") == 400 and line.get("reason") and
               line.get("client") == "127.0.0.1"
               for line in lines if line["event"] == "request.bad")
    errors = [line for line in lines if line["level"] in ("error", "critical")]
    assert not errors, errors  # no traceback at ERROR for a client's mistake
    assert "Traceback" not in text

    # And the cache serves on.
    with httpx.Client(verify=pki.context, timeout=10) as http:
        assert http.get(f"{cache.url}/v2/").status_code == 200
