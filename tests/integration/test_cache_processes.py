"""The cache as several processes: misses reach the fetcher, deaths stop the whole cache."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from dtr_cache_check.probes.logs import events
from dtr_cache_check.testkit.local import REPO_ROOT, LocalServer

from .serverkit import upstream_gets, wait_for_event

pytestmark = pytest.mark.integration


def children(server: LocalServer) -> list[int]:
    path = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return [int(pid) for pid in path.read_text().split()]


def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"):
            return True  # exited; only waiting for its parent (pytest's subprocess) to reap
        time.sleep(0.05)
    return False


def test_servers_hand_misses_to_one_fetcher(registry, make_cache, push, client):
    digest, data = push(registry)
    cache = make_cache([registry.url], processes="3", debug=True)
    assert len(children(cache)) == 3
    c = client(cache)
    assert [c.get_blob("team/app", digest).headers["x-cache"] for _ in range(4)] == \
        ["MISS", "HIT", "HIT", "HIT"]
    assert upstream_gets(registry, "team/app", digest) == 1
    hits = wait_for_event(cache, "blob.hit", digest=digest, count=3)
    lines = cache.log_lines()
    fetched, miss = events(lines, "blob.fetched", digest=digest), events(lines, "blob.miss",
                                                                           digest=digest)
    assert fetched[0].get("process") == "fetcher"
    # A whole-blob miss: the server process streamed the fetcher's file itself.
    assert miss[0].get("process", "").startswith("server-")
    assert miss[0].get("upstream") == registry.url and miss[0].get("bytes") == len(data)
    assert all(h.get("process", "").startswith("server-") for h in hits)
    # A Range miss is relayed as bytes; the fetcher logs the client the server process saw,
    # not its own Unix socket.
    other, other_data = push(registry)
    part = c.get_blob("team/app", other, headers={"Range": "bytes=10-19"})
    assert (part.status_code, part.content) == (206, other_data[10:20])
    relayed = wait_for_event(cache, "blob.miss", digest=other)
    assert relayed[0].get("process") == "fetcher" and relayed[0].get("client") == "127.0.0.1"
    # summed over every process (served by the fetcher, on the debug listener)
    metrics = httpx.get(cache.extra["debug_url"] + "/metrics", timeout=10).text
    assert "dtrcache_blob_hits_total 3.0" in metrics
    assert "dtrcache_blob_misses_total 2.0" in metrics


def test_a_dead_server_process_stops_the_whole_cache(registry, make_cache):
    cache = make_cache([registry.url], processes="2")
    first, second = children(cache)
    os.kill(first, signal.SIGKILL)
    cache.process.wait(15)
    assert cache.process.returncode == 1
    exited = wait_for_event(cache, "process.exited", pid=first)
    assert exited[0].get("process") == "server-1" and "restart" in exited[0].get("action")
    assert gone(second)


def private_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("dtrcache-*"))


def test_server_processes_stop_when_the_fetcher_dies(registry, make_cache):
    before = private_dirs()
    cache = make_cache([registry.url], processes="2")
    pids = children(cache)
    private = private_dirs() - before  # this cache's sockets and metrics
    cache.kill()  # SIGKILL: no goodbye to the server processes
    assert all(gone(pid) for pid in pids)
    assert private and not any(p.exists() for p in private)  # they removed its directory
    with socket.socket() as again:  # the port is free again: nothing holds it
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", cache.port))


def test_sigterm_stops_every_process_cleanly(registry, make_cache):
    cache = make_cache([registry.url], processes="2")
    pids = children(cache)
    cache.stop()
    assert cache.process.returncode == 0
    assert all(gone(pid, timeout=1) for pid in pids)


def test_processes_option_is_checked(tmp_path, registry, make_cache):
    cache = make_cache([registry.url], wait=False)
    cache.stop()
    for bad in ("0", "many"):
        run = subprocess.run([sys.executable, "-m", "cache_under_test", "--processes", bad,
                              str(cache.config_path)], capture_output=True, text=True,
                             cwd=REPO_ROOT, timeout=60)
        assert run.returncode == 2
        assert "config error: DTRCACHE_PROCESSES / --processes" in run.stderr


def test_private_directories_left_by_a_kill_of_every_process_are_removed_at_start(
        registry, make_cache):
    tmp = Path(tempfile.mkdtemp(prefix="t19-"))  # short: the fetcher's socket path is in it
    try:
        env = {"TMPDIR": str(tmp)}
        killed = make_cache([registry.url], env=env)
        live = make_cache([registry.url], env=env)
        private = {p.name for p in tmp.glob("dtrcache-*")}
        assert len(private) == 2
        os.killpg(killed.process.pid, signal.SIGKILL)  # every process of that cache
        killed.process.wait(10)
        time.sleep(0.5)
        assert {p.name for p in tmp.glob("dtrcache-*")} == private  # left behind

        again = make_cache([registry.url], env=env)
        now = {p.name for p in tmp.glob("dtrcache-*")}
        assert len(now) == 2, now  # the live cache's and the new one's
        assert len(now & private) == 1  # the stale one is gone, the live one's kept
        assert httpx.get(f"{live.url}/v2/", verify=False, timeout=10).status_code == 200
        cleaned = events(again.log_lines(), "processes.cleaned")
        assert cleaned and cleaned[0].get("removed") == [str(tmp / name) for name in
                                                          private - now], cleaned
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
