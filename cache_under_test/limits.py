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
  connection is closed after it;
- ``DTRCACHE_MAX_CLIENT_CONNECTIONS`` (default 0: no limit): the connections one server
  process holds from one client address; more are closed as they come (like nginx's
  ``limit_conn``), so one address cannot take every slot.

And what the cache may ask of its upstreams, and believe of their tokens:

- ``DTRCACHE_MAX_FILLS`` (default 64): upstream fetches in flight per upstream; a cold miss
  that finds every upstream at it gets 503 with ``Retry-After`` (``RETRY_AFTER``) at once;
- ``DTRCACHE_CLOCK_LEEWAY`` (default 60 s, distribution's): how far a token's ``iat``/``nbf``
  may be in the future, and its ``exp`` in the past, by this cache's clock;
- ``DTRCACHE_MAX_TOKEN_LIFETIME`` (default 1 h): the longest ``exp - iat`` a token may have;
- ``DTRCACHE_KEYS_REFRESH`` (default 5 min): how often the upstream's signing keys are fetched
  again (also on a token with an unknown key id, at most once a second).

Times are seconds (``30``, ``2.5``) or Go durations (``30s``, ``500ms``). They are part of
the configuration: a bad value stops the cache at start, like a bad config.yml key.

The debug opt-in is here too: ``DTRCACHE_PUBLIC_DEBUG=1`` serves ``/metrics`` and the detailed
health report on the public listener when ``http.debug.addr`` is not set (see ``app``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .blobtoken import LEEWAY, MAX_LIFETIME
from .durations import DurationError, parse_duration

PUBLIC_DEBUG_ENV = "DTRCACHE_PUBLIC_DEBUG"

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_HEADER_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 512
DEFAULT_KEEPALIVE_TIMEOUT = 75.0
DEFAULT_MAX_FILLS = 64
DEFAULT_CLOCK_LEEWAY = LEEWAY
DEFAULT_MAX_TOKEN_LIFETIME = MAX_LIFETIME
DEFAULT_KEYS_REFRESH = 300.0
MAX_TIMEOUT = 3600.0
RETRY_AFTER = 10  # seconds, the Retry-After of a 503 when every upstream is at its bound


@dataclass(frozen=True)
class Limits:
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    max_client_connections: int = 0  # 0: no per-address limit
    max_fills: int = DEFAULT_MAX_FILLS
    clock_leeway: float = DEFAULT_CLOCK_LEEWAY
    max_token_lifetime: float = DEFAULT_MAX_TOKEN_LIFETIME
    keys_refresh: float = DEFAULT_KEYS_REFRESH


# field, variable, kind ("... or 0": 0 allowed, meaning none), largest value
_KNOBS = (
    ("handshake_timeout", "DTRCACHE_TLS_HANDSHAKE_TIMEOUT", "seconds", MAX_TIMEOUT),
    ("header_timeout", "DTRCACHE_HEADER_TIMEOUT", "seconds", MAX_TIMEOUT),
    ("keepalive_timeout", "DTRCACHE_KEEPALIVE_TIMEOUT", "seconds", MAX_TIMEOUT),
    ("max_connections", "DTRCACHE_MAX_CONNECTIONS", "count", 1_000_000),
    ("max_client_connections", "DTRCACHE_MAX_CLIENT_CONNECTIONS", "count or 0", 1_000_000),
    ("max_fills", "DTRCACHE_MAX_FILLS", "count", 100_000),
    ("clock_leeway", "DTRCACHE_CLOCK_LEEWAY", "seconds or 0", MAX_TIMEOUT),
    ("max_token_lifetime", "DTRCACHE_MAX_TOKEN_LIFETIME", "seconds", 366 * 86400.0),
    ("keys_refresh", "DTRCACHE_KEYS_REFRESH", "seconds", 86400.0),
)


def _count(name: str, text: str, problems: list[str], zero: bool, top: float) -> int | None:
    lowest = 0 if zero else 1
    if text.isdigit() and lowest <= int(text) <= top:
        return int(text)
    problems.append(f"{name}: {text!r} must be a whole number from {lowest} to {top:.0f}")
    return None


def _seconds(name: str, text: str, problems: list[str], zero: bool,
             top: float) -> float | None:
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds, _ = parse_duration(text)
        except DurationError:
            problems.append(f"{name}: {text!r} is not a number of seconds or a duration "
                            "such as 30s")
            return None
    if not (seconds >= 0 if zero else seconds > 0) or seconds > top:
        problems.append(f"{name}: {text!r} must be {'0 or more' if zero else 'more than 0'} "
                        f"and at most {top:g} s")
        return None
    return seconds


def limits_from_env(environ: Mapping[str, str] | None = None,
                    problems: list[str] | None = None) -> Limits:
    """The limits the environment sets; each bad value is a line in ``problems``."""
    environ = os.environ if environ is None else environ
    problems = [] if problems is None else problems
    values: dict[str, float | int] = {}
    for field, name, kind, top in _KNOBS:
        text = environ.get(name, "").strip()
        if not text:
            continue
        parse = _seconds if kind.startswith("seconds") else _count
        value = parse(name, text, problems, kind.endswith("or 0"), top)
        if value is not None:
            values[field] = value
    return Limits(**values)


def public_debug(environ: Mapping[str, str] | None = None) -> bool:
    """``DTRCACHE_PUBLIC_DEBUG`` is on (1, true, yes)."""
    environ = os.environ if environ is None else environ
    return environ.get(PUBLIC_DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")
