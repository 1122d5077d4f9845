"""A real containerd client: ``ctr images pull`` through a hosts directory, as a Kubernetes node
pulls, goes through the cache."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from dtr_cache_check.probes import containerdclient
from dtr_cache_check.steps import ha
from dtr_cache_check.steps.findings import CONTAINERD, fail
from dtr_cache_check.steps.pullcycle import require_layers_served

pytestmark = [pytest.mark.family("containerd client"), pytest.mark.hop(CONTAINERD)]

# Why each kind of failure happens, and what to change, by hop.
_FIXES = {
    containerdclient.UNKNOWN_AUTHORITY: {
        "client->DTR": "hosts.toml of {dtr} must list DTR's CA: ca = [\"dtr-ca.pem\"]",
        "client->cache": "containerd follows DTR's redirect with the trust of DTR's entry: "
                         "hosts.toml of {dtr} (not of {cache}) must list the CA that issued "
                         "the cache's certificate too, ca = [\"dtr-ca.pem\", \"cache-ca.pem\"] "
                         "(or put it in the node's system store)",
    },
    containerdclient.NAME_MISMATCH: {
        "client->DTR": "DTR's certificate must name {dtr} (subjectAltName)",
        "client->cache": "the cache's certificate must name {cache}, the host DTR redirects to "
                         "(subjectAltName), or register the cache under a name it holds",
    },
    containerdclient.UNAUTHORIZED: {
        "client->DTR": "check the test user's password (DTR_CHECK_DTR_PASSWORD)",
        "client->cache": "the cache must accept DTR's signed redirect without Authorization",
    },
}
_DEFAULT_FIX = {
    "client->DTR": "containerd must reach and trust DTR at {dtr}: hosts.toml of {dtr} with "
                   "DTR's CA",
    "client->cache": "containerd must reach and trust the cache at {cache}, the host DTR "
                     "redirects to, with the CAs in hosts.toml of {dtr}",
}


@pytest.mark.writes
@pytest.mark.requires("test_4_cache_serves_each_blob_without_authorization",
                       "test_2_manifest_comes_from_dtr")
def test_containerd_pull_is_served_by_the_cache(target, steps, push_image, evidence):
    """``ctr images pull`` from DTR, with DTR's and the cache's CAs in DTR's hosts.toml,
    succeeds in a fresh namespace, and the cache's logs show it served those very layers."""
    address, why_not = containerdclient.containerd_address()
    if address is None:
        pytest.skip(f"{why_not}: the containerd client check needs ctr and a containerd")
    image = push_image(layers=2, layer_size=128 * 1024, tag="containerd-pull")
    dtr = urlsplit(target.dtr_url).netloc
    cache = target.cache_hostport()
    # containerd follows DTR's 307 to the cache with the TLS config of DTR's hosts.toml: the
    # cache's CA must be there; the cache's own entry is written too, as an operator would.
    cas = [ca.read_bytes() for ca in (target.dtr_ca, target.cache_ca) if ca]
    registries = {dtr: b"".join(cas)}
    if cache and cache != dtr:
        registries[cache] = target.cache_ca.read_bytes() if target.cache_ca else b""
    ref = f"{dtr}/{target.test_repo}:containerd-pull"
    since = datetime.now(UTC)
    hosts_dir = target.containerd_hosts_dir  # the nodes' own hosts directory, when given
    evidence.note(f"hosts directory: {hosts_dir} (the operator's, as on the nodes)" if hosts_dir
                  else "hosts directory written from --dtr-ca and --cache-ca")
    with containerdclient.session(address, registries, hosts_dir) as ctr:
        status, out = ctr.pull(ref, target.dtr_user, target.password(target.dtr_user) or "")
    evidence.text("ctr images pull", out)
    if ctr.left_behind:  # worth knowing, not a finding about the deployment
        evidence.text("containerd namespace left behind",
                      f"{ctr.namespace} on {address}: {ctr.left_behind}")
    if status != 0:
        ha.replicas_first(target, steps)  # HA: it may have met a faulty replica
        why = containerdclient.classify(out, dtr, cache)
        names = {"dtr": dtr, "cache": cache or "the cache"}
        fix = _FIXES.get(why.kind, {}).get(why.hop) or _DEFAULT_FIX[why.hop]
        fail(CONTAINERD, f"ctr pull {ref} failed on the {why.hop} hop: the {why.what} from "
             f"{'the cache' if why.hop == 'client->cache' else 'DTR'} ({why.host}): "
             f"{why.kind}", fix.format(**names), details=why.line)
    served = require_layers_served(target, [layer.digest for layer in image.layers], since,
                                   client="ctr pull", hop=CONTAINERD, agent="containerd/")
    evidence.note(f"ctr pull ok (containerd at {address}); {served}")
