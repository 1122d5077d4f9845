"""The WAN relay's shapes on loopback: one-way delay per chunk, connect delay, rate each way,
loss-like stalls, a cut, and the command the relay container runs."""

from __future__ import annotations

import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from dtr_cache_check.reference import wanrelay
from dtr_cache_check.reference.wanrelay import TcpProxy


class _Handler(socketserver.StreamRequestHandler):
    """A line names the job: ``echo`` (echo lines), ``send N`` (N bytes), ``recv N`` (read N,
    answer ``ok``)."""

    def handle(self) -> None:
        command = self.rfile.readline().split()
        if not command:
            return
        if command[0] == b"send":
            self.wfile.write(b"x" * int(command[1]))
        elif command[0] == b"recv":
            left = int(command[1])
            while left > 0 and (chunk := self.rfile.read1(min(left, 65536))):
                left -= len(chunk)
            self.wfile.write(b"ok\n")
        else:
            while line := self.rfile.readline():
                self.wfile.write(line)
                self.wfile.flush()


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler) as srv:
        srv.daemon_threads = True
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        yield srv.server_address[1]
        srv.shutdown()


def _round_trips(port: int, count: int = 3) -> tuple[float, list[float]]:
    """(seconds to the first echo, seconds of each later echo on the same connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        began = time.monotonic()
        sock.sendall(b"echo\nping\n")
        assert reader.readline() == b"ping\n"
        first = time.monotonic() - began
        later = []
        for _ in range(count):
            began = time.monotonic()
            sock.sendall(b"ping\n")
            assert reader.readline() == b"ping\n"
            later.append(time.monotonic() - began)
    return first, later


def _receive(port: int, size: int) -> tuple[int, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        began = time.monotonic()
        sock.sendall(f"send {size}\n".encode())
        got = 0
        while chunk := sock.recv(65536):
            got += len(chunk)
            if got >= size:
                break
        return got, time.monotonic() - began


def test_every_round_trip_on_a_kept_alive_connection_pays_twice_the_one_way(server):
    with TcpProxy("127.0.0.1", server, one_way=0.05) as line:
        first, later = _round_trips(line.port)
    assert all(0.095 <= t < 0.25 for t in later), later
    assert first >= 0.095


def test_the_connect_delay_is_paid_once_per_connection(server):
    with TcpProxy("127.0.0.1", server, one_way=0.02, connect_delay=0.15) as line:
        first, later = _round_trips(line.port)
    assert first >= 0.15 + 0.04 - 0.005, first
    assert max(later) < 0.12, later


def test_without_a_shape_the_relay_adds_little(server):
    with TcpProxy("127.0.0.1", server) as line:
        _first, later = _round_trips(line.port, count=10)
    assert sorted(later)[5] < 0.02, later


def test_the_rate_holds_towards_the_client(server):
    size, rate = 2 * 1024 * 1024, 4 * 1024 * 1024
    with TcpProxy("127.0.0.1", server, rate=rate) as link:
        got, took = _receive(link.port, size)
    assert got == size
    # 0.5 s at the rate, less the short burst an idle link may send at once.
    assert 0.4 <= took < 1.0, took


def test_the_rate_holds_towards_the_target(server):
    size, rate = 2 * 1024 * 1024, 4 * 1024 * 1024
    with TcpProxy("127.0.0.1", server, rate_up=rate) as link, \
            socket.create_connection(("127.0.0.1", link.port), timeout=20) as sock:
        began = time.monotonic()
        sock.sendall(f"recv {size}\n".encode() + b"y" * size)
        assert sock.makefile("rb").readline() == b"ok\n"
        took = time.monotonic() - began
    assert 0.4 <= took < 1.0, took


def test_a_delay_line_keeps_a_bulk_transfer_at_full_speed(server):
    size = 16 * 1024 * 1024
    with TcpProxy("127.0.0.1", server, one_way=0.05) as line:
        got, took = _receive(line.port, size)
    assert got == size
    assert took < 0.1 + 1.0, took   # the round trip, plus far more than 16 MiB on loopback


def test_a_lost_packet_stalls_its_chunk_one_round_trip(server):
    with TcpProxy("127.0.0.1", server, one_way=0.03, loss=1.0) as lossy:
        _first, later = _round_trips(lossy.port)
    # Each way the chunk loses a packet: 2 x (one way + one round trip).
    assert all(t >= 0.17 for t in later), later
    with TcpProxy("127.0.0.1", server, one_way=0.03, loss=0.0) as clean:
        _first, later = _round_trips(clean.port)
    assert all(t < 0.15 for t in later), later


def test_the_connection_is_cut_after_the_bytes_given(server):
    with TcpProxy("127.0.0.1", server, cut_after=100_000) as link:
        got, _took = _receive(link.port, 1_000_000)
    assert got == 100_000


def test_the_shape_can_change_while_it_runs(server):
    with TcpProxy("127.0.0.1", server) as line:
        _first, fast = _round_trips(line.port)
        line.one_way = 0.05
        _first, slow = _round_trips(line.port)
    assert max(fast) < 0.05 <= min(slow) / 2 + 0.001, (fast, slow)


def test_the_relay_container_command_relays_with_its_delay(server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    relay = subprocess.Popen(
        [sys.executable, wanrelay.__file__, "--listen", f"127.0.0.1:{port}",
         "--target", f"127.0.0.1:{server}", "--one-way", "0.04", "--rate", "1e8"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert relay.stdout.readline().startswith(wanrelay.READY)
        _first, later = _round_trips(port)
        assert all(0.075 <= t < 0.25 for t in later), later
    finally:
        relay.terminate()
        relay.wait(10)
