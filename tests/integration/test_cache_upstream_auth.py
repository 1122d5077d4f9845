"""Without a signed token the upstream decides: the cache serves nothing it refused."""

from __future__ import annotations

import os

import bcrypt
import httpx
import pytest

from dtr_cache_check.probes.logs import events
from dtr_cache_check.probes.registry import RegistryClient, verify_digest
from dtr_cache_check.testkit.local import start_registry, wait_ready

pytestmark = pytest.mark.integration


@pytest.fixture
def private_registry(tmp_path, pki, servers):
    password = os.urandom(12).hex()
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"alice:{hashed}\n")
    server = start_registry(tmp_path / "private", pki.leaf, htpasswd=htpasswd)
    servers.append(server)
    wait_ready(server, pki.context)
    server.extra["password"] = password
    return server


def test_cache_relays_upstream_refusal_even_for_a_cached_blob(private_registry, make_cache, pki):
    password = private_registry.extra["password"]
    data = os.urandom(100_000)
    with RegistryClient(private_registry.url, verify=pki.context, username="alice",
                        password=password) as owner:
        digest = owner.push_blob("team/app", data)
    cache = make_cache([private_registry.url])
    url = f"{cache.url}/v2/team/app/blobs/{digest}"
    with httpx.Client(verify=pki.context) as http:
        anonymous = http.get(url)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Basic")
        allowed = http.get(url, auth=("alice", password))
        assert allowed.status_code == 200 and verify_digest(allowed.content, digest)
        assert allowed.headers["x-cache"] == "MISS"
        # Now cached: still nothing for the anonymous or a wrong password.
        assert http.get(url).status_code == 401
        wrong = http.get(url, auth=("alice", "wrong"))
        assert wrong.status_code == 401 and wrong.content[:1] != data[:1]
        hit = http.get(url, auth=("alice", password))
        assert hit.headers["x-cache"] == "HIT" and verify_digest(hit.content, digest)
    denied = events(cache.log_lines(), "auth.denied", digest=digest)
    assert len(denied) >= 2 and all(d.get("status") == 401 for d in denied)
    assert password not in cache.log_path.read_text()
