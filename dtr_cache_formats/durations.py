"""Go-style durations (``24h``, ``1h30m``, ``500ms``) as the registry's config.yml writes them."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3,
          "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """A value that is not a Go duration."""


def parse_duration(value: object) -> tuple[float, bool]:
    """Return ``(seconds, had_unit)``.

    A bare integer (a YAML number) is read as nanoseconds, as Go's time.Duration does;
    ``had_unit`` is False then so that the caller can warn loudly. A string is what Go's
    time.ParseDuration reads: a unit is required (``"86400"`` is refused: "missing unit"),
    except for ``"0"``.
    """
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration")
    if isinstance(value, int):
        return value * 1e-9, False
    if isinstance(value, float):
        raise DurationError(f"{value!r} is not a duration: give a unit, e.g. '24h'")
    if not isinstance(value, str):
        raise DurationError(f"{value!r} is not a duration")
    text = value.strip()
    if re.fullmatch(r"[+-]?0+", text):
        return 0.0, False
    if re.fullmatch(r"[+-]?\d+(\.\d*)?", text):
        raise DurationError(f"{value!r} is not a duration: missing unit (Go's "
                            "time.ParseDuration refuses it; write e.g. '24h')")
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if not body:
        raise DurationError(f"{value!r} is not a duration")
    pos, total = 0, 0.0
    for match in _PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(body):
        raise DurationError(f"{value!r} is not a duration (expected e.g. '24h', '90m', '1h30m')")
    return sign * total, True


def human(seconds: float) -> str:
    """A short human rendering: ``1d 2h``, ``90 s``, ``86.4 µs``."""
    if seconds >= 86400:
        days, rest = divmod(seconds, 86400)
        return f"{int(days)}d {int(rest // 3600)}h" if rest >= 3600 else f"{int(days)}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.4g} h"
    if seconds >= 60:
        return f"{seconds / 60:.4g} min"
    if seconds >= 1:
        return f"{seconds:.4g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.4g} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.4g} µs"
    return f"{seconds * 1e9:.4g} ns"
