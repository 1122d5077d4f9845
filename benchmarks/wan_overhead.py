"""``python -m benchmarks.wan_overhead [--quick]``: the WAN relay's own cost on this machine.

What the relay adds when it is told to add nothing (profile ``lan``: zero delay, no rate), and
the fastest it can carry: a round trip of 64 bytes on a kept-alive connection (median and 99th
percentile of many), a new connection's first round trip, and one bulk transfer's rate. Each
against the same server reached directly, on two paths:

- ``loopback``: server and relay as processes on the host (the relay is ``wanrelay.py`` run by
  python3, as in its container);
- ``containers``: the deployment's path: the server and the relay as containers of the base
  image on a bridge network of their own, the host talking to their addresses.

Then, on the container path, the rate each WAN profile's relay actually delivers against its
nominal rate. Writes ``reports/bench/wan-overhead.json`` and ``.md``; removes every container
and network it started (labelled ``org.dtrcache.bench``), also when it fails.
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker

from dtr_cache_check.reference import images, wanrelay
from dtr_cache_check.reference.stack.relays import RELAY_PATH, relay_tar
from dtr_cache_check.reference.wan import PROFILES

from . import machine

REPORTS = Path(__file__).resolve().parent.parent / "reports" / "bench"
BENCH_LABEL = "org.dtrcache.bench"
PORT = 9000
MIB = 1024 * 1024

# A stdlib server for the host and the containers alike: a first line "echo" echoes lines,
# "send N" sends N bytes.
SERVER = """
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        words = self.rfile.readline().split()
        if words and words[0] == b"send":
            left, block = int(words[1]), b"x" * 65536
            while left > 0:
                self.wfile.write(block[:left]); left -= len(block)
        else:
            while line := self.rfile.readline():
                self.wfile.write(line); self.wfile.flush()
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
socketserver.ThreadingTCPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""


def _connect(host: str, port: int, timeout: float = 30) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def measure(host: str, port: int, *, pings: int, connections: int, bulk: int) -> dict[str, Any]:
    """Round trips on one connection, first round trips of new ones, one bulk rate."""
    trips = []
    with _connect(host, port) as sock:
        reader = sock.makefile("rb")
        sock.sendall(b"echo\n")
        line = b"p" * 63 + b"\n"
        for _ in range(pings):
            began = time.perf_counter()
            sock.sendall(line)
            reader.readline()
            trips.append(time.perf_counter() - began)
    firsts = []
    for _ in range(connections):
        began = time.perf_counter()
        with _connect(host, port) as sock:
            sock.sendall(b"echo\nx\n")
            sock.makefile("rb").readline()
        firsts.append(time.perf_counter() - began)
    with _connect(host, port) as sock:
        # From the first byte on: the rate, without the round trips before it.
        sock.sendall(f"send {bulk}\n".encode())
        first = len(sock.recv(1 << 20))
        began = time.perf_counter()
        got = 0
        while got < bulk - first and (chunk := sock.recv(1 << 20)):
            got += len(chunk)
        took = time.perf_counter() - began
    trips.sort()
    return {"rtt_median_us": statistics.median(trips) * 1e6,
            "rtt_p99_us": trips[int(len(trips) * 0.99) - 1] * 1e6,
            "first_rtt_median_us": statistics.median(firsts) * 1e6,
            "rate_mib_s": got / took / MIB}


@contextmanager
def _process(*argv: str) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback(plan: dict[str, int]) -> dict[str, Any]:
    server_port, relay_port = _free_port(), _free_port()
    with _process("-c", SERVER, str(server_port)), \
            _process(wanrelay.__file__, "--listen", f"127.0.0.1:{relay_port}",
                     "--target", f"127.0.0.1:{server_port}") as relay:
        relay.stdout.readline()
        return {"direct": measure("127.0.0.1", server_port, **plan),
                "relay": measure("127.0.0.1", relay_port, **plan)}


