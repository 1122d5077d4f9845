"""Read and validate the cache's ``config.yml`` (the DTR seed guide's format): the file, the
environment overrides, the log and storage sections; ``http`` is in config_http, the
``downstream`` middleware's options in config_downstream.

Every problem is reported as ``key.path: what is wrong`` and all of them are reported at once;
the server never binds a port with a config that has one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dtr_cache_formats.registry_config import apply_env_overrides

from . import faults
from .config_downstream import (
    DEFAULT_FETCHTIMEOUT,
    DEFAULT_MINRATE,
    downstream_section,
    downstream_values,
)
from .config_http import DebugListener, TLSFiles, http_section
from .config_log import LogOutput, log_output
from .durations import human
from .limits import PUBLIC_DEBUG_ENV, Limits, limits_from_env, public_debug

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
    debug: DebugListener | None = None         # http.debug: /metrics and the detailed /health
    blobttl: float | None = None
    delete_enabled: bool = False
    cas: list[Path] = field(default_factory=list)
    origin: str | None = None
    minrate: float | None = DEFAULT_MINRATE   # bytes/s; None: no minimum
    fetchtimeout: float | None = DEFAULT_FETCHTIMEOUT  # seconds for a whole upstream transfer
    own_urls: list[str] = field(default_factory=list)  # http.host, the listening address
    log_level: str = "INFO"
    warnings: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    test_faults: frozenset[str] = frozenset()   # TEST-ONLY (cache_under_test.faults)
    limits: Limits = field(default_factory=Limits)  # timeouts, connections (limits.py)
    public_debug: bool = False  # /metrics and the detailed /health on the public listener
    output: LogOutput = field(default_factory=LogOutput)  # DTRCACHE_PROFILE, log.formatter...


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
    problems: list[str] = []
    config.limits = limits_from_env(environ, problems)
    config.output = log_output(raw, environ, problems)
    if problems:
        raise ConfigError(problems)
    if public_debug(environ):
        if config.debug is not None:
            config.warnings.append(f"{PUBLIC_DEBUG_ENV}: ignored, http.debug.addr is set: "
                                   "/metrics and the detailed /health are served there")
        else:
            config.public_debug = True
            config.warnings.append(f"{PUBLIC_DEBUG_ENV}: /metrics and the detailed /health "
                                   "(upstream URLs, key ids) are served on the public "
                                   "listener without authentication; prefer http.debug.addr")
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
    addr_host, addr_port, host, tls, debug = http_section(raw.get("http"), problems, warnings)
    options = downstream_section(raw.get("middleware"), problems, warnings)

    upstreams, origin, blobttl, cas, minrate, fetchtimeout = downstream_values(
        options, delete_enabled, problems, warnings)

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
        host=host, tls=tls, debug=debug, blobttl=blobttl, delete_enabled=delete_enabled, cas=cas,
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
        "debug_addr": f"{config.debug.host}:{config.debug.port}" if config.debug else None,
        "cas": [str(p) for p in config.cas],
        "minrate_bytes_s": config.minrate,
        "fetchtimeout_s": config.fetchtimeout,
        "overrides": config.overrides,
        "test_faults": sorted(config.test_faults),
        "limits": {"tls_handshake_timeout_s": config.limits.handshake_timeout,
                   "header_timeout_s": config.limits.header_timeout,
                   "keepalive_timeout_s": config.limits.keepalive_timeout,
                   "max_connections": config.limits.max_connections,
                   "max_client_connections": config.limits.max_client_connections,
                   "max_fills": config.limits.max_fills,
                   "clock_leeway_s": config.limits.clock_leeway,
                   "max_token_lifetime_s": config.limits.max_token_lifetime,
                   "keys_refresh_s": config.limits.keys_refresh},
        "public_debug": config.public_debug,
        "profile": config.output.profile,
    }
