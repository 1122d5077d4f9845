"""Go's and logrus's text, as a distribution registry writes it: ``strconv.Quote``, Go's
``time.Duration`` and RFC 3339 nano times, the standard logger's prefix, and logrus's text and
JSON formatters (configured as registry/registry.go configures them)."""

from __future__ import annotations

import json
import time
from typing import Any

# What logrus's TextFormatter leaves unquoted (text_formatter.go, needsQuoting).
_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")
_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v", "\\": "\\\\", '"': '\\"'}
# logrus's level names (logrus.Level.String()) for Python's levels.
LEVELS = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "fatal"}


def quote(text: str) -> str:
    """``strconv.Quote(text)``: printable runes as they are, ``\\n``-style escapes, ``\\xNN``
    for other control bytes and for bytes that are not UTF-8 (surrogate-escaped here),
    ``\\uNNNN``/``\\UNNNNNNNN`` for other runes Go does not print."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xD800 <= code <= 0xDFFF:  # not UTF-8: Go sees (and escapes) the raw bytes
            raw = bytes([code - 0xDC00]) if 0xDC80 <= code <= 0xDCFF \
                else ch.encode("utf-8", "surrogatepass")
            out.extend(f"\\x{b:02x}" for b in raw)
        elif ch.isprintable():  # Go's IsPrint: letters, marks, numbers, punctuation,
            out.append(ch)      # symbols and the ASCII space, as Python's isprintable
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def text_value(value: object) -> str:
    """A field's value as logrus's TextFormatter writes it (``fmt.Sprint``, then ``%q`` when
    any character is outside ``[A-Za-z0-9-._/@^+]``; an empty value stays empty)."""
    text = value if isinstance(value, str) else str(value)
    return text if set(text) <= _BARE else quote(text)


def _frac(value: int, precision: int) -> str:
    """Go's fmtFrac: ``.digits`` of ``value / 10**precision`` without trailing zeros."""
    digits = f"{value % 10 ** precision:0{precision}d}".rstrip("0")
    return f".{digits}" if digits else ""


def duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String()``: ``0s``, ``850ns``, ``512.3µs``, ``12.345ms``,
    ``1.5s``, ``2m3.000000001s``, ``1h0m0s``."""
    if nanoseconds == 0:
        return "0s"
    sign, u = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{u // 1_000}{_frac(u, 3)}µs"
    if u < 1_000_000_000:
        return f"{sign}{u // 1_000_000}{_frac(u, 6)}ms"
    seconds, text = u // 1_000_000_000, _frac(u, 9) + "s"
    minutes, hours = seconds // 60, seconds // 3600
    if not minutes:
        return f"{sign}{seconds}{text}"
    if not hours:
        return f"{sign}{minutes}m{seconds % 60}{text}"
    return f"{sign}{hours}h{minutes % 60}m{seconds % 60}{text}"


def rfc3339nano(ns: int) -> str:
    """``time.RFC3339Nano`` in UTC (the containers' zone): trailing zeros of the fraction
    dropped, and the dot with them."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + _frac(fraction, 9) + "Z"


def std_prefix(ns: int) -> str:
    """The standard logger's prefix (``log.LstdFlags``): ``2006/01/02 15:04:05 ``."""
    return time.strftime("%Y/%m/%d %H:%M:%S ", time.gmtime(ns // 1_000_000_000))


def logrus_text(ns: int, level: str, msg: str, fields: dict) -> str:
    """One line of logrus's TextFormatter (no colours: not a terminal): ``time``, ``level``
    and ``msg`` first, then the fields sorted by key."""
    parts = [f"time={text_value(rfc3339nano(ns))}", f"level={level}"]
    if msg:
        parts.append(f"msg={text_value(msg)}")
    parts += [f"{key}={text_value(fields[key])}" for key in sorted(fields)]
    return " ".join(parts)


def logrus_json(ns: int, level: str, msg: str, fields: dict) -> str:
    """One line of logrus's JSONFormatter (HTML escaping off, as distribution sets it): every
    key sorted, as Go's encoding/json writes a map; numbers stay numbers."""
    line = {**fields, "level": level, "msg": msg, "time": rfc3339nano(ns)}
    text = json.dumps(_valid(line), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    # encoding/json escapes these two even with HTML escaping off (they end JavaScript lines).
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _valid(value: object) -> object:
    """Strings as Go's encoder writes them: bytes that are not UTF-8 become U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace") \
            if any(0xD800 <= ord(c) <= 0xDFFF for c in value) else value
    if isinstance(value, dict):
        return {k: _valid(v) for k, v in value.items()}
    return value


def address(peer: Any) -> str:
    """A socket address as Go's ``net.TCPAddr.String()`` writes it: ``ip:port``,
    ``[ipv6]:port`` (an IPv4-mapped IPv6 address as its IPv4 one)."""
    if not isinstance(peer, (tuple, list)) or len(peer) < 2:
        return str(peer or "")
    host, port = str(peer[0]), peer[1]
    if host.startswith("::ffff:") and "." in host:
        host = host.removeprefix("::ffff:")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
