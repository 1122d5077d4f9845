"""Evidence: one JSON object a line, a stable ``event`` name per fact, secrets redacted.

Event names (the checks read them): ``config.loaded``, ``config.warning``, ``server.started``,
``blob.hit``, ``blob.miss``, ``blob.join``, ``blob.fetched``, ``blob.expired``,
``blob.fill_failed``, ``upstream.error``, ``auth.denied``, ``keys.fetched``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

from .blobtoken import TOKEN_PARAM

LOGGER = logging.getLogger("cache_under_test")
_process_label: str | None = None  # "fetcher", "server-1"...: set when there are several
_SECRET_FIELDS = re.compile(r"authorization|token|password|passwd|secret|private|cookie", re.I)
_SECRET_TEXT = [
    (re.compile(rf"({TOKEN_PARAM}=)[^&\s\"']+"), r"\1REDACTED"),
    (re.compile(r"((?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+", re.I), r"\1REDACTED"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
     "[REDACTED PRIVATE KEY]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"), "REDACTED-JWT"),
]
# Every pattern above needs one of these: one search spares most strings the four rewrites.
_MAYBE_SECRET = re.compile(rf"{TOKEN_PARAM}=|bearer|basic|PRIVATE KEY|eyJ", re.I)


def redact(value: Any, key: str = "") -> Any:
    """``value`` with secrets masked: secret-named fields wholesale, tokens and keys in text."""
    if key and _SECRET_FIELDS.search(key) and value not in (None, "", False):
        return "REDACTED"
    if isinstance(value, str):
        if not _MAYBE_SECRET.search(value):
            return value
        for pattern, replacement in _SECRET_TEXT:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

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
            line["msg"] = record.getMessage()
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(redact(line), default=str, ensure_ascii=False)


def setup_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send this package's log records (and aiohttp's) to ``stream`` as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonLineFormatter())
    for name in ("cache_under_test", "aiohttp", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # aiohttp's access log repeats every request in another format: the blob events say more.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def set_process_label(label: str) -> None:
    """Name this process in every line it logs (several processes share one stdout)."""
    global _process_label
    _process_label = label


def emit(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one fact: ``emit("blob.hit", digest=..., repo=..., bytes=..., ms=...)``."""
    LOGGER.log(level, event, extra={"event": event, "fields": fields})
