"""A real Docker client: ``docker pull`` through the local daemon goes through the cache."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

from dtr_cache_check.probes.dockerclient import (
    CertsEntry,
    daemon_available,
    insecure_reason,
    pull_phase,
    tls_error,
    trusted_registries,
)
from dtr_cache_check.probes.tlsprobe import probe
from dtr_cache_check.steps import ha
from dtr_cache_check.steps.findings import DOCKER, fail
from dtr_cache_check.steps.pullcycle import require_layers_served

pytestmark = [pytest.mark.family("docker client"), pytest.mark.hop(DOCKER)]


@pytest.mark.writes
@pytest.mark.requires("test_4_cache_serves_each_blob_without_authorization",
                       "test_2_manifest_comes_from_dtr")
def test_docker_pull_is_served_by_the_cache(target, steps, push_image, evidence):
    """``docker pull`` from DTR succeeds with its layers absent first, the daemon verified TLS
    on the way (DTR is not an insecure registry to it), and the cache's logs show it served
    those very layers (a miss/hit event or an access line answered 200)."""
    why_not = daemon_available()
    if why_not:
        pytest.skip(f"{why_not}: the docker client check needs a local daemon")
    dtr = urlsplit(target.dtr_url).netloc
    cache = target.cache_hostport()
    insecure = insecure_reason(dtr)
    if insecure:
        pytest.skip(f"the daemon would not verify TLS for DTR: {insecure}; reach DTR by a name "
                    "or address outside the daemon's insecure registries to prove the "
                    "daemon's TLS path")
    image = push_image(layers=2, layer_size=128 * 1024, tag="docker-pull")
    # The daemon follows DTR's 307 to the cache with the trust of the DTR endpoint: the cache's
    # CA must be in certs.d/<DTR host:port>/ca.crt, not only under the cache's name.
    cas = [ca.read_bytes() for ca in (target.dtr_ca, target.cache_ca) if ca]
    trust = {dtr: b"".join(cas)} if cas else {}
    if target.cache_ca and cache:
        trust[cache] = target.cache_ca.read_bytes()
    ref = f"{dtr}/{target.test_repo}:docker-pull"
    since = datetime.now(UTC)
    with trusted_registries(trust) as cli:
        entry = cli.entries.get(dtr)
        if entry:
            evidence.note(f"the daemon's trust for DTR: {entry.describe()}")
        cli.remove_image(ref)  # no layer may be left locally, or the daemon pulls nothing
        status, out = cli.login(dtr, target.dtr_user, target.password(target.dtr_user) or "")
        if status != 0:
            fail(DOCKER, f"docker login {dtr} failed (client->DTR): {out[-300:]}",
                 "check the user's credentials and that the daemon trusts DTR's CA "
                 f"(/etc/docker/certs.d/{dtr}/ca.crt)")
        try:
            status, out = cli.pull(ref)
        finally:
            cli.remove_image(ref)
        evidence.text("docker pull", out)
        if status != 0:
            ha.replicas_first(target, steps)  # HA: it may have met a faulty replica
            _pull_failed(target, ref, out, dtr, cache, entry)
    served = require_layers_served(target, [layer.digest for layer in image.layers], since,
                                   client="docker pull", hop=DOCKER, agent="docker/")
    evidence.note(f"docker pull ok over verified TLS ({dtr} is not an insecure registry to the "
                  f"daemon); {served}")


def _pull_failed(target, ref: str, out: str, dtr: str, cache: str | None,
                 entry: CertsEntry | None) -> NoReturn:
    """Name the hop the daemon failed on, judge its trust for that hop, give the fix that
    works."""
    complaint = tls_error(out) or out.splitlines()[-1][:300]
    trust_file = f"/etc/docker/certs.d/{dtr}/ca.crt"
    if pull_phase(out) == "manifest":
        fail(DOCKER, f"docker pull {ref} failed getting the manifest from DTR (client->DTR): "
             f"{complaint}", f"put DTR's CA in {trust_file} (or in the system store)")
    judged = ""
    if entry is not None and target.cache_url:
        report = probe(target.cache_url, [entry.path])
        if report.reachable and not report.trusted:
            judged = (f"; {entry.describe()} does not verify the cache's certificate "
                      f"({report.failure_class})")
    fail(DOCKER, f"docker pull {ref} got the manifest from DTR but failed fetching the layers "
         f"from the cache DTR redirected it to ({cache}; client->cache): {complaint}{judged}",
         f"append the cache's CA to {trust_file}: the daemon verifies the cache it is "
         f"redirected to with the trust of DTR's entry, and a CA under "
         f"/etc/docker/certs.d/{cache}/ alone is not used (or put the CA in the system store)")
