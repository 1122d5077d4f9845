"""Evidence: one JSON object a line, a stable ``event`` name per fact, secrets redacted.

Event names (the checks read them): ``config.loaded``, ``config.warning``, ``server.started``,
``blob.hit``, ``blob.miss``, ``blob.join``, ``blob.fetched``, ``blob.expired``,
``blob.fill_failed``, ``upstream.error``, ``auth.denied``, ``keys.fetched``.

Also: ``blob.broken``, ``blob.client_gone``, ``blob.uncached`` (warning: the storage failed,
the client's blob is sent from the upstream without a copy), ``keys.unavailable``,
``upstream.own_redirect``, ``storage.error``, ``storage.cleaned``, ``storage.corrupt`` (error: a
stored blob whose bytes are not its digest's, deleted and fetched again), ``fills.limit``
(warning: every upstream at ``DTRCACHE_MAX_FILLS``, 503 answered), ``auth.clock_skew`` (the
upstream's clock ahead: info within ``DTRCACHE_CLOCK_LEEWAY``, warning beyond); the processes'
``processes.started``, ``processes.cleaned`` (stale private directories removed),
``process.exited``, ``process.orphaned``, ``process.crashed`` (an uncaught exception, its
traceback redacted); ``debug.started`` (the debug listener, ``http.debug.addr``); and the
public listener's door (``guard``): ``request.bad`` (warning: a request the HTTP parser
refused, one line each, with ``status``, ``reason``, ``error`` and, redacted, ``near``: never a
traceback), ``connection.timeout`` (info: ``phase`` "tls handshake" or "request header"),
``tls.handshake_error`` (warning: a client's refused TLS handshake, ``client`` its ``ip:port``,
``error`` in Go's words: see ``handshakes``),
``connections.limit`` (warning: a server process stopped accepting at
``DTRCACHE_MAX_CONNECTIONS``), ``connections.client_limit`` (warning: one address at
``DTRCACHE_MAX_CLIENT_CONNECTIONS``), ``connection.accept_failed``. Lines from other
libraries' loggers are ``event: "log"`` with ``logger`` and ``msg``.

Every line is redacted as a whole (``redact``), exception text included: secret-named fields
wholesale; in text, the blob token's parameter (also percent-encoded), credential headers
quoted raw (``Authorization:<tab>...``), Bearer/Basic and long Token/Negotiate/... credentials,
``user:password@`` in URLs, private keys, and JWTs (also cut short).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import Any, TextIO

from .blobtoken import TOKEN_PARAM

LOGGER = logging.getLogger("cache_under_test")
_process_label: str | None = None  # "fetcher", "server-1"...: set when there are several
_SECRET_FIELDS = re.compile(r"authorization|token|password|passwd|secret|private|cookie", re.I)


def _encoded(name: str) -> str:
    """A pattern for ``name`` with any of its characters percent-encoded, once or twice
    (``dtr%5Fcache%5Ftoken``, ``%64tr_cache_token``...), in any case."""
    def one(c: str) -> str:
        codes = "|".join(sorted({f"{ord(c.lower()):02x}", f"{ord(c.upper()):02x}"}))
        return f"(?:{re.escape(c)}|%(?:25)?(?:{codes}))"

    return "".join(one(c) for c in name)


# Whitespace as it is, or as a repr() of the raw bytes shows it (aiohttp's parser errors quote
# the offending request line that way: b'Authorization:\\tBearer ...').
_WS = r"(?:[ \t]|\\t)"
# Authorization schemes whose credential follows after a space. Bearer and Basic credentials are
# masked whatever their length; the others (words that also occur in prose: "token expired")
# only when what follows is long enough to be a credential.
_SHORT_SCHEMES = r"bearer|basic"
_LONG_SCHEMES = r"token|negotiate|ntlm|kerberos|dpop|apikey|hoba|mutual|aws4-hmac-sha256"
_SECRET_HEADERS = r"(?:proxy-)?authorization|(?:set-)?cookie|x-registry-auth"
_SECRET_TEXT = [
    # the blob token's query parameter, also percent-encoded (a "?" encoded as %3F puts it in
    # the path): the value runs to the next parameter, whitespace, quote or escape
    (re.compile(rf"({_encoded(TOKEN_PARAM)}(?:=|%(?:25)?3d))[^&\s\"'\\]+", re.I),
     r"\1REDACTED"),
    # a credential-carrying header line, quoted raw: everything after the colon, up to the end
    # of the line (a closing quote stays)
    (re.compile(rf"\b({_SECRET_HEADERS})(['\"]?{_WS}*:{_WS}*)"
                r"(?:(?!\\r|\\n)[^\r\n])+?(?=['\"]?(?:\\r|\\n|[\r\n]|$))", re.I | re.M),
     r"\1\2REDACTED"),
    (re.compile(rf"\b((?:{_SHORT_SCHEMES})(?:\s|\\t)+)[A-Za-z0-9._~+/=-]+", re.I),
     r"\1REDACTED"),
    (re.compile(rf"\b((?:{_LONG_SCHEMES}){_WS}+)[A-Za-z0-9._~+/=-]{{16,}}", re.I),
     r"\1REDACTED"),
    # user:password@ in a URL (also percent-encoded "://")
    (re.compile(r"\b([a-z][a-z0-9+.-]*(?:://|%3a%2f%2f))[^/\s@'\"?#\\]+@", re.I),
     r"\1REDACTED@"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
     "[REDACTED PRIVATE KEY]"),
    # a JWT, or the start of one (an error message may cut it short)
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*){0,2}"), "REDACTED-JWT"),
]
# Every pattern above needs one of these words (in any case): screening for them spares most
# strings the rewrites.
_SCREEN = ("token", "%", *_SHORT_SCHEMES.split("|"), *_LONG_SCHEMES.split("|"), "authorization",
           "cookie", "x-registry-auth", "@", "private key", "eyj")
_MAYBE_SECRET = re.compile("|".join(re.escape(word) for word in _SCREEN), re.I)
_MAYBE_SECRET_LOWER = re.compile(_MAYBE_SECRET.pattern)  # the same, on lowercase ASCII
_KEY_VERDICTS: dict[str, bool] = {}  # field name -> secret-named (names are few: remembered)


def _maybe_secret(text: str) -> bool:
    """Whether ``text`` holds a word of ``_SCREEN``: ``_MAYBE_SECRET``'s verdict. An ASCII text
    (a digest, an address: most of a line) is lowercased and searched case-sensitively, a
    quarter of the case-insensitive search's cost on every line logged; Unicode case folding
    is left to that search."""
    if text.isascii():
        return _MAYBE_SECRET_LOWER.search(text.lower()) is not None
    return _MAYBE_SECRET.search(text) is not None


def _secret_named(key: str) -> bool:
    verdict = _KEY_VERDICTS.get(key)
    if verdict is None:
        verdict = _SECRET_FIELDS.search(key) is not None
        if len(_KEY_VERDICTS) < 4096:  # bounded, whatever names a record brings
            _KEY_VERDICTS[key] = verdict
    return verdict


def redact(value: Any, key: str = "") -> Any:
    """``value`` with secrets masked: secret-named fields wholesale, tokens and keys in text."""
    if key and _secret_named(key) and value not in (None, "", False):
        return "REDACTED"
    if isinstance(value, str):
        if not _maybe_secret(value):
            return value
        for pattern, replacement in _SECRET_TEXT:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """``value`` with anything JSON cannot hold as text (URLs, paths, exceptions), so that the
    redactor sees the text that is written."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return str(value)


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line, every part of it redacted: fields,
    message, exception text and stack."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": getattr(record, "event", None) or "log",
        }
        if _process_label:
            line["process"] = _process_label
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if not getattr(record, "event", None):
            line["logger"] = record.name
            line["msg"] = record.getMessage()
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(redact(_plain(line)), ensure_ascii=False)


