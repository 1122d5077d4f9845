"""A deployed file is read on the cache host once per run: the certificate checks ask for the
same files five times, and each read costs docker execs. What was not found is asked again."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import testinfra

from dtr_cache_check.steps import deployed


class FakeHost:
    """A testinfra host that counts the commands it is asked to run."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.commands = files, 0

    def run(self, command: str):
        self.commands += 1
        return SimpleNamespace(rc=0, stdout="", stderr="")

    def file(self, path: str):
        self.commands += 1
        return SimpleNamespace(exists=path in self.files, content=self.files.get(path))


@pytest.fixture
def host(monkeypatch):
    monkeypatch.setattr(deployed, "_READ_ON_HOST", {}, raising=False)
    fake = FakeHost({"/certs/cache.cert.pem": b"PEM"})
    monkeypatch.setattr(testinfra, "get_host", lambda spec: fake)
    return fake


NO_STACK = SimpleNamespace(stack=None)


def test_a_file_found_on_the_host_is_read_there_once(host):
    first = deployed.deployed_file_on("docker://cache", NO_STACK, "/certs/cache.cert.pem")
    asked = host.commands
    again = deployed.deployed_file_on("docker://cache", NO_STACK, "/certs/cache.cert.pem")
    assert first == again == (b"PEM", "docker://cache:/certs/cache.cert.pem")
    assert asked > 0 and host.commands == asked


def test_a_file_not_on_the_host_is_asked_for_again(host):
    for _ in range(2):
        content, where = deployed.deployed_file_on("docker://cache", NO_STACK, "/certs/gone.pem")
        assert content is None and "neither on a --cache-host" in where
    assert host.commands == 4


def test_another_host_is_read_on_its_own(host):
    deployed.deployed_file_on("docker://cache", NO_STACK, "/certs/cache.cert.pem")
    asked = host.commands
    deployed.deployed_file_on("docker://replica-2", NO_STACK, "/certs/cache.cert.pem")
    assert host.commands > asked
