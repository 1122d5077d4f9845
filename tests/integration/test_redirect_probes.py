"""The redirect and clock probes against real servers on loopback (distribution, the DTR
stand-in, the reference cache): each is green on the healthy stand-in and red, naming its hop
and cause, under the stand-in's test fault that breaks what it looks at."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from dtr_cache_check.pki import CertificateAuthority, trust_context
from dtr_cache_check.probes import clock, redirects, tlsprobe
from dtr_cache_check.probes.oci import synthesize
from dtr_cache_check.probes.redirects import HopFinding
from dtr_cache_check.probes.registry import RegistryClient
from dtr_cache_check.reference.dtr import CACHE_SETTING_FIELD
from dtr_cache_check.reference.dtr.app import FAULTS_ENV
from dtr_cache_check.testkit.local import (
    LocalServer,
    read_password,
    start_cache,
    start_dtr,
    start_registry,
    wait_ready,
)

pytestmark = pytest.mark.integration
REPO = "alice/redirects"


class Bench:
    """registry <- stand-in <- cache; the stand-in restarted (same port and state) with test
    faults on demand."""

    def __init__(self, workdir):
        self.workdir = workdir
        root = CertificateAuthority.create()
        inter = root.intermediate()
        self.ca_file = root.write_cert(workdir / "ca.pem")
        self.verify = trust_context(root)
        self.dtr_tls = inter.issue_server(["127.0.0.1"])
        self.servers: list[LocalServer] = []
        self.registry = start_registry(workdir, None)
        self.servers.append(self.registry)
        wait_ready(self.registry, False)
        self.faults = ""
        self.dtr = self._start_dtr(None)
        self.cache = start_cache(workdir, inter.issue_server(["127.0.0.1"]),
                                 upstreams=[self.dtr.url], cas=[self.ca_file])
        self.servers.append(self.cache)
        wait_ready(self.cache, self.verify)
        with httpx.Client(base_url=self.dtr.url, verify=self.verify, timeout=30) as api:
            made = api.post("/api/v0/content_caches", auth=("admin", self.password("admin")),
                            json={"name": "region-redirects", "host": self.cache.url})
            assert made.status_code == 201, made.text
            pointed = api.post("/api/v0/accounts/alice/settings",
                               auth=("alice", self.password("alice")),
                               json={CACHE_SETTING_FIELD: made.json()["id"]})
            assert pointed.status_code == 200, pointed.text
        self.image = synthesize(layers=1, layer_size=200 * 1024)
        with self.client() as alice:
            self.image.push(alice, REPO, "redirects")

    def _start_dtr(self, port: int | None) -> LocalServer:
        saved = os.environ.get(FAULTS_ENV)
        os.environ[FAULTS_ENV] = self.faults  # start_dtr's process inherits the environment
        try:
            dtr = start_dtr(self.workdir, self.dtr_tls, ca_pem_path=self.ca_file,
                            registry_url=self.registry.url, cache_cas=[self.ca_file], port=port)
        finally:
            if saved is None:
                os.environ.pop(FAULTS_ENV, None)
            else:
                os.environ[FAULTS_ENV] = saved
        self.servers.append(dtr)
        wait_ready(dtr, self.verify)
        return dtr

    def with_faults(self, faults: str) -> Bench:
        """The stand-in running with exactly ``faults`` (restarted only when they change)."""
        if faults != self.faults:
            self.dtr.stop()
            self.faults = faults
            self.dtr = self._start_dtr(self.dtr.port)
        return self

    def password(self, user: str) -> str:
        return read_password(self.workdir / "dtr-state" / "users.json", user)

    def client(self) -> RegistryClient:
        return RegistryClient(self.dtr.url, verify=self.verify, username="alice",
                              password=self.password("alice"))

    @property
    def cache_netloc(self) -> str:
        return urlsplit(self.cache.url).netloc

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Iterator[Bench]:
    workdir = tmp_path_factory.mktemp("redirect-probes")
    built = None
    try:
        built = Bench(workdir)
        yield built
    finally:
        if built is not None:
            built.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def through_redirect(probe_of) -> Callable[[Bench], HopFinding]:
    """Run a redirect probe as alice on the bench's layer."""
    def run(b: Bench) -> HopFinding:
        with b.client() as client:
            return probe_of(client, REPO, b.image.layers[0], cache_netloc=b.cache_netloc)
    return run


def clocks(b: Bench) -> HopFinding:
    readings = [clock.read_clock(clock.DTR, b.dtr.url + "/v2/", b.verify),
                clock.read_clock(clock.CACHE, b.cache.url + "/v2/", b.verify)]
    found = clock.judge_clocks(readings)
    return next((f for f in found if not f.ok), found[0])


def certificate_on_dtr_clock(b: Bench) -> HopFinding:
    readings = {r.host: r for r in [clock.read_clock(clock.DTR, b.dtr.url + "/v2/", b.verify)]}
    served = tlsprobe.probe(b.cache.url, [b.ca_file]).leaf
    found = clock.certificates_vs_clocks({clock.CACHE: served}, readings)
    return next((f for f in found if not f.ok), found[-1])


head = through_redirect(redirects.head_through_redirect)
resume = through_redirect(redirects.range_resume)
reuse = through_redirect(redirects.signed_url_reused)
PROBES: dict[str, Callable[[Bench], HopFinding]] = {
    "head": head, "resume": resume, "reuse": reuse,
    "cacheability": through_redirect(redirects.redirect_cacheability),
    "clock": clocks, "certificate": certificate_on_dtr_clock}


@pytest.mark.parametrize("probe", PROBES)
def test_green_on_the_healthy_standin(bench, probe):
    """Every probe passes on the healthy stand-in, with evidence in its details."""
    found = PROBES[probe](bench.with_faults(""))
    assert found.ok, found
    assert found.details


def test_healthy_redirect_probes_follow_the_redirect_to_the_cache(bench):
    """The Range and reuse probes really went to the cache (not DTR serving itself)."""
    bench.with_faults("")
    assert resume(bench).hop == reuse(bench).hop == "client->cache"


@pytest.mark.parametrize(("probe", "fault", "hop", "words"), [
    ("head", "blob-head-400", "client->DTR", ("answered 400", "distribution#2055")),
    ("resume", "redirect-ignores-range", "client->DTR", ("got 200 and the whole blob",
                                                          "Range")),
    ("reuse", "single-use-redirects", "client->DTR", ("use 2", "answered 403",
                                                      "whole lifetime")),
    ("cacheability", "cacheable-redirect", "client->DTR", ("shared proxy", "max-age=3600",
                                                            "no-store")),
    ("clock", "clock-behind", "client->DTR", ("DTR's clock is 600 s behind", "NTP on DTR")),
    ("certificate", "clock-behind", "DTR->cache", ("not yet valid by DTR's clock",
                                                   "NTP on DTR's host")),
], ids=["head", "resume", "reuse", "cacheability", "clock", "certificate"])
def test_red_under_its_fault(bench, probe, fault, hop, words):
    """The stand-in fault that breaks what the probe looks at makes it fail, naming the hop,
    the cause and the fix."""
    found = PROBES[probe](bench.with_faults(fault))
    assert not found.ok, found
    assert found.hop == hop
    text = f"{found.cause} {found.fix}"
    for word in words:
        assert word in text, (word, found)
