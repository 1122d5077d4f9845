"""The distribution profile (``DTRCACHE_PROFILE=distribution``): the cache shows itself as a
distribution registry does (Mirantis's content cache is a build of it), so that the harness is
proven against a cache that does not label its hits.

- No ``X-Cache`` and no ``Server`` header (Go's net/http sends none); the API version
  header on every answer.
- No JSON events: logrus lines on stderr, the text formatter unless ``log.formatter: json``
  (registry/registry.go), at ``log.level``, with ``log.fields``. Our warnings and errors
  become logrus lines in words (never ``blob.*`` names); other events are not written.
- Every answered request gets distribution's line (registry/handlers/app.go with
  internal/dcontext's fields): ``response completed`` (info) for 200-399, else one ``response
  completed with error`` (error) per error of the OCI body, ``err.code`` in ErrorCode.Error()'s
  words; and, unless ``log.accesslog.disabled``, gorilla's combined access line on stdout.
  A request aiohttp refused before routing gets neither, as Go's server answers those itself.
- A refused TLS handshake is Go's standard-logger line (``handshakes``).

Every line is redacted as the JSON events are (``events.redact``): a signed URL's token never
reaches the log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from ipaddress import ip_address
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dtr_cache_formats.registry_api import API_VERSION, API_VERSION_HEADER

from . import golog
from .config_log import LogOutput
from .events import redact

GO_VERSION = "go1.23.4"  # runtime.Version() of the build it plays
STARTED = "distlog.started"  # request key: perf_counter_ns when the handler started
ROUTE_VARS = ("name", "reference", "digest", "uuid")  # gorilla/mux vars distribution logs
# Our events that distribution has words for at start (registry.go: "listening on ...").
_STARTED_WORDS = {"server.started": "listening on {addr}{tls}",
                  "debug.started": "debug server listening {addr}"}
# Said in a warning's or an error's words, in this order (an upstream's TLS failure names the
# upstream, its class and OpenSSL's detail, as distribution's Go client error would).
_TEXT_FIELDS = ("problem", "upstream", "kind", "detail", "error", "reason", "action")


class Writer:
    """Writes the profile's lines, each in one ``write`` (several processes share the
    streams): logrus's on stderr, the combined access log on stdout."""

    def __init__(self, output: LogOutput, level: int):
        self.json = output.formatter == "json"
        self.level = level
        self.fields = dict(output.fields)
        self.access_log = output.access_log

    def logrus(self, level: int, msg: str, fields: dict[str, Any]) -> None:
        if level < self.level:
            return
        line = redact({**self.fields, "go.version": GO_VERSION, **fields})
        name = golog.LEVELS.get(level, "info")
        format_line = golog.logrus_json if self.json else golog.logrus_text
        _write(2, format_line(time.time_ns(), name, str(redact(msg)), line))

    def go_line(self, text: str) -> None:
        """A line of Go's standard logger (``log.Printf``), as net/http writes its own."""
        _write(2, golog.std_prefix(time.time_ns()) + str(redact(text)))

    def combined(self, text: str) -> None:
        _write(1, str(redact(text)))


def _write(fd: int, line: str) -> None:
    with contextlib.suppress(OSError):  # a closed stream must not fail a request
        os.write(fd, (line + "\n").encode("utf-8", "surrogateescape"))


_writer: Writer | None = None


def writer() -> Writer | None:
    """The profile's writer in this process, or None (the reference profile)."""
    return _writer


