"""What a client may hold of a server process, and for how long; set from the environment.

Every client connection costs a server process a file descriptor and some memory until it is
closed, so a client that opens connections and then says nothing (or says it one byte at a
time) must not keep them: like nginx's ``client_header_timeout`` and ``worker_connections``,

- ``DTRCACHE_TLS_HANDSHAKE_TIMEOUT`` (default 10 s): a connection that has not finished its TLS
  handshake by then is closed;
- ``DTRCACHE_HEADER_TIMEOUT`` (default 30 s): a request whose line and headers have not all
  arrived by then (counted from the connection's start, or from the first byte of a later
  request on a kept-alive connection) has its connection closed (``connection.timeout``);
- ``DTRCACHE_MAX_CONNECTIONS`` (default 512): the client connections one server process holds
  at most, handshakes included; at the limit it stops accepting (``connections.limit``) until
  one closes, and the other server processes, sharing the port, take the new ones;
- ``DTRCACHE_KEEPALIVE_TIMEOUT`` (default 75 s, nginx's and aiohttp's): an idle kept-alive
  connection is closed after it.

Timeouts are seconds (``30``, ``2.5``) or Go durations (``30s``, ``500ms``). They are part of
the configuration: a bad value stops the cache at start, like a bad config.yml key.

The debug opt-in is here too: ``DTRCACHE_PUBLIC_DEBUG=1`` serves ``/metrics`` and the detailed
health report on the public listener when ``http.debug.addr`` is not set (see ``app``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .durations import DurationError, parse_duration

HANDSHAKE_TIMEOUT_ENV = "DTRCACHE_TLS_HANDSHAKE_TIMEOUT"
HEADER_TIMEOUT_ENV = "DTRCACHE_HEADER_TIMEOUT"
MAX_CONNECTIONS_ENV = "DTRCACHE_MAX_CONNECTIONS"
KEEPALIVE_TIMEOUT_ENV = "DTRCACHE_KEEPALIVE_TIMEOUT"
PUBLIC_DEBUG_ENV = "DTRCACHE_PUBLIC_DEBUG"

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_HEADER_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 512
DEFAULT_KEEPALIVE_TIMEOUT = 75.0
MAX_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Limits:
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT


def _seconds(name: str, text: str, problems: list[str], default: float) -> float:
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds, _ = parse_duration(text)
        except DurationError:
            problems.append(f"{name}: {text!r} is not a number of seconds or a duration "
                            "such as 30s")
            return default
    if not 0 < seconds <= MAX_TIMEOUT:
        problems.append(f"{name}: {text!r} must be more than 0 and at most {MAX_TIMEOUT:g} s")
        return default
    return seconds


def limits_from_env(environ: Mapping[str, str] | None = None,
                    problems: list[str] | None = None) -> Limits:
    """The limits the environment sets; each bad value is a line in ``problems``."""
    environ = os.environ if environ is None else environ
    problems = [] if problems is None else problems
    values = {}
    for field, name, default in (
            ("handshake_timeout", HANDSHAKE_TIMEOUT_ENV, DEFAULT_HANDSHAKE_TIMEOUT),
            ("header_timeout", HEADER_TIMEOUT_ENV, DEFAULT_HEADER_TIMEOUT),
            ("keepalive_timeout", KEEPALIVE_TIMEOUT_ENV, DEFAULT_KEEPALIVE_TIMEOUT)):
        if environ.get(name, "").strip():
            values[field] = _seconds(name, environ[name], problems, default)
    text = environ.get(MAX_CONNECTIONS_ENV, "").strip()
    if text:
        if text.isdigit() and 1 <= int(text) <= 1_000_000:
            values["max_connections"] = int(text)
        else:
            problems.append(f"{MAX_CONNECTIONS_ENV}: {text!r} must be a whole number from 1")
    return Limits(**values)


def public_debug(environ: Mapping[str, str] | None = None) -> bool:
    """``DTRCACHE_PUBLIC_DEBUG`` is on (1, true, yes)."""
    environ = os.environ if environ is None else environ
    return environ.get(PUBLIC_DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")
