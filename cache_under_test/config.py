"""Read and validate the cache's ``config.yml`` (the DTR seed guide's format).

Every problem is reported as ``key.path: what is wrong`` and all of them are reported at once;
the server never binds a port with a config that has one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dtr_cache_formats.registry_config import ENV_PREFIX as ENV_PREFIX  # re-exported
from dtr_cache_formats.registry_config import apply_env_overrides

from . import faults
from .durations import DurationError, human, parse_duration

DOWNSTREAM_OPTIONS = {"blobttl", "upstreams", "cas", "minrate", "fetchtimeout"}
# An upstream body slower than this (bytes/s, over every upstream.RATE_WINDOW seconds) is broken
# off; ``minrate: 0`` turns the check off.
DEFAULT_MINRATE = 1024.0
_RATE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kKmMgG]i?)?[bB]?(?:/s)?")
_RATE_UNITS = {"": 1, "k": 1000, "ki": 1024, "m": 1000**2, "mi": 1024**2, "g": 1000**3,
               "gi": 1024**3}
LOG_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "warning": "WARNING",
              "error": "ERROR", "fatal": "CRITICAL", "panic": "CRITICAL"}
KNOWN_SECTIONS = {"version", "log", "loglevel", "storage", "http", "middleware", "auth",
                  "notifications", "redis", "health", "proxy", "reporting", "validation",
                  "compatibility", "catalog"}
STORAGE_PARAMS = {"delete", "cache", "maintenance", "redirect", "tag"}
DEFAULT_ROOT = "/var/lib/registry"


class ConfigError(Exception):
    """The configuration has problems; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class TLSFiles:
    """The cache's own certificate chain and key (``http.tls``)."""

    certificate: Path
    key: Path


@dataclass
class CacheConfig:
    """A validated configuration."""

    source: str
    root: Path
    upstreams: list[str]
    addr_host: str = "0.0.0.0"
    addr_port: int = 5000
    host: str | None = None
    tls: TLSFiles | None = None
    blobttl: float | None = None
    delete_enabled: bool = False
    cas: list[Path] = field(default_factory=list)
    origin: str | None = None
    minrate: float | None = DEFAULT_MINRATE   # bytes/s; None: no minimum
    fetchtimeout: float | None = None         # seconds for a whole upstream transfer
    own_urls: list[str] = field(default_factory=list)  # http.host, the listening address
    log_level: str = "INFO"
    warnings: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    test_faults: frozenset[str] = frozenset()   # TEST-ONLY (cache_under_test.faults)


def load_config(path: str | os.PathLike, environ: Mapping[str, str] | None = None) -> CacheConfig:
    """Load ``path``, apply ``REGISTRY_*`` overrides from ``environ``, validate it."""
    environ = os.environ if environ is None else environ
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    overrides = apply_env_overrides(raw, environ)
    config = validate(raw, source=str(path))
    config.overrides = overrides
    try:
        config.test_faults = faults.enabled(environ)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from exc
    for name in sorted(config.test_faults):
        config.warnings.append(f"TEST-ONLY FAULT MODE {name!r} IS ON: "
                               f"{faults.CACHE_FAULTS[name]}. Never run this in production.")
    return config


