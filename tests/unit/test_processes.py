"""How many server processes the cache runs: --processes / DTRCACHE_PROCESSES / auto."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cache_under_test import processes
from cache_under_test.processes import PROCESSES_ENV, server_count, usable_cpus


def test_auto_is_one_server_process_per_usable_cpu(monkeypatch):
    monkeypatch.delenv(PROCESSES_ENV, raising=False)
    assert server_count(None) == server_count("auto") == usable_cpus() >= 1


def test_the_option_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(PROCESSES_ENV, "3")
    assert server_count(None) == 3
    assert server_count("1") == 1


@pytest.mark.parametrize("bad", ["0", "-1", "two", "65", "1.5"])
def test_bad_counts_name_the_setting(bad):
    with pytest.raises(ValueError, match=r"DTRCACHE_PROCESSES / --processes: expected auto or "
                                         r"1\.\.64"):
        server_count(bad)


def test_without_a_private_directory_the_cache_runs_as_one_process(monkeypatch):
    import cache_under_test.server as server

    def no_tmp(**_kwargs):
        raise OSError(30, "Read-only file system")

    served = []
    monkeypatch.setattr(processes.tempfile, "mkdtemp", no_tmp)
    monkeypatch.setattr(processes, "listen_tcp", lambda host, port: f"{host}:{port}")
    monkeypatch.setattr(server, "serve_on", lambda config, sock, **kw: served.append((sock, kw)))
    config = SimpleNamespace(addr_host="127.0.0.1", addr_port=5443, debug=None)
    assert processes.run(config, 2) == 0
    assert served == [("127.0.0.1:5443", {"tls": True, "debug_sock": None})]
