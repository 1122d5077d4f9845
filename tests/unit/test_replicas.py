"""The HA replicas as the checks know them: from --cache-replicas (with each replica's host
spec and logs), else from the registered name's addresses; fewer than two is no HA; a
signed URL is re-sent byte for byte; a secret is compared by fingerprint only."""

from __future__ import annotations

import socket

from dtr_cache_check.harness.target_build import from_mapping
from dtr_cache_check.probes.logs import LogSource
from dtr_cache_check.steps import replicas
from dtr_cache_check.steps.target import PeerCache, Target


def _target(**kwargs) -> Target:
    return Target(mode="external", dtr_url="https://dtr.example", dtr_user="ci", dtr_ca=None,
                  cache_ca=None, cache_url="https://cache.example:8443",
                  cache_name="region-test", **kwargs)


def test_given_replicas_are_named_and_reached_at_their_own_address():
    target = _target(replicas=[PeerCache("https://10.0.0.1:8443", name="cache-1"),
                               PeerCache("https://node2.example")])
    found, how = replicas.known(target)
    assert [r.label for r in found] == ["cache-1 (10.0.0.1:8443)", "node2.example:8443"]
    assert [r.address for r in found] == [("10.0.0.1", 8443), ("node2.example", 8443)]
    assert how == "--cache-replicas"


def test_one_replica_is_no_ha_and_says_how_to_give_them(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 8443))])
    found, why = replicas.known(_target())
    assert found == [] and "--cache-replicas" in why and "192.0.2.7" in why


def test_several_addresses_of_the_registered_name_are_several_replicas(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 8443))
        for ip in ("192.0.2.8", "192.0.2.7", "192.0.2.8")])
    found, how = replicas.known(_target())
    assert [r.address for r in found] == [("192.0.2.7", 8443), ("192.0.2.8", 8443)]
    assert "addresses" in how


def test_options_give_each_replica_its_host_spec_and_logs():
    target = from_mapping({"dtr_url": "https://dtr.example", "dtr_user": "ci",
                           "cache_url": "https://cache.example",
                           "cache_replicas": "https://r1:443, https://r2:443",
                           "cache_replica_hosts": "docker://r1,ssh://ops@r2",
                           "cache_replica_logs": "docker:r1"}, discover=False)
    assert [(p.url, p.host) for p in target.replicas] == [("https://r1:443", "docker://r1"),
                                                          ("https://r2:443", "ssh://ops@r2")]
    assert isinstance(target.replicas[0].logs, LogSource) and target.replicas[1].logs is None


def test_a_signed_url_is_resent_as_it_was_signed():
    url = "https://cache.example:8443/v2/a/b/blobs/sha256:ab?dtr_cache_token=x.y%2Bz&e=1"
    assert replicas.path_and_query(url) == "/v2/a/b/blobs/sha256:ab?dtr_cache_token=x.y%2Bz&e=1"
    assert replicas.without_query(url) == "/v2/a/b/blobs/sha256:ab"


def test_a_secret_is_only_ever_a_fingerprint():
    secret = "0123456789abcdef0123456789abcdef"
    shown = replicas.fingerprint(secret)
    assert secret not in shown and shown.startswith("sha256:")
    assert shown == replicas.fingerprint(secret) != replicas.fingerprint(secret + "x")


def test_a_replica_without_a_host_spec_cannot_be_read():
    fingerprint, why = replicas.http_secret(replicas.Replica("r1", ("r1", 443)))
    assert fingerprint is None and "host spec" in why


def test_several_replicas_logs_are_merged_in_the_order_written():
    from dtr_cache_check.probes.logs import _merged

    logs = {"r1": b"2026-01-01T00:00:02.5Z {\"event\": \"blob.hit\"}\n",
            "r2": b"2026-01-01T00:00:01.25Z {\"event\": \"blob.miss\"}\n"
                  b"2026-01-01T00:00:03Z {\"event\": \"blob.hit\"}\n"}

    class Container:
        def __init__(self, name):
            self.name = name

        def logs(self, **kwargs):
            assert kwargs["timestamps"] is True
            return logs[self.name]

    class Client:
        containers = type("C", (), {"get": staticmethod(Container)})

    text = _merged(Client(), ["r1", "r2"], {})
    assert [line.split('"')[3] for line in text.splitlines()] == [
        "blob.miss", "blob.hit", "blob.hit"]
    assert text.splitlines()[1] == '{"event": "blob.hit"}'
