"""Connections that never finish their TLS handshake, or send their request head a byte at a
time, are closed by the cache within its timeouts (``DTRCACHE_TLS_HANDSHAKE_TIMEOUT``,
``DTRCACHE_HEADER_TIMEOUT``, set short here), while it keeps serving blobs; a server process
holds at most ``DTRCACHE_MAX_CONNECTIONS``, and serves the next client once one closes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time

import pytest

from dtr_cache_check.probes.logs import events

from .cachekit import status_kib

HANDSHAKE = 2.0  # seconds, for the test
HEADER = 3.0
SLACK = 4.0      # a busy two-core machine: the server may close a little late, never much
SHORT = {"DTRCACHE_TLS_HANDSHAKE_TIMEOUT": f"{HANDSHAKE:g}",
         "DTRCACHE_HEADER_TIMEOUT": f"{HEADER:g}s"}


async def closed_after(reader: asyncio.StreamReader, started: float, limit: float) -> float:
    """Seconds from ``started`` until the server closed the connection (EOF or reset); fails
    the test if it is still open after ``limit``."""
    try:
        async with asyncio.timeout(limit):
            while await reader.read(4096):
                pass
    except TimeoutError:  # before OSError, its base class
        pytest.fail(f"the cache still held a slow connection after {limit} s")
    except (ConnectionError, ssl.SSLError, OSError):
        pass  # reset: closed as well
    return time.monotonic() - started


async def never_start_tls(port: int, limit: float) -> float:
    """A TCP connection that never sends its ClientHello."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await closed_after(reader, started, limit)
    finally:
        writer.close()


