"""A DTR and its cache on loopback for the speed family, with distance: distribution behind
the DTR stand-in, the reference cache, and the project's WAN relay (reference.wanrelay) in
front of DTR (and, for an equal-distance control, in front of the cache too).

``python -m benchmarks.speed_loopback [--cache-far] [--wan PROFILE] [--standin-faults ...]``
keeps one running and prints the options that point ``pytest checks/`` at it (passwords as
environment variables).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from dtr_cache_check.pki import CertificateAuthority, trust_context
from dtr_cache_check.probes.oci import Image
from dtr_cache_check.probes.registry import RegistryClient
from dtr_cache_check.probes.speed_pull import PullAs, push_concurrently
from dtr_cache_check.reference.dtr import CACHE_SETTING_FIELD
from dtr_cache_check.reference.dtr.app import FAULTS_ENV
from dtr_cache_check.reference.wan import Profile, profile
from dtr_cache_check.testkit.local import (
    REPO_ROOT,
    SOURCE_ROOT,
    LocalServer,
    _spawn,
    read_password,
    start_cache,
    start_dtr,
    start_registry,
    wait_ready,
)
from dtr_cache_check.testkit.netproxy import TcpProxy

# The tests' far link: 40 ms round trip, 32 Mbit/s (4 MB/s) each way, no loss: far enough that
# a warm cache wins clearly on a few MiB, near enough that a measurement takes seconds.
TEST_WAN = Profile("test-far", rtt_ms=40, rate_mbit=32)
ONE_WAY_S, FAR_RATE = TEST_WAN.one_way, TEST_WAN.rate_bytes


def far(port: int, wan: Profile) -> TcpProxy:
    """``127.0.0.1:<port'>`` reaching ``port`` across ``wan``, shaped as the reference
    deployment's WAN relay shapes it (the same relay; TLS passes through untouched)."""
    relay = TcpProxy("127.0.0.1", port, one_way=wan.one_way, connect_delay=2 * wan.one_way,
                     rate=wan.rate_bytes, rate_up=wan.rate_bytes, loss=wan.loss)
    relay.start()
    return relay


@dataclass
class Deployment:
    """What the speed probe and the checks need of the running deployment."""

    dtr_url: str            # as the client reaches DTR (across the WAN; its public URL)
    cache_url: str          # as registered (across the WAN when the cache is far too)
    dtr: LocalServer
    cache: LocalServer
    ca_file: Path
    verify: object
    stops: list = field(default_factory=list)

    def password(self, user: str) -> str:
        return read_password(self.dtr.extra["users"], user)

    def client(self, user: str) -> RegistryClient:
        return RegistryClient(self.dtr_url, verify=self.verify, username=user,
                              password=self.password(user))

    def publish(self, image: Image) -> None:
        """The image in alice's and bob's repositories (not timed)."""
        with self.client("alice") as alice, self.client("bob") as bob:
            push_concurrently(image, [(alice, "alice/speed"), (bob, "bob/speed")], "speed")

    def sides(self) -> tuple[PullAs, PullAs]:
        """(bob straight from DTR, alice through the cache)."""
        return (PullAs(lambda: self.client("bob"), "bob/speed"),
                PullAs(lambda: self.client("alice"), "alice/speed"))


