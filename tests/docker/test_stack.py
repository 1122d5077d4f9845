"""The reference deployment in Docker, both modes: smoke flow, a real docker pull, the
security edges, and a ``down`` that leaves nothing behind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from cache_under_test.blobtoken import TOKEN_PARAM
from dtr_cache_check.pki import trust_context
from dtr_cache_check.probes.dockerclient import trusted_registries
from dtr_cache_check.probes.logs import LogSource, events
from dtr_cache_check.probes.oci import synthesize
from dtr_cache_check.probes.registry import RegistryClient, verify_digest
from dtr_cache_check.reference.stack import Deployment, down, up
from dtr_cache_check.reference.stack.record import LABEL, STACK_NAME

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CERTS_D = Path("/etc/docker/certs.d")


@pytest.fixture(scope="module", params=["bridge", "swarm"])
def deployment(request, engine, tmp_path_factory) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp(f"stack-{request.param}")
    swarm_before = engine.info()["Swarm"]["LocalNodeState"]
    try:
        dep = up(base, use_swarm=request.param == "swarm", progress=lambda m: None)
        yield dep
    finally:
        record = Deployment.load(base)
        down(base, progress=lambda m: None)
    # After down: nothing up created is left, by Docker's own listings.
    if record is not None:
        selector = {"label": f"{LABEL}={record.id}"}
        assert engine.containers.list(all=True, filters=selector) == []
        assert engine.networks.list(filters=selector) == []
        assert engine.info()["Swarm"]["LocalNodeState"] == swarm_before
        if record.mode == "swarm" and swarm_before == "active":
            assert not any(s.name.startswith(f"{STACK_NAME}_") for s in engine.services.list())
    assert not base.exists()


def verify(dep: Deployment):
    return trust_context(dep.ca_bundle)


def user_client(dep: Deployment, user: str) -> RegistryClient:
    return RegistryClient(dep.dtr_url, verify=verify(dep), username=user,
                          password=dep.password(user))


def cache_events(dep: Deployment, name: str, count: int = 1, timeout: float = 15, **match):
    source = LogSource(dep.cache_logs)
    deadline = time.monotonic() + timeout
    while True:
        found = events(source.lines(), name, **match)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_seed_layout_written_and_private_keys_removed(deployment):
    d = deployment.deploy_dir
    assert (d / "docker-stack.yml").is_file() and (d / "config.yml").is_file()
    assert (d / "certs" / "cache.cert.pem").read_text().count("BEGIN CERTIFICATE") == 2
    assert (d / "certs" / "dtr.cert.pem").is_file()
    assert not list(d.rglob("*.key.pem")), "private keys must be removed after deploy"


def test_pull_through_the_cache_miss_then_hit(deployment):
    image = synthesize(layers=1, layer_size=200_000)
    with user_client(deployment, "alice") as alice:
        image.push(alice, "alice/smoke", "v1")
        manifest = alice.get_manifest("alice/smoke", "v1")
        assert manifest.status_code == 200 and manifest.content == image.manifest
        digest = image.layers[0].digest
        for expected in ("MISS", "HIT"):
            redirect = alice.get_blob("alice/smoke", digest)
            assert redirect.status_code == 307, redirect.text
            location = urlsplit(redirect.headers["location"])
            assert f"{location.scheme}://{location.netloc}" == deployment.cache_url
            served = alice.follow(redirect)
            assert "authorization" not in served.request.headers
            assert served.status_code == 200 and verify_digest(served.content, digest)
            assert served.headers["x-cache"] == expected
    assert cache_events(deployment, "blob.miss", digest=digest)
    assert cache_events(deployment, "blob.hit", digest=digest)


def test_security_edges(deployment):
    image = synthesize(layers=1, layer_size=10_000)
    with user_client(deployment, "alice") as alice:
        image.push(alice, "alice/edges", "v1")
        digest = image.layers[0].digest
        redirect = alice.get_blob("alice/edges", digest)
    with user_client(deployment, "bob") as bob:
        assert bob.get_blob("alice/edges", digest).status_code in (401, 403)
        image.push(bob, "bob/own", "v1")
        direct = bob.get_blob("bob/own", digest)
        assert direct.status_code == 200 and verify_digest(direct.content, digest)
    token = parse_qs(urlsplit(redirect.headers["location"]).query)[TOKEN_PARAM][0]
    tampered = redirect.headers["location"].replace(token, token[:-4] + "AAAA")
    answer = httpx.get(tampered, verify=verify(deployment))
    assert answer.status_code == 401 and image.layers[0].data not in answer.content
    with httpx.Client(base_url=deployment.dtr_url, verify=verify(deployment),
                      auth=("admin", deployment.password("admin"))) as admin:
        # The stand-in's own port presents DTR's certificate, which DTR does not trust for
        # caches: "DTR not trusting the cache".
        refused = admin.post("/api/v0/content_caches",
                             json={"name": "rogue", "host": deployment.dtr_url})
    assert refused.status_code == 400 and "unknown authority" in refused.text


def test_real_docker_pull_goes_through_the_cache(deployment, engine):
    image = synthesize(layers=2, layer_size=100_000)
    repo = "alice/dockerpull"
    with user_client(deployment, "alice") as alice:
        image.push(alice, repo, "v1")
    dtr = urlsplit(deployment.dtr_url).netloc
    ref = f"{dtr}/{repo}:v1"
    bundle = deployment.ca_bundle.read_bytes()
    with trusted_registries({dtr: bundle, urlsplit(deployment.cache_url).netloc: bundle}) as cli:
        cli.remove_image(ref)  # layers absent locally first
        status, out = cli.login(dtr, "alice", deployment.password("alice"))
        assert status == 0, out
        try:
            status, out = cli.pull(ref)
            assert status == 0, out
        finally:
            cli.remove_image(ref)
    for layer in image.layers:
        assert cache_events(deployment, "blob.miss", digest=layer.digest), layer.digest


def test_failed_up_fails_fast_with_the_reason_and_down_cleans_it(engine, tmp_path):
    from dtr_cache_check.reference.stack import StackError

    base = tmp_path / "broken"
    with pytest.raises(StackError) as info:
        up(base, blobttl="soon", progress=lambda m: None)  # the cache refuses its config
    assert "blobttl" in str(info.value) and "not a duration" in str(info.value)
    record = Deployment.load(base)
    assert record.state == "failed"
    with pytest.raises(StackError, match="take it down first"):
        up(base, progress=lambda m: None)  # never half-starts over a failed one
    down(base, progress=lambda m: None)
    selector = {"label": f"{LABEL}={record.id}"}
    assert engine.containers.list(all=True, filters=selector) == []
    assert engine.networks.list(filters=selector) == []
    assert not base.exists()