async def trickle_head(port: int, context: ssl.SSLContext, limit: float) -> tuple[float, int]:
    """TLS, then a request head one byte every 0.5 s; (seconds until closed, bytes sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname="127.0.0.1")
    started = time.monotonic()
    head = b"GET /v2/ HTTP/1.1\r\nHost: cache\r\nX-Slow: " + b"a" * 1000
    sent = 0

    async def drip() -> None:
        nonlocal sent
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            await asyncio.sleep(0.5)

    dripping = asyncio.create_task(drip())
    try:
        return await closed_after(reader, started, limit), sent
    finally:
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
        writer.close()


def test_slow_connections_are_closed_and_blobs_keep_flowing(registry, make_cache, push, client,
                                                            pki):
    digest, data = push(registry)
    cache = make_cache([registry.url], processes="2", env=SHORT)
    c = client(cache)
    assert c.get_blob("team/app", digest).status_code == 200  # stored: the rest are hits

    async def scenario() -> tuple[list[float], list[tuple[float, int]], list[int]]:
        silent = [asyncio.create_task(never_start_tls(cache.port, HANDSHAKE + SLACK))
                  for _ in range(50)]
        tricklers = [asyncio.create_task(trickle_head(cache.port, pki.context, HEADER + SLACK))
                     for _ in range(50)]
        await asyncio.sleep(0.5)
        statuses = []
        for _ in range(6):  # meanwhile, a normal client pulls as usual
            answer = await asyncio.to_thread(c.get_blob, "team/app", digest)
            statuses.append(answer.status_code)
            assert answer.content == data
            await asyncio.sleep(0.3)
        return (await asyncio.gather(*silent), await asyncio.gather(*tricklers), statuses)

    silent, tricklers, statuses = asyncio.run(scenario())
    assert statuses == [200] * 6
    assert max(silent) <= HANDSHAKE + SLACK and min(silent) >= HANDSHAKE - 0.5, silent
    assert max(t for t, _ in tricklers) <= HEADER + SLACK, tricklers
    assert min(t for t, _ in tricklers) >= HEADER - 0.5, tricklers
    assert all(sent >= 4 for _, sent in tricklers)  # they did keep sending: still closed
    lines = cache.log_lines()
    assert len(events(lines, "connection.timeout", phase="tls handshake")) == 50
    assert len(events(lines, "connection.timeout", phase="request header")) == 50
    assert c.get_blob("team/app", digest).status_code == 200


def test_a_later_request_on_a_kept_alive_connection_has_the_same_deadline(registry,
                                                                          make_cache, pki):
    cache = make_cache([registry.url], processes="1", env=SHORT)

    async def scenario() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", cache.port, ssl=pki.context,
                                                       server_hostname="127.0.0.1")
        try:
            writer.write(b"GET /v2/ HTTP/1.1\r\nHost: cache\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            await asyncio.sleep(HEADER + 0.5)  # idle, kept alive: not a slow header
            started = time.monotonic()
            for byte in b"GET /v2/ HTTP/1.1\r\nHost: cache\r\nX-Slow: " + b"a" * 100:
                writer.write(bytes([byte]))
                try:
                    await asyncio.wait_for(reader.read(1), 0.5)
                    return time.monotonic() - started  # EOF: closed
                except TimeoutError:
                    pass
                except (ConnectionError, ssl.SSLError, OSError):
                    return time.monotonic() - started
            pytest.fail("the cache still held a connection trickling its second request")
        finally:
            writer.close()

    closed = asyncio.run(scenario())
    assert HEADER - 0.5 <= closed <= HEADER + SLACK, closed


def test_a_server_process_holds_at_most_max_connections(registry, make_cache, push, client,
                                                         pki):
    digest, _ = push(registry)
    handshake = 4.0  # long enough to try the eleventh while the ten are held
    cache = make_cache([registry.url], processes="1",
                       env={"DTRCACHE_TLS_HANDSHAKE_TIMEOUT": f"{handshake:g}",
                            "DTRCACHE_MAX_CONNECTIONS": "10"})
    c = client(cache)
    assert c.get_blob("team/app", digest).status_code == 200

    idle = [socket.create_connection(("127.0.0.1", cache.port)) for _ in range(10)]
    try:
        time.sleep(0.5)
        # The eleventh is not accepted: its handshake gets no answer while the ten are held.
        with socket.create_connection(("127.0.0.1", cache.port), timeout=1.0) as tcp, \
                pytest.raises(TimeoutError):
            pki.context.wrap_socket(tcp, server_hostname="127.0.0.1")
        limit = [line for line in cache.log_lines() if line.get("event") == "connections.limit"]
        assert limit and limit[0].get("max_connections") == 10
        # Once the silent ones time out, a normal client is served.
        started = time.monotonic()
        assert c.get_blob("team/app", digest).status_code == 200
        assert time.monotonic() - started <= handshake + SLACK
    finally:
        for sock in idle:
            sock.close()


def test_one_address_cannot_take_every_connection(registry, make_cache, push, client, pki):
    digest, _ = push(registry)
    cache = make_cache([registry.url], processes="1",
                       env={"DTRCACHE_MAX_CONNECTIONS": "30",
                            "DTRCACHE_MAX_CLIENT_CONNECTIONS": "10"})
    c = client(cache)
    assert c.get_blob("team/app", digest).status_code == 200
    flood = []
    try:
        for _ in range(40):  # silent connections from another address of this machine
            sock = socket.socket()
            sock.bind(("127.0.0.2", 0))
            sock.connect(("127.0.0.1", cache.port))
            flood.append(sock)
        time.sleep(0.5)
        started = time.monotonic()
        assert c.get_blob("team/app", digest).status_code == 200
        assert time.monotonic() - started < 2.0
        limit = [line for line in cache.log_lines()
                 if line.get("event") == "connections.client_limit"]
        assert limit and limit[0].get("client") == "127.0.0.2", limit
        assert limit[0].get("max_client_connections") == 10
    finally:
        for sock in flood:
            sock.close()


READERS = 100
# What a stalled reader may pin: the read in flight, its TLS records and what its socket has
# not taken, about 3 x fill.READ_CHUNK (about 1.5 MiB before the bound).
PER_READER_KIB = 1024
RETURNED_WITHIN = 3.5  # s: heap.TRIM_INTERVAL and a margin


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
def test_slow_readers_of_a_hit_hold_a_bounded_buffer_and_give_it_back(registry, make_cache,
                                                                      push, client, pki):
    digest, _ = push(registry, size=8 * 1024 * 1024)
    cache = make_cache([registry.url], processes="1")
    c = client(cache)
    for _ in range(2):  # a miss, then a hit: the hit path's own allocations are made
        assert c.get_blob("team/app", digest).status_code == 200
    pid = cache.process.pid
    request = (f"GET /v2/team/app/blobs/{digest} HTTP/1.1\r\nHost: cache\r\n\r\n").encode()

    fds = open_fds(pid)

    async def scenario() -> tuple[int, int, int]:
        before = status_kib(pid)
        readers = []
        for _ in range(READERS):  # each reads the answer's head, then nothing more
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", cache.port, ssl=pki.context, server_hostname="127.0.0.1")
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")
            readers.append(writer)
        await asyncio.sleep(2.0)  # the cache has written all it will to them
        held = status_kib(pid)
        for writer in readers:
            writer.transport.abort()
        await asyncio.sleep(RETURNED_WITHIN)
        return before, held, status_kib(pid)

    before, held, after = asyncio.run(scenario())
    per_reader = (held - before) / READERS
    assert per_reader < PER_READER_KIB, f"{per_reader:.0f} KiB a slow reader"
    assert after - before < 10 * 1024, \
        f"{(after - before) / 1024:.1f} MiB not given back after they closed"
    assert open_fds(pid) <= fds
    assert c.get_blob("team/app", digest).status_code == 200
