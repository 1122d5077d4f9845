"""The reference deployment under a WAN profile, measured from where the users are: DTR far from
the host and from the cache, the cache near; the rate of a bulk transfer; the cache-far fault
shape; ``down`` leaves nothing behind, also after a failed ``up``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import docker
import pytest

from dtr_cache_check.pki import trust_context
from dtr_cache_check.probes.registry import RegistryClient, verify_digest
from dtr_cache_check.reference.stack import Deployment, StackError, containers, down, names, up
from dtr_cache_check.reference.stack.record import LABEL, PROFILE_VARIABLE
from dtr_cache_check.reference.wan import PROFILES

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PROFILE = PROFILES["transpacific"]
RTT = PROFILE.rtt_ms / 1000

# Timing of one TLS connection, run on the host and inside containers alike (python3 only):
# the handshake (connect + TLS) and the median of three requests on the kept-alive connection.
PROBE = """
import json, socket, ssl, statistics, sys, time
host, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
began = time.monotonic()
tls = ctx.wrap_socket(socket.create_connection((host, port), timeout=20), server_hostname=host)
handshake = time.monotonic() - began
trips = []
for _ in range(3):
    began = time.monotonic()
    tls.sendall(f"GET /v2/ HTTP/1.1\\r\\nHost: {host}:{port}\\r\\n\\r\\n".encode())
    tls.recv(65536)
    trips.append(time.monotonic() - began)
