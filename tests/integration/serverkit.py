"""Helpers for the integration tests (not fixtures): the test PKI's record, the DTR stand-in
stack's record, and what the tests read of a running server (a registry's fetch count, a
cache's events, its stored files, its debug listener)."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from dtr_cache_check.pki import CertificateAuthority, Issued, trust_context
from dtr_cache_check.probes.logs import distribution_requests, events
from dtr_cache_check.probes.registry import RegistryClient
from dtr_cache_check.testkit.local import LocalServer, read_password


@dataclass
class TestPKI:
    root: CertificateAuthority
    leaf: Issued
    ca_path: Path

    @property
    def context(self):
        return trust_context(self.root)


def wait_debug_ready(server: LocalServer, timeout: float = 20.0) -> None:
    """Poll the cache's debug listener until it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(server.extra["debug_url"] + "/health", timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or not server.alive():
                raise AssertionError("the debug listener never answered:\n"
                                     + server.log_path.read_text()[-2000:]) from None
            time.sleep(0.1)


def upstream_gets(registry: LocalServer, repo: str, digest: str, settle: float = 0.3) -> int:
    """How many blob GETs the real registry answered for ``digest`` (its own log), once the
    count has held for ``settle`` seconds.

    distribution writes its access line after the response is complete, which can be just
    after the cache (and so the test's client) has the last byte: a count read at once can
    miss the fetch that has just been answered.
    """
    path = f"/v2/{repo}/blobs/{digest}"
    count = len(distribution_requests(registry.log_lines(), "GET", path))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(settle)
        again = len(distribution_requests(registry.log_lines(), "GET", path))
        if again == count:
            break
        count = again
    return count


def wait_for_event(server: LocalServer, name: str, /, timeout: float = 10.0, count: int = 1,
                   **match):
    """The server's ``name`` events matching ``match``, once there are ``count`` of them.

    A server logs a blob event when the response is complete, which can be just after the
    client has the last byte: tests wait for the line rather than race it.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = events(server.log_lines(), name, **match)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} of {count} {name} {match} in {server.name}'s "
                                 "log:\n" + server.log_path.read_text()[-2000:])
        time.sleep(0.05)


def stored_files(cache: LocalServer) -> list[Path]:
    """Published blobs and leftover uploads under the cache's storage root."""
    root = cache.extra["storage"] / "docker" / "registry" / "v2"
    return sorted(p for p in root.rglob("*") if p.is_file())


CACHES = "/api/v0/content_caches"


@dataclass
class Stack:
    """The running processes and what the tests need to talk to them."""

    workdir: Path
    ca: CertificateAuthority
    ca_file: Path
    registry: LocalServer
    dtr: LocalServer
    cache: LocalServer
    verify: ssl.SSLContext
    dtr_tls: Issued

    def password(self, user: str) -> str:
        return read_password(self.dtr.extra["users"], user)

    def client(self, user: str) -> RegistryClient:
        return RegistryClient(self.dtr.url, verify=self.verify, username=user,
                              password=self.password(user))

    def api(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.dtr.url, verify=self.verify,
                            auth=(user, self.password(user)), timeout=30)