def setup_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` as JSON lines, through the redactor: this package's,
    aiohttp's (``aiohttp.server``'s errors quote raw request lines), asyncio's and any other
    library's (the root logger's handler)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonLineFormatter())
    for name in ("cache_under_test", "aiohttp", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log repeats every request in another format: the blob events say more.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # A record that fails to format is reported by logging itself, raw, with its arguments
    # (which may hold a secret): drop it instead.
    logging.raiseExceptions = False
    # Nothing here logs the pid or the thread (the process label says which process): a
    # LogRecord need not look them up for every line.
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    # Nor where in the source a line was logged: no stack walk for every record (the logging
    # HOWTO's "Optimization"; the cost of findCaller on every hit's line).
    logging._srcfile = None


def capture_process_errors() -> None:
    """Route what Python itself would print raw to stderr through the log: uncaught
    exceptions (main thread and others) and warnings. For the cache's own processes."""

    def uncaught(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        LOGGER.critical("process.crashed", exc_info=(exc_type, exc, tb),
                        extra={"event": "process.crashed", "fields": {}})

    sys.excepthook = uncaught
    threading.excepthook = lambda args: uncaught(args.exc_type, args.exc_value,
                                                 args.exc_traceback)
    logging.captureWarnings(True)


def emit_exception(event: str, level: int = logging.ERROR, **fields: Any) -> None:
    """Like ``emit``, with the exception being handled (its traceback goes through the
    redactor like everything else)."""
    LOGGER.log(level, event, exc_info=True, extra={"event": event, "fields": fields})


def set_process_label(label: str) -> None:
    """Name this process in every line it logs (several processes share one stdout)."""
    global _process_label
    _process_label = label


class Every:
    """A gate for lines that repeat while a condition lasts (a limit reached): ``due()`` is
    True at most once every ``interval`` seconds."""

    def __init__(self, interval: float = 10.0):
        self.interval = interval
        self._last = -interval

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True


def emit(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one fact: ``emit("blob.hit", digest=..., repo=..., bytes=..., ms=...)``."""
    LOGGER.log(level, event, extra={"event": event, "fields": fields})