def validate(raw: dict, *, source: str = "config.yml") -> CacheConfig:
    """Validate a parsed config mapping; raise ConfigError listing every problem."""
    problems: list[str] = []
    warnings: list[str] = []

    for key in raw:
        if key not in KNOWN_SECTIONS:
            warnings.append(f"{key}: unknown section, ignored")
    for key in ("auth", "proxy", "notifications", "redis"):
        if key in raw:
            warnings.append(f"{key}: not used by this cache, ignored")

    log_level = _log_level(raw, problems)
    root, delete_enabled = _storage(raw.get("storage"), problems)
    addr_host, addr_port, host, tls = _http(raw.get("http"), problems, warnings)
    options = _downstream_options(raw.get("middleware"), problems, warnings)

    upstreams: list[str] = []
    origin = None
    blobttl = None
    cas: list[Path] = []
    minrate: float | None = DEFAULT_MINRATE
    fetchtimeout = None
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

    if problems:
        raise ConfigError(problems)
    listen_host = f"[{addr_host}]" if ":" in addr_host else addr_host
    own_urls = [f"https://{listen_host}:{addr_port}"]
    if host:
        own_urls.insert(0, str(host))
    return CacheConfig(
        source=source, root=root,
        upstreams=upstreams, own_urls=own_urls,
        addr_host=addr_host, addr_port=addr_port,
        host=host, tls=tls, blobttl=blobttl, delete_enabled=delete_enabled, cas=cas,
        origin=origin, minrate=minrate, fetchtimeout=fetchtimeout, log_level=log_level,
        warnings=warnings,
    )


def _log_level(raw: dict, problems: list[str]) -> str:
    log = raw.get("log") or {}
    if not isinstance(log, dict):
        problems.append("log: must be a mapping")
        return "INFO"
    level = str(log.get("level", raw.get("loglevel", "info"))).lower()
    if level not in LOG_LEVELS:
        problems.append(f"log.level: {level!r} is not one of debug, info, warn, error")
        return "INFO"
    return LOG_LEVELS[level]


def _storage(storage: object, problems: list[str]) -> tuple[Path, bool]:
    if storage is None:
        storage = {}
    if not isinstance(storage, dict):
        problems.append("storage: must be a mapping")
        return Path(DEFAULT_ROOT), False
    drivers = [k for k in storage if k not in STORAGE_PARAMS]
    for driver in drivers:
        if driver != "filesystem":
            problems.append(f"storage.{driver}: this cache supports only the filesystem driver")
    fs = storage.get("filesystem") or {}
    if not isinstance(fs, dict):
        problems.append("storage.filesystem: must be a mapping")
        fs = {}
    root = fs.get("rootdirectory", DEFAULT_ROOT)
    if not isinstance(root, str) or not root.startswith("/"):
        problems.append(f"storage.filesystem.rootdirectory: {root!r} must be an absolute path")
        root = DEFAULT_ROOT
    delete = storage.get("delete") or {}
    enabled = delete.get("enabled", False) if isinstance(delete, dict) else False
    if not isinstance(enabled, bool):
        problems.append(f"storage.delete.enabled: {enabled!r} must be true or false")
        enabled = False
    return Path(root), enabled


def _http(http: object, problems: list[str], warnings: list[str]):
    if http is None:
        http = {}
    if not isinstance(http, dict):
        problems.append("http: must be a mapping")
        return "0.0.0.0", 5000, None, None
    addr = str(http.get("addr", ":5000"))
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]]*):(\d{1,5})", addr)
    host, port = "0.0.0.0", 5000
    if not match or not 0 < int(match.group(2)) < 65536:
        problems.append(f"http.addr: {addr!r} must be host:port with a port from 1 to 65535")
    else:
        host = match.group(1).strip("[]") or "0.0.0.0"
        port = int(match.group(2))
    ext_host = http.get("host")
    if ext_host is not None:
        parts = urlsplit(str(ext_host))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"http.host: {ext_host!r} must be a URL such as https://cache.example.com")
    if http.get("secret") in (None, ""):
        warnings.append("http.secret: not set; set the same random value on every replica")
    tls = _tls(http.get("tls"), problems)
    if tls is None:
        warnings.append("http.tls: not set, serving plain HTTP (DTR requires HTTPS for a cache)")
    return host, port, ext_host, tls


