"""The ``downstream`` middleware's options in the cache's config.yml: upstreams (the seed's
form and the legacy originhost/upstreamhosts one), blobttl, cas, minrate and fetchtimeout."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from .durations import DurationError, human, parse_duration

DOWNSTREAM_OPTIONS = {"blobttl", "upstreams", "cas", "minrate", "fetchtimeout"}
# An upstream body slower than this (bytes/s, over every upstream.RATE_WINDOW seconds) is broken
# off; ``minrate: 0`` turns the check off.
DEFAULT_MINRATE = 1024.0
# The longest one upstream transfer (a fill) may take when fetchtimeout is not set.
DEFAULT_FETCHTIMEOUT = 3600.0
_RATE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kKmMgG]i?)?[bB]?(?:/s)?")
_RATE_UNITS = {"": 1, "k": 1000, "ki": 1024, "m": 1000**2, "mi": 1024**2, "g": 1000**3,
               "gi": 1024**3}

def downstream_section(middleware: object, problems: list[str], warnings: list[str]):
    entries = middleware.get("registry") if isinstance(middleware, dict) else None
    if not isinstance(entries, list):
        problems.append("middleware.registry: missing; add the downstream middleware "
                        "(name: downstream, options: {upstreams: [https://<dtr>]})")
        return None
    found = None
    for i, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if name == "downstream":
            found = entry.get("options")
            if not isinstance(found, dict):
                problems.append(f"middleware.registry[{i}].options: must be a mapping")
                return None
        else:
            warnings.append(f"middleware.registry[{i}]: middleware {name!r} ignored")
    if found is None:
        problems.append("middleware.registry: no entry named downstream")
    return found


def _upstreams(value: object, key: str, problems: list[str]) -> tuple[list[str], str | None]:
    if not value:
        problems.append(f"{key}: missing or empty; list DTR's URL, e.g. https://dtr.example.com")
        return [], None
    if not isinstance(value, list):
        problems.append(f"{key}: must be a list of URLs")
        return [], None
    upstreams: list[str] = []
    origin = None
    for i, item in enumerate(value):
        if isinstance(item, dict):  # DTR 2.2's legacy form
            origin = _upstream_url(item.get("originhost"), f"{key}[{i}].originhost", problems)
            hosts = item.get("upstreamhosts") or []
            if not isinstance(hosts, list):
                problems.append(f"{key}[{i}].upstreamhosts: must be a list of URLs")
                continue
            for j, host in enumerate(hosts):
                url = _upstream_url(host, f"{key}[{i}].upstreamhosts[{j}]", problems)
                if url:
                    upstreams.append(url)
            if not hosts and origin:
                upstreams.append(origin)
        else:
            url = _upstream_url(item, f"{key}[{i}]", problems)
            if url:
                upstreams.append(url)
    return upstreams, origin


def _upstream_url(value: object, key: str, problems: list[str]) -> str | None:
    text = str(value or "")
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (parts.scheme not in ("http", "https") or not parts.hostname or port == -1
            or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username):
        problems.append(f"{key}: {text!r} is not scheme://host[:port] (e.g. https://dtr.example.com:443)")
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _duration(options: dict, name: str, key: str, example: str,
              problems: list[str]) -> tuple[float, bool] | None:
    """``(seconds, had_unit)`` of the positive duration option ``name``; None when it is absent
    or wrong (the problem then names ``key``)."""
    value = options.get(name)
    if value is None:
        return None
    try:
        seconds, had_unit = parse_duration(value)
    except DurationError as exc:
        problems.append(f"{key}: {exc}")
        return None
    if seconds <= 0:
        problems.append(f"{key}: {value!r} must be a positive duration, e.g. '{example}'")
        return None
    return seconds, had_unit


def _blobttl(options: dict, base: str, delete_enabled: bool,
             problems: list[str], warnings: list[str]) -> float | None:
    key = f"{base}.blobttl"
    parsed = _duration(options, "blobttl", key, "24h", problems)
    if parsed is None:
        return None
    seconds, had_unit = parsed
    if not had_unit:  # Go reads a bare number as nanoseconds: allowed, and loudly
        warnings.append(
            f"WARNING {key}: {options['blobttl']!r} has no unit and is read as NANOSECONDS, "
            f"i.e. {human(seconds)}: every blob expires almost at once. Write a unit, e.g. "
            "'24h'.")
    if not delete_enabled:
        problems.append(f"{key}: set, but storage.delete.enabled is not true; "
                        "expired blobs cannot be removed (set storage.delete.enabled: true)")
    return seconds


def _minrate(options: dict, key: str, problems: list[str]) -> float | None:
    """``minrate``: bytes per second, a number or a size with a unit (``512KiB``, ``1MB/s``);
    0 turns the check off."""
    if "minrate" not in options or options["minrate"] is None:
        return DEFAULT_MINRATE
    value = options["minrate"]
    match = None if isinstance(value, bool) else _RATE.fullmatch(str(value).strip())
    if match is None or (isinstance(value, (int, float)) and value < 0):
        problems.append(f"{key}: {value!r} is not a rate in bytes per second (e.g. 1024, "
                        "'64KiB', '1MB/s'; 0 turns the check off)")
        return DEFAULT_MINRATE
    rate = float(match["number"]) * _RATE_UNITS[(match["unit"] or "").lower()]
    return rate or None


def _fetchtimeout(options: dict, key: str, problems: list[str]) -> float | None:
    """``fetchtimeout``: the longest one upstream transfer may take, headers and body
    (``DEFAULT_FETCHTIMEOUT`` when not set)."""
    if options.get("fetchtimeout") is None:
        return DEFAULT_FETCHTIMEOUT
    parsed = _duration(options, "fetchtimeout", key, "30m", problems)
    if parsed is None:
        return None
    seconds, had_unit = parsed
    if not had_unit:  # a new option: no reason to repeat blobttl's nanosecond trap
        problems.append(f"{key}: {options['fetchtimeout']!r} has no unit; write one, e.g. "
                        "'30m' (a bare number would be nanoseconds)")
        return None
    return seconds


def _cas(value: object, key: str, problems: list[str]) -> list[Path]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{key}: must be a list of PEM file paths")
        return []
    paths = []
    for i, item in enumerate(value):
        path = Path(str(item))
        if not path.is_absolute():
            problems.append(f"{key}[{i}]: {item!r} must be an absolute path")
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            problems.append(f"{key}[{i}]: cannot read {path}: {exc.strerror}")
            continue
        try:
            x509.load_pem_x509_certificates(data)
        except ValueError:
            problems.append(f"{key}[{i}]: {path} holds no PEM certificate")
            continue
        paths.append(path)
    return paths


def downstream_values(options: dict | None, delete_enabled: bool, problems: list[str],
                      warnings: list[str]):
    """(upstreams, origin, blobttl, cas, minrate, fetchtimeout) from the downstream options."""
    upstreams: list[str] = []
    origin = None
    blobttl = None
    cas: list[Path] = []
    minrate: float | None = DEFAULT_MINRATE
    fetchtimeout: float | None = DEFAULT_FETCHTIMEOUT
    if options is not None:
        base = "middleware.registry[downstream].options"
        for key in sorted(set(options) - DOWNSTREAM_OPTIONS):
            problems.append(f"{base}.{key}: unknown option (known: blobttl, upstreams, cas, "
                            "minrate, fetchtimeout)")
        upstreams, origin = _upstreams(options.get("upstreams"), f"{base}.upstreams", problems)
        blobttl = _blobttl(options, base, delete_enabled, problems, warnings)
        cas = _cas(options.get("cas"), f"{base}.cas", problems)
        minrate = _minrate(options, f"{base}.minrate", problems)
        fetchtimeout = _fetchtimeout(options, f"{base}.fetchtimeout", problems)
    return upstreams, origin, blobttl, cas, minrate, fetchtimeout
