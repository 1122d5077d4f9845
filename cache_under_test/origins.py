"""Who is whom among URLs: an origin (scheme, host, effective port), whether two URLs share
one (credentials may follow a redirect only within one), and whether a URL reaches this cache
itself (a redirect back here must not be followed)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSPECIFIED = {"", "0.0.0.0", "::"}


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, effective port)`` of ``url``: host lowercased, without brackets or a
    trailing dot; the port the scheme's default when absent. ValueError when unusable."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in DEFAULT_PORTS or not host:
        raise ValueError(f"not an http(s) URL: {safe_url(url)}")
    return scheme, host, parts.port or DEFAULT_PORTS[scheme]


def same_origin(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` have the same scheme, host and effective port (so credentials
    for one may go to the other). ``https://dtr`` and ``http://dtr``, or ``https://dtr:443`` and
    ``http://dtr:443``, are different origins; ``https://dtr`` and ``https://DTR:443`` are not."""
    try:
        return origin(a) == origin(b)
    except ValueError:
        return False


def safe_url(url: str) -> str:
    """``url`` without its query (tokens) for logs and error details."""
    parts = urlsplit(url)
    return parts._replace(query="", fragment="").geturl()


class OwnOrigins:
    """This cache's own ``(host, port)`` pairs: ``http.host`` and the listening address."""

    def __init__(self, urls: Iterable[str]):
        self.pairs = [o for o in (_own_origin(u) for u in urls) if o is not None]
        self._local_ips: dict[str, bool] = {}

    def reaches(self, url: str) -> bool:
        """True when ``url`` reaches this cache: ``http.host``, or its listening address (any
        address of this machine when it listens on all of them)."""
        try:
            _, host, port = origin(url)
        except ValueError:
            return False
        for own_host, own_port in self.pairs:
            if port != own_port:
                continue
            if host == own_host:
                return True
            if own_host in _UNSPECIFIED and self._is_local(host):
                return True
        return False

    def _is_local(self, host: str) -> bool:
        """``localhost``, or an IP address of this machine (one it can bind to). Names other
        than ``localhost`` are not resolved: give such a name as ``http.host``."""
        if host == "localhost":
            return True
        if host not in self._local_ips:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                self._local_ips[host] = False
            else:
                self._local_ips[host] = address.is_loopback or _bindable(address)
        return self._local_ips[host]


def _own_origin(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of one of this cache's own URLs (``host:port`` also accepted)."""
    try:
        _, host, port = origin(url if "://" in url else f"https://{url}")
    except ValueError:
        return None
    return host, port


def _bindable(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((str(address), 0))
        return True
    return False