def install(output: LogOutput, level: str) -> None:
    """Switch this process's logging to the distribution profile (after ``setup_logging``)."""
    global _writer
    _writer = Writer(output, logging.getLevelName(level))
    handler = _Handler()
    for name in ("cache_under_test", "aiohttp", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        # Records at info too: start-up's become distribution's words (the writer filters).
        logger.setLevel(min(logging.INFO, logging.getLevelName(level)))
    logging.getLogger().handlers[:] = [handler]


class _Handler(logging.Handler):
    """Our records as logrus lines: start-up in distribution's words, warnings and errors in
    ours; the rest (hits, misses, every other event) not written."""

    def emit(self, record: logging.LogRecord) -> None:
        if _writer is None:
            return
        try:
            event = getattr(record, "event", None)
            fields = getattr(record, "fields", None) or {}
            if event in _STARTED_WORDS:
                if event == "server.started" and not fields.get("tls"):
                    return  # the fetcher's private socket: no listener of distribution's
                words = _STARTED_WORDS[event].format(
                    addr=fields.get("addr", ""), tls=", tls" if fields.get("tls") else "")
                _writer.logrus(logging.INFO, words, {})
                return
            if record.levelno < logging.WARNING:
                return
            if event:
                said = [str(fields[k]) for k in _TEXT_FIELDS if fields.get(k)]
                msg = "; ".join(said) or event.replace(".", " ").replace("_", " ")
            else:
                msg = record.getMessage()
            extra = {"error": str(record.exc_info[1])} if record.exc_info and \
                record.exc_info[1] is not None else {}
            _writer.logrus(record.levelno, msg, extra)
        except Exception:  # a log line must never fail what it reports on
            pass


@web.middleware
async def stamp(request: web.Request, handler) -> web.StreamResponse:
    """When the handler started (dcontext's ``http.request.startedat``)."""
    request[STARTED] = time.perf_counter_ns()
    return await handler(request)


async def _strip(request: web.BaseRequest, response: web.StreamResponse) -> None:
    response.headers.popall("X-Cache", None)
    response.headers.popall("Server", None)
    # distribution's App.ServeHTTP sets it on every answer, errors and 404s included.
    response.headers.setdefault(API_VERSION_HEADER, API_VERSION)


def attach(app: web.Application) -> dict[str, Any]:
    """Make ``app`` (the public listener's) answer as distribution does; the handler
    arguments that write its access lines."""
    app.middlewares.append(stamp)
    app.on_response_prepare.append(_strip)
    return {"access_log_class": AccessLines, "access_log": logging.getLogger("dtrcache.access")}


class AccessLines(AbstractAccessLogger):
    """aiohttp's access-log hook, called once a response is sent: distribution's lines."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        started = request.get(STARTED)
        if started is None or _writer is None:
            return  # refused before routing (a malformed request): Go logs none either
        with contextlib.suppress(Exception):  # a log line must never fail its request
            _access_lines(_writer, request, response, started)

    @property
    def enabled(self) -> bool:
        return _writer is not None


def remote_addr(request: web.BaseRequest, peer: str) -> str:
    """internal/requestutil.RemoteAddr: the first ``X-Forwarded-For`` address, else
    ``X-Real-Ip``, when it is an IP address; else the peer's ``ip:port``."""
    prior = request.headers.get("X-Forwarded-For", "")
    for candidate in (prior.split(",", 1)[0].strip() if prior else "",
                      request.headers.get("X-Real-Ip", "")):
        if candidate:
            try:
                ip_address(candidate)
                return candidate
            except ValueError:
                pass
    return peer


def _written(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """The body bytes sent: what the writer wrote, less the status line and headers."""
    writer = request.writer
    out = getattr(writer, "output_size", 0) if writer is not None else 0
    if not out:
        return 0
    version = request.version
    head = f"HTTP/{version[0]}.{version[1]} {response.status} {response.reason}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in response.headers.items()) + "\r\n"
    return max(0, out - len(head.encode("utf-8")))


def _errors(response: web.StreamResponse) -> list[tuple[str, str, Any]]:
    """(err.code, err.message, err.detail) of each error of an OCI error body; an answer
    without one is ErrorCodeUnknown's."""
    body = getattr(response, "body", None)
    try:
        errors = json.loads(body)["errors"] if isinstance(body, (bytes, bytearray)) else None
        found = [(str(e["code"]).replace("_", " ").lower(), str(e.get("message", "")),
                  e.get("detail")) for e in errors if isinstance(e, dict) and "code" in e]
    except (ValueError, KeyError, TypeError):
        found = []
    return found or [("unknown", "unknown error", None)]


def _access_lines(out: Writer, request: web.BaseRequest, response: web.StreamResponse,
                  started: int) -> None:
    elapsed = time.perf_counter_ns() - started
    transport = request.transport
    peer = golog.address(transport.get_extra_info("peername") if transport is not None else None)
    headers = request.headers
    written = _written(request, response)
    fields: dict[str, Any] = {
        "http.request.host": headers.get("Host", ""),
        "http.request.id": str(uuid.uuid4()),
        "http.request.method": request.method,
        "http.request.remoteaddr": remote_addr(request, peer),
        "http.request.uri": request.raw_path,
        "http.request.useragent": headers.get("User-Agent", ""),
        "http.response.duration": golog.duration(elapsed),
        "http.response.status": response.status,
        "http.response.written": written,
    }
    for header, key in (("Referer", "http.request.referer"),
                        ("Content-Type", "http.request.contenttype")):
        if headers.get(header):
            fields[key] = headers[header]
    if response.headers.get("Content-Type"):
        fields["http.response.contenttype"] = response.headers["Content-Type"]
    match = getattr(request, "match_info", None) or {}
    for var in ROUTE_VARS:
        if match.get(var):
            fields[f"vars.{var}"] = match[var]
    if 200 <= response.status <= 399:
        out.logrus(logging.INFO, "response completed", fields)
    else:
        for code, message, detail in _errors(response):
            line = {**fields, "err.code": code, "err.message": message}
            if detail is not None:
                line["err.detail"] = detail if isinstance(detail, str) else json.dumps(detail)
            out.logrus(logging.ERROR, "response completed with error", line)
    if out.access_log:
        out.combined(_combined(request, response, peer, written, elapsed))


def _combined(request: web.BaseRequest, response: web.StreamResponse, peer: str, written: int,
              elapsed: int) -> str:
    """gorilla/handlers' combined log line (distribution's access log), stamped with the
    request's start."""
    host = peer.rsplit(":", 1)[0].strip("[]") if peer else "-"
    start = (time.time_ns() - elapsed) // 1_000_000_000
    stamp_text = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(start))
    version = request.version
    return (f'{host} - - [{stamp_text}] "{request.method} '
            f'{golog.quote(request.raw_path)[1:-1]} HTTP/{version[0]}.{version[1]}" '
            f'{response.status} {written} '
            f'"{golog.quote(request.headers.get("Referer", ""))[1:-1]}" '
            f'"{golog.quote(request.headers.get("User-Agent", ""))[1:-1]}"')
