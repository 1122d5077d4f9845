"""A real Docker client: ``docker pull`` through the local daemon goes through the cache."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from dtr_cache_check.harness.diagnosis import DOCKER, fail, requires
from dtr_cache_check.probes import logevidence
from dtr_cache_check.probes.dockerclient import daemon_available, trusted_registries
from dtr_cache_check.probes.pullcycle import cache_lines


def test_docker_pull_is_served_by_the_cache(target, push_image, evidence, writes):
    """``docker pull`` from DTR succeeds with its layers absent first, and the cache's logs show
    it served those very layers (a miss/hit event or an access line answered 200)."""
    requires("test_4_cache_serves_each_blob_without_authorization",
             "test_2_manifest_comes_from_dtr")
    why_not = daemon_available()
    if why_not:
        pytest.skip(f"{why_not}: the docker client check needs a local daemon")
    image = push_image(layers=2, layer_size=128 * 1024, tag="docker-pull")
    dtr = urlsplit(target.dtr_url).netloc
    cache = target.cache_hostport()
    # The daemon follows DTR's 307 to the cache with the trust of the DTR endpoint: the cache's
    # CA must be in certs.d/<DTR host:port>/ca.crt, not only under the cache's name.
    cas = [ca.read_bytes() for ca in (target.dtr_ca, target.cache_ca) if ca]
    trust = {dtr: b"".join(cas)} if cas else {}
    if target.cache_ca and cache:
        trust[cache] = target.cache_ca.read_bytes()
    ref = f"{dtr}/{target.test_repo}:docker-pull"
    since = datetime.now(UTC)
    with trusted_registries(trust) as cli:
        cli.remove_image(ref)  # no layer may be left locally, or the daemon pulls nothing
        status, out = cli.login(dtr, target.dtr_user, target.password(target.dtr_user) or "")
        if status != 0:
            fail(DOCKER, f"docker login {dtr} failed: {out[-300:]}",
                 "check the user's credentials and that the daemon trusts DTR's CA "
                 f"(/etc/docker/certs.d/{dtr}/ca.crt)")
        try:
            status, out = cli.pull(ref)
        finally:
            cli.remove_image(ref)
    evidence.text("docker pull", out)
    if status != 0:
        hop = "client->cache" if cache and cache in out else "client->DTR"
        fail(DOCKER, f"docker pull {ref} failed ({hop}): {out.splitlines()[-1][:300]}",
             f"the daemon must trust DTR and, for the redirect, the cache, both through DTR's "
             f"endpoint: /etc/docker/certs.d/{dtr}/ca.crt must hold DTR's CA and the cache's "
             "CA (or put them in the system store)")
    digests = [layer.digest for layer in image.layers]

    def served(lines):
        return all(logevidence.for_blob(lines, d).served for d in digests)

    lines = cache_lines(target, since, wait_for=served)
    if not lines:
        pytest.skip("docker pull succeeded, but that the cache served its layers is not proven: "
                    + ("give --cache-logs to read the cache's evidence" if lines is None else
                       f"{target.cache_logs} gave no line written since the pull (rotated, "
                       "restarted, or not this cache's logs)"))
    missing = [d for d in digests if not logevidence.for_blob(lines, d).served]
    if missing:
        fail(DOCKER, f"docker pull succeeded but the cache's logs show no layer served for "
             f"{len(missing)} of {len(digests)} layer(s), e.g. {missing[0][:19]}: DTR served "
             "them itself", f"point {target.dtr_user}'s Content Cache setting at the cache")
    shown = [logevidence.for_blob(lines, d).served[0] for d in digests]
    evidence.note(f"docker pull ok; the cache served its {len(digests)} layers: " + ", ".join(
        f"{d[7:19]} ({line.get('event') or 'access 200'}, line {line.number})"
        for d, line in zip(digests, shown, strict=True)))