print(json.dumps({"handshake": handshake, "rtt": statistics.median(trips)}))
"""


def probe_from_host(url: str) -> dict[str, float]:
    parts = urlsplit(url)
    out = subprocess.run([sys.executable, "-c", PROBE, parts.hostname, str(parts.port)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return json.loads(out)


def probe_from_container(container, url: str) -> dict[str, float]:
    parts = urlsplit(url)
    code, out = container.exec_run(["python3", "-c", PROBE, parts.hostname, str(parts.port)])
    assert code == 0, out.decode(errors="replace")
    return json.loads(out)


def far(timing: dict[str, float]) -> None:
    """A far path: each request pays the profile's round trip, a new connection at least one
    more (bounds no path of this machine meets without the relay)."""
    assert 0.8 * RTT <= timing["rtt"] < 1.5 * RTT + 0.1, timing
    assert timing["handshake"] >= 0.8 * RTT, timing


def near(timing: dict[str, float]) -> None:
    assert timing["rtt"] < 0.25 * RTT and timing["handshake"] < 0.5 * RTT, timing


def leftovers(engine: docker.DockerClient, deployment_id: str) -> list[str]:
    """Whatever of the deployment Docker or the hosts file still holds."""
    selector = {"label": f"{LABEL}={deployment_id}"}
    found = [f"container {c.name}" for c in engine.containers.list(all=True, filters=selector)]
    found += [f"network {n.name}" for n in engine.networks.list(filters=selector)]
    found += [f"volume {v.name}" for v in engine.volumes.list(filters=selector)]
    if engine.info()["Swarm"]["LocalNodeState"] == "active":
        found += [f"service {s.name}" for s in engine.services.list(filters=selector)]
    if names.entries(deployment_id):
        found.append("hosts block")
    return found


@pytest.fixture(scope="module")
def transpacific(engine, tmp_path_factory) -> Iterator[Deployment]:
    """One bridge deployment with DTR across the Pacific, shared by the measurements."""
    base = tmp_path_factory.mktemp("wan")
    try:
        yield up(base, wan="transpacific", progress=lambda m: None)
    finally:
        record = Deployment.load(base)
        down(base, progress=lambda m: None)
    if record is not None:   # down removed the relay and everything else (also after a failure)
        assert leftovers(engine, record.id) == []


def test_the_state_records_the_profile_and_the_relay(transpacific, engine):
    dep = Deployment.load(transpacific.base)
    assert (dep.wan, dep.wan_far, dep.far_roles, dep.wan_shaper) == (
        "transpacific", "dtr", ["dtr"], "relay")
    relay = engine.containers.get(dep.container_name(dep.relay_role("dtr")))
    assert relay.status == "running" and relay.labels[LABEL] == dep.id
    # DTR's own container keeps only its private alias; its names are the relay's.
    dtr = engine.containers.get(dep.container_name("dtr"))
    assert dtr.attrs["NetworkSettings"]["Networks"][dep.network]["Aliases"][:1] == [
        dep.origin_alias("dtr")]
    assert PROFILE_VARIABLE not in " ".join(
        engine.containers.get(dep.container_name("cache")).attrs["Config"]["Env"])


def test_the_client_is_far_from_dtr_and_near_its_cache(transpacific, request):
    to_dtr, to_cache = probe_from_host(transpacific.dtr_url), probe_from_host(
        transpacific.cache_url)
    # Kept on the test's report (junit's legacy family, or a hook) for the record.
    request.node.user_properties += [("client->dtr", to_dtr), ("client->cache", to_cache)]
    far(to_dtr)
    near(to_cache)


def test_the_cache_is_far_from_dtr(transpacific, engine, request):
    cache = engine.containers.get(transpacific.container_name("cache"))
    timing = probe_from_container(cache, transpacific.upstream_url(transpacific.primary))
    request.node.user_properties.append(("cache->dtr", timing))
    far(timing)


def test_a_bulk_transfer_from_dtr_holds_the_profile_rate(transpacific, request):
    size = 6 * 1024 * 1024
    data = bytes(range(256)) * (size // 256)
    with RegistryClient(transpacific.dtr_url, verify=trust_context(transpacific.ca_bundle),
                        username="bob", password=transpacific.password("bob")) as bob:
        began = time.monotonic()
        digest = bob.push_blob("bob/bulk", data)
        pushed = time.monotonic() - began
        bob.ping()   # the connection and the pull token ready: time the transfer alone
        bob.get_blob("bob/bulk", "sha256:" + "0" * 64)
        began = time.monotonic()
        answer = bob.get_blob("bob/bulk", digest)
        pulled = time.monotonic() - began
    assert answer.status_code == 200 and verify_digest(answer.content, digest)
    at_rate = size / PROFILE.rate_bytes
    request.node.user_properties.append(("bulk", {"bytes": size, "pull_s": pulled,
                                                  "push_s": pushed, "at_rate_s": at_rate}))
    # Never faster than the rate; slower only by round trips and the loss stalls (0.1 % of
    # about 4,300 packets: a few round trips each way).
    assert at_rate * 0.8 <= pulled < at_rate * 2 + 10 * RTT, (pulled, at_rate)
    assert at_rate * 0.8 <= pushed < at_rate * 2 + 20 * RTT, (pushed, at_rate)


def test_down_after_a_failed_up_removes_the_relay(engine, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the stand-in would not start")

    monkeypatch.setattr(containers, "start_dtr", broken)
    base = tmp_path / "failed"
    with pytest.raises(StackError, match="would not start"):
        up(base, wan="satellite", progress=lambda m: None)
    record = Deployment.load(base)
    assert record.state == "failed"
    assert leftovers(engine, record.id), "the relay was started before the failure"
    down(base, progress=lambda m: None)
    assert leftovers(engine, record.id) == []


def test_the_cache_far_fault_puts_the_relay_in_front_of_the_cache(engine, tmp_path):
    base = tmp_path / "cache-far"
    try:
        dep = up(base, wan="transpacific", wan_far="cache", progress=lambda m: None)
        far(probe_from_host(dep.cache_url))
        near(probe_from_host(dep.dtr_url))
        cache = engine.containers.get(dep.container_name("cache"))
        near(probe_from_container(cache, dep.upstream_url(dep.primary)))
    finally:
        record = Deployment.load(base)
        down(base, progress=lambda m: None)
    assert leftovers(engine, record.id) == []
