"""How many server processes the cache runs: --processes / DTRCACHE_PROCESSES / auto."""

from __future__ import annotations

import pytest

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