@contextlib.contextmanager
def deployment(workdir: Path, *, cache_far: bool = False, wan: Profile = TEST_WAN,
               standin_faults: str = "") -> Iterator[Deployment]:
    """DTR across ``wan`` from the client and the cache; the cache near the client unless
    ``cache_far`` (then across an equal WAN); the stand-in with its TEST-ONLY
    ``standin_faults`` switched on (see reference.dtr.app.STANDIN_FAULTS). Everything started
    is stopped on exit."""
    root = CertificateAuthority.create()
    inter = root.intermediate()
    ca_file = root.write_cert(workdir / "ca.pem")
    verify = trust_context(root)
    stops: list = []
    try:
        registry = start_registry(workdir, None)
        stops.append(registry.stop)
        dtr = start_dtr(workdir, inter.issue_server(["127.0.0.1"]), ca_pem_path=ca_file,
                        registry_url=registry.url, cache_cas=[ca_file])
        stops.append(dtr.stop)
        wait_ready(registry, False)
        wait_ready(dtr, verify)
        far_dtr = far(dtr.port, wan)
        stops.append(far_dtr.stop)
        dtr = _behind(dtr, far_dtr.url, verify, standin_faults)
        stops.append(dtr.stop)
        # The cache reaches DTR across the same WAN as its clients do.
        # Its processes' private directory (the fetcher's socket) under our own workdir: a
        # sweep of /tmp/dtrcache-* by another run must not pull it from under a live cache.
        private_tmp = workdir / "tmp"
        private_tmp.mkdir(exist_ok=True)
        cache = start_cache(workdir, inter.issue_server(["127.0.0.1"]),
                            upstreams=[far_dtr.url], cas=[ca_file],
                            env={"TMPDIR": str(private_tmp)})
        stops.append(cache.stop)
        wait_ready(cache, verify)
        cache_url = cache.url
        if cache_far:
            far_cache = far(cache.port, wan)
            stops.append(far_cache.stop)
            cache_url = far_cache.url
        built = Deployment(far_dtr.url, cache_url, dtr, cache, ca_file, verify, stops)
        _register(built)
        yield built
    finally:
        for stop in reversed(stops):
            stop()


def _behind(dtr: LocalServer, public_url: str, verify, faults: str) -> LocalServer:
    """The stand-in restarted (same port, same state) knowing its public URL is across the
    WAN: its token realm and upload locations then lead clients through the WAN too, as a
    DTR whose name resolves to a far address does."""
    dtr.stop()
    config = yaml.safe_load(dtr.config_path.read_text())
    config["public_url"] = public_url
    dtr.config_path.write_text(yaml.safe_dump(config))
    again = _spawn(dtr.name, list(dtr.process.args), dtr.workdir, dtr.url, dtr.config_path,
                   env={"PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{SOURCE_ROOT}",
                        FAULTS_ENV: faults})
    again.extra.update(dtr.extra)
    wait_ready(again, verify)
    return again


def _register(built: Deployment) -> None:
    """The cache registered by admin; alice points at it, bob at nothing."""
    with httpx.Client(base_url=built.dtr.url, verify=built.verify, timeout=30) as api:
        made = api.post("/api/v0/content_caches", auth=("admin", built.password("admin")),
                        json={"name": "region-speed", "host": built.cache_url})
        made.raise_for_status()
        api.post("/api/v0/accounts/alice/settings", auth=("alice", built.password("alice")),
                 json={CACHE_SETTING_FIELD: made.json()["id"]}).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-far", action="store_true", help="the cache as far as DTR")
    parser.add_argument("--wan", default=None, help="a WAN profile of reference.wan (default: "
                        "40 ms, 32 Mbit/s)")
    parser.add_argument("--standin-faults", default="", help="the stand-in's TEST-ONLY faults, "
                        "comma-separated (reference.dtr.app.STANDIN_FAULTS)")
    args = parser.parse_args()
    # SIGTERM (kill PID) ends it like Ctrl-C, so the servers it started are stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="speed-loopback-"))
    try:
        with deployment(workdir, cache_far=args.cache_far,
                        wan=profile(args.wan) if args.wan else TEST_WAN,
                        standin_faults=args.standin_faults) as built:
            print(f"export DTR_CHECK_DTR_PASSWORD={built.password('alice')} "
                  f"DTR_CHECK_DTR_ADMIN_PASSWORD={built.password('admin')} "
                  f"DTR_CHECK_OTHER_PASSWORD={built.password('bob')}")
            print(f"--dtr-url {built.dtr_url} --cache-url {built.cache_url} --dtr-user alice "
                  f"--dtr-admin-user admin --other-user bob --dtr-ca {built.ca_file} "
                  f"--cache-ca {built.ca_file} --cache-name region-speed", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