def _tls(tls: object, problems: list[str]) -> TLSFiles | None:
    if not tls:
        return None
    if not isinstance(tls, dict):
        problems.append("http.tls: must be a mapping with certificate and key")
        return None
    found = {}
    for key in ("certificate", "key"):
        value = tls.get(key)
        if not value:
            problems.append(f"http.tls.{key}: missing")
            continue
        path = Path(str(value))
        try:
            found[key] = path.read_bytes()
        except OSError as exc:
            problems.append(f"http.tls.{key}: cannot read {path}: {exc.strerror}")
    if len(found) < 2:
        return None
    try:
        chain = x509.load_pem_x509_certificates(found["certificate"])
    except ValueError:
        problems.append(f"http.tls.certificate: {tls['certificate']} holds no PEM certificate")
        return None
    try:
        key = serialization.load_pem_private_key(found["key"], password=None)
    except TypeError:
        problems.append(f"http.tls.key: {tls['key']} is encrypted; the cache needs an "
                        "unencrypted key (openssl pkey -in KEY -out KEY.plain)")
        return None
    except (ValueError, serialization.UnsupportedAlgorithm):
        problems.append(f"http.tls.key: {tls['key']} holds no PEM private key")
        return None
    size = getattr(key, "key_size", None)
    weak_allowed = "allow-weak-key" in faults.enabled()  # TEST-ONLY: see faults.py
    if size is not None and size < (2048 if isinstance(key, rsa.RSAPrivateKey) else 256) \
            and not weak_allowed:
        problems.append(f"http.tls.key: {tls['key']} is a weak {size}-bit key; use RSA 2048+ "
                        "or EC P-256 (clients refuse weaker ones)")
        return None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if chain[0].public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        problems.append(f"http.tls.key: {tls['key']} does not match the certificate "
                        f"in {tls['certificate']} (the first certificate must be the cache's)")
        return None
    return TLSFiles(Path(str(tls["certificate"])), Path(str(tls["key"])))


def _downstream_options(middleware: object, problems: list[str], warnings: list[str]):
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


def _blobttl(options: dict, base: str, delete_enabled: bool,
             problems: list[str], warnings: list[str]) -> float | None:
    if "blobttl" not in options or options["blobttl"] is None:
        return None
    value = options["blobttl"]
    try:
        seconds, had_unit = parse_duration(value)
    except DurationError as exc:
        problems.append(f"{base}.blobttl: {exc}")
        return None
    if seconds <= 0:
        problems.append(f"{base}.blobttl: {value!r} must be a positive duration, e.g. '24h'")
        return None
    if not had_unit:
        warnings.append(
            f"WARNING {base}.blobttl: {value!r} has no unit and is read as NANOSECONDS, i.e. "
            f"{human(seconds)}: every blob expires almost at once. Write a unit, e.g. '24h'."
        )
    if not delete_enabled:
        problems.append(f"{base}.blobttl: set, but storage.delete.enabled is not true; "
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
    """``fetchtimeout``: the longest one upstream transfer may take, headers and body."""
    if "fetchtimeout" not in options or options["fetchtimeout"] is None:
        return None
    value = options["fetchtimeout"]
    try:
        seconds, had_unit = parse_duration(value)
    except DurationError as exc:
        problems.append(f"{key}: {exc}")
        return None
    if not had_unit:
        problems.append(f"{key}: {value!r} has no unit; write one, e.g. '30m' (a bare number "
                        "would be nanoseconds)")
        return None
    if seconds <= 0:
        problems.append(f"{key}: {value!r} must be a positive duration, e.g. '30m'")
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


def describe(config: CacheConfig) -> dict:
    """The facts worth logging at start (no secrets: ``http.secret`` is never included)."""
    return {
        "source": config.source,
        "upstreams": config.upstreams,
        "blobttl_s": config.blobttl,
        "blobttl": human(config.blobttl) if config.blobttl else None,
        "root": str(config.root),
        "addr": f"{config.addr_host}:{config.addr_port}",
        "tls": bool(config.tls),
        "cas": [str(p) for p in config.cas],
        "minrate_bytes_s": config.minrate,
        "fetchtimeout_s": config.fetchtimeout,
        "overrides": config.overrides,
        "test_faults": sorted(config.test_faults),
    }