class Containers:
    """The server and relays as containers of the base image on a network of their own."""

    def __init__(self, client: docker.DockerClient):
        self.client = client
        self.run = f"wan-overhead-{secrets.token_hex(3)}"
        self.labels = {BENCH_LABEL: self.run}
        self.network = client.networks.create(f"dtrcache-bench-{self.run}", driver="bridge",
                                              labels=self.labels)
        self.started: list = []

    def start(self, name: str, command: list[str], files: bytes | None = None) -> str:
        """Start a container; return its address on the network."""
        container = self.client.containers.create(
            images.BASE_IMAGE, command=command, name=f"dtrcache-bench-{self.run}-{name}",
            labels=self.labels, network=self.network.name, detach=True,
            networking_config={self.network.name: self.client.api.create_endpoint_config(
                aliases=[name])})
        self.started.append(container)
        if files:
            container.put_archive("/", files)
        container.start()
        container.reload()
        return container.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]

    def relay(self, name: str, args: list[str]) -> str:
        return self.start(name, ["python3", RELAY_PATH, "--listen", f"0.0.0.0:{PORT}",
                                 "--target", f"server:{PORT}", *args], files=relay_tar())

    def close(self) -> None:
        for container in self.started:
            container.remove(force=True)
        self.network.remove()


def containers(plan: dict[str, int], *, profile_seconds: float) -> dict[str, Any]:
    lab = Containers(docker.from_env())
    try:
        server = lab.start("server", ["python3", "-c", SERVER, str(PORT)])
        relay = lab.relay("relay", [])
        results: dict[str, Any] = {"direct": measure(server, PORT, **plan),
                                   "relay": measure(relay, PORT, **plan), "profiles": {}}
        for profile in PROFILES.values():
            if not profile.rate_bytes:
                continue
            address = lab.relay(profile.name, profile.relay_args())
            bulk = int(profile.rate_bytes * profile_seconds)
            got = measure(address, PORT, pings=5, connections=3, bulk=bulk)
            results["profiles"][profile.name] = {
                "rtt_ms": profile.rtt_ms, "nominal_mib_s": profile.rate_bytes / MIB,
                "measured_rtt_ms": got["rtt_median_us"] / 1000,
                "measured_mib_s": got["rate_mib_s"], "bytes": bulk}
        return results
    finally:
        lab.close()


def markdown(results: dict[str, Any]) -> str:
    lines = ["| path | round trip (median / p99) | first round trip of a new connection | "
             "bulk rate |", "|---|---|---|---|"]
    for path in ("loopback", "containers"):
        for way in ("direct", "relay"):
            r = results[path][way]
            lines.append(f"| {path}, {way} | {r['rtt_median_us']:.0f} / {r['rtt_p99_us']:.0f} "
                         f"µs | {r['first_rtt_median_us']:.0f} µs | "
                         f"{r['rate_mib_s']:.0f} MiB/s |")
    lines += ["", "| profile | nominal RTT | measured RTT | nominal rate | measured rate |",
              "|---|---|---|---|---|"]
    for name, p in results["containers"]["profiles"].items():
        lines.append(f"| {name} | {p['rtt_ms']:g} ms | {p['measured_rtt_ms']:.1f} ms | "
                     f"{p['nominal_mib_s']:.2f} MiB/s | {p['measured_mib_s']:.2f} MiB/s |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wan_overhead",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, smaller transfers")
    args = parser.parse_args(argv)
    plan = ({"pings": 300, "connections": 20, "bulk": 64 * MIB} if args.quick
            else {"pings": 3000, "connections": 100, "bulk": 512 * MIB})
    results = {"meta": {"machine": machine.describe(), "plan": plan,
                        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
               "loopback": loopback(plan),
               "containers": containers(plan, profile_seconds=2 if args.quick else 6)}
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "wan-overhead.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (REPORTS / "wan-overhead.md").write_text("# The WAN relay's overhead\n\n" + table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
