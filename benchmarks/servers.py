"""The lab: every server of a run, on loopback, with one test PKI, started and stopped here.

    distribution (TLS) ........ the hit peer, and the upstream of the pull-through cache
    distribution (HTTP) ....... the same storage, behind the DTR stand-in (as in the tests)
    DTR stand-in .............. token auth, signed 307s to the registered cache
    cache "token" ............. upstream: the stand-in; hits authorized by the signed token
    cache "pull-through" ...... upstream: distribution; each request authorized by a HEAD upstream
    nginx ..................... the same files, TLS static: the practical limit

Lazily, on demand: distribution in proxy (pull-through) mode, delay lines, more caches.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dtr_cache_check.pki import CertificateAuthority, Issued, trust_context
from dtr_cache_check.probes.registry import RegistryClient
from dtr_cache_check.reference.dtr import CACHE_SETTING_FIELD
from dtr_cache_check.testkit.local import (
    LocalServer,
    read_password,
    start_cache,
    start_dtr,
    start_registry,
    wait_ready,
)
from dtr_cache_check.testkit.netproxy import TcpProxy

from .blobs import Blob, blob_path, seed_blob
from .delayline import DelayLine
from .nginx import publish, start_nginx

REPO = "public/bench"  # alice (with a cache) and bob (without) may both pull it


@dataclass
class Lab:
    workdir: Path
    ca_file: Path
    verify: ssl.SSLContext
    leaf: Issued
    storage: Path
    started: list[LocalServer] = field(default_factory=list)
    lines: list[TcpProxy] = field(default_factory=list)
    servers: dict[str, LocalServer] = field(default_factory=dict)

    def __getitem__(self, name: str) -> LocalServer:
        return self.servers[name]

    def add(self, key: str, server: LocalServer, path: str = "/v2/") -> LocalServer:
        self.started.append(server)
        self.servers[key] = server
        wait_ready(server, self.verify, path=path, timeout=30)
        return server

    def close(self) -> None:
        for server in reversed(self.started):
            with contextlib.suppress(Exception):
                server.stop()
        for line in reversed(self.lines):
            with contextlib.suppress(Exception):
                line.stop()

    # -- blobs ---------------------------------------------------------------------------------

    def seed(self, size: int) -> Blob:
        """A new random blob of ``size`` bytes, served by distribution and nginx."""
        blob = seed_blob(self.storage, REPO, size)
        publish(self["nginx"], blob)
        return blob

    def token_url(self, blob: Blob, cache: LocalServer | None = None) -> str:
        """alice's signed 307 for ``blob`` (to ``cache``'s host if given, else the registered)."""
        with RegistryClient(self["dtr"].url, verify=self.verify, username="alice",
                            password=read_password(self["dtr"].extra["users"], "alice")) as c:
            answer = c.get_blob(REPO, blob.digest)
        if answer.status_code != 307:
            raise RuntimeError(f"expected alice's 307, got {answer.status_code}: {answer.text}")
        location = answer.headers["location"]
        if cache is not None:
            location = cache.url + location[len(self["cache-token"].url):]
        return location

    def bearer(self, user: str) -> str:
        """A stand-in bearer token for ``user`` to pull ``REPO`` (the docker token dance)."""
        dtr = self["dtr"]
        challenge = httpx.get(dtr.url + "/v2/", verify=self.verify).headers["www-authenticate"]
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        answer = httpx.get(params["realm"], verify=self.verify, auth=(
            user, read_password(dtr.extra["users"], user)), params={
            "service": params["service"], "scope": f"repository:{REPO}:pull"})
        answer.raise_for_status()
        return answer.json()["token"]

    def drop_cached(self, cache: LocalServer, blob: Blob) -> None:
        """Make ``blob`` cold again in ``cache`` (its store is the file; lookups stat it)."""
        root = cache.extra["storage"] / "docker" / "registry" / "v2" / "blobs" / "sha256"
        (root / blob.hex[:2] / blob.hex / "data").unlink(missing_ok=True)

    # -- servers started on demand -------------------------------------------------------------

    def start_cache(self, key: str, upstream: str) -> LocalServer:
        return self.add(key, start_cache(self.workdir, self.leaf, upstreams=[upstream],
                                         cas=[self.ca_file], name=key), path="/health")

    def start_proxy_registry(self) -> LocalServer:
        """distribution in pull-through mode in front of the TLS distribution."""
        with _environment(REGISTRY_PROXY_REMOTEURL=self["registry"].url,
                          SSL_CERT_FILE=str(self.ca_file)):
            server = start_registry(self.workdir, self.leaf, name="registry-proxy")
        return self.add("registry-proxy", server)

    def delay_line(self, target: LocalServer) -> DelayLine:
        line = DelayLine("127.0.0.1", target.port)
        self.lines.append(line)
        line.start()
        return line

    def slow_link(self, target: LocalServer, rate: float) -> TcpProxy:
        """A link to ``target`` carrying at most ``rate`` bytes/s towards the client."""
        link = TcpProxy("127.0.0.1", target.port, rate=rate)
        self.lines.append(link)
        link.start()
        return link

    def url(self, key: str, blob: Blob) -> str:
        return self[key].url + blob_path(REPO, blob)


@contextlib.contextmanager
def open_lab(workdir: Path) -> Iterator[Lab]:
    """Start the standing servers under ``workdir``; stop everything on the way out."""
    workdir.chmod(0o755)  # nginx's workers (nobody) follow symlinks into the registry storage
    root = CertificateAuthority.create("Benchmark Root CA")
    leaf = root.intermediate("Benchmark Intermediate CA").issue_server(["127.0.0.1",
                                                                        "localhost"])
    lab = Lab(workdir, root.write_cert(workdir / "ca.pem"), trust_context(root), leaf,
              workdir / "upstream-storage")
    try:
        lab.add("registry", start_registry(workdir, leaf, storage=lab.storage))
        lab.add("registry-http", start_registry(workdir, None, storage=lab.storage,
                                                name="registry-http"))
        lab.add("dtr", start_dtr(workdir, leaf, ca_pem_path=lab.ca_file,
                                 registry_url=lab["registry-http"].url,
                                 cache_cas=[lab.ca_file]))
        lab.add("nginx", start_nginx(workdir, leaf), path="/")
        lab.start_cache("cache-token", lab["dtr"].url)
        lab.start_cache("cache-pull", lab["registry"].url)
        _register(lab, lab["cache-token"])
        yield lab
    finally:
        lab.close()


def _register(lab: Lab, cache: LocalServer) -> None:
    """admin registers ``cache``; alice points her settings at it (bob has none)."""
    users = lab["dtr"].extra["users"]

    def api(user: str) -> httpx.Client:
        return httpx.Client(base_url=lab["dtr"].url, verify=lab.verify, timeout=30,
                            auth=(user, read_password(users, user)))

    with api("admin") as admin:
        answer = admin.post("/api/v0/content_caches", json={"name": "bench", "host": cache.url})
        answer.raise_for_status()
    with api("alice") as alice:
        alice.post("/api/v0/accounts/alice/settings",
                   json={CACHE_SETTING_FIELD: answer.json()["id"]}).raise_for_status()


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """``start_registry`` passes our environment on: distribution reads REGISTRY_* overrides."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
