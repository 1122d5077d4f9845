"""A real Docker client: ``docker pull`` through the local daemon goes through the cache."""

from __future__ import annotations

import contextlib
import time
from urllib.parse import urlsplit

import pytest

from fixtures.dockerclient import daemon_available, trusted_registries
from fixtures.harness.diagnosis import DOCKER, fail, requires
from fixtures.logs import LogSourceError, events


def test_docker_pull_is_served_by_the_cache(target, push_image, evidence, writes):
    """``docker pull`` from DTR succeeds with its layers absent first, and the cache served them."""
    requires("test_4_cache_serves_each_blob_without_authorization",
             "test_2_manifest_comes_from_dtr")
    why_not = daemon_available()
    if why_not:
        pytest.skip(f"{why_not}: the docker client check needs a local daemon")
    image = push_image(layers=2, layer_size=128 * 1024, tag="docker-pull")
    dtr = urlsplit(target.dtr_url).netloc
    cache = target.cache_hostport()
    trust = {}
    if target.dtr_ca:
        trust[dtr] = target.dtr_ca.read_bytes()
    if target.cache_ca and cache:
        trust[cache] = target.cache_ca.read_bytes()
    ref = f"{dtr}/{target.test_repo}:docker-pull"
    start = 0
    if target.cache_logs:
        with contextlib.suppress(LogSourceError):
            start = len(target.cache_logs.lines())
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
             f"the daemon must trust DTR and the cache: /etc/docker/certs.d/<host:port>/ca.crt "
             f"for {dtr} and {cache}")
    if target.cache_logs is None:
        evidence.note("docker pull succeeded (no --cache-logs: the cache's part is not shown)")
        return
    missing = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = target.cache_logs.lines()[start:]
        missing = [layer.digest for layer in image.layers
                   if not events(lines, "blob.miss", digest=layer.digest)
                   and not any(layer.digest in line.raw for line in lines)]
        if not missing:
            break
        time.sleep(0.3)
    if missing:
        fail(DOCKER, f"docker pull succeeded but the cache's logs show no request for "
             f"{len(missing)} layer(s), e.g. {missing[0][:19]}: DTR served them itself",
             f"point {target.dtr_user}'s Content Cache setting at the cache")
    evidence.note(f"docker pull ok; {len(image.layers)} layers served by the cache")
