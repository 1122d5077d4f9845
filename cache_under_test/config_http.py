"""The ``http`` section of the cache's config.yml: the listening address, the external URL, the
secret, the TLS certificate and key (checked to load, match, be unencrypted and strong), and
the debug address (``http.debug.addr``: where ``/metrics`` and the detailed health report are
served)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import faults


@dataclass(frozen=True)
class TLSFiles:
    """The cache's own certificate chain and key (``http.tls``)."""

    certificate: Path
    key: Path



@dataclass(frozen=True)
class DebugListener:
    """``http.debug``: distribution's debug server, where this cache serves ``/metrics`` and
    the detailed health report (plain HTTP: bind it to a private address)."""

    host: str
    port: int
    metrics_path: str = "/metrics"
    prometheus: bool = True


def _addr(value: object, key: str, problems: list[str],
          default: tuple[str, int]) -> tuple[str, int]:
    addr = str(value)
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]]*):(\d{1,5})", addr)
    if not match or not 0 < int(match.group(2)) < 65536:
        problems.append(f"{key}: {addr!r} must be host:port with a port from 1 to 65535")
        return default
    return match.group(1).strip("[]") or "0.0.0.0", int(match.group(2))


def http_section(http: object, problems: list[str], warnings: list[str]):
    if http is None:
        http = {}
    if not isinstance(http, dict):
        problems.append("http: must be a mapping")
        return "0.0.0.0", 5000, None, None, None
    host, port = _addr(http.get("addr", ":5000"), "http.addr", problems, ("0.0.0.0", 5000))
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
    debug = _debug(http.get("debug"), (host, port), problems)
    return host, port, ext_host, tls, debug


def _debug(debug: object, main: tuple[str, int], problems: list[str]) -> DebugListener | None:
    """``http.debug.addr`` (and ``http.debug.prometheus.enabled``/``path``, as distribution
    spells them); None when there is no debug address."""
    if debug in (None, {}):
        return None
    if not isinstance(debug, dict):
        problems.append("http.debug: must be a mapping with addr")
        return None
    if debug.get("addr") in (None, ""):
        return None  # distribution: no debug server without an address
    host, port = _addr(debug["addr"], "http.debug.addr", problems, ("", 0))
    if not port:
        return None
    if port == main[1] and (host == main[0] or "0.0.0.0" in (host, main[0])):
        problems.append(f"http.debug.addr: {debug['addr']!r} is the cache's own http.addr; "
                        "use another port (e.g. localhost:5001)")
        return None
    prometheus = debug.get("prometheus") or {}
    if not isinstance(prometheus, dict):
        problems.append("http.debug.prometheus: must be a mapping (enabled, path)")
        prometheus = {}
    enabled = prometheus.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"http.debug.prometheus.enabled: {enabled!r} must be true or false")
        enabled = True
    path = str(prometheus.get("path") or "/metrics")
    if not path.startswith("/") or path in ("/health", "/debug/health"):
        problems.append(f"http.debug.prometheus.path: {path!r} must be a path such as /metrics")
        path = "/metrics"
    return DebugListener(host, port, path, enabled)


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
