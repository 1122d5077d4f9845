"""How a blob body is read and written (``fill.stream_growing``): the first MiB in
``READ_CHUNK`` reads; then ``SLOW_CHUNK`` reads while the connection is backed up, else the
caller's ``fast`` size (a hit's ``hit.chunk_size``: large only while the process serves few
hits); and a yield to the event loop at least once per ``YIELD_EVERY`` bytes, so that a client
that left is noticed."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import time
from unittest import mock

import pytest
from aiohttp.http_writer import StreamWriter
from aiohttp.test_utils import make_mocked_request

from cache_under_test import fill, hit
from cache_under_test.fill import (
    READ_CHUNK,
    SLOW_AFTER,
    SLOW_CHUNK,
    YIELD_EVERY,
    StreamBroken,
    stream_growing,
)
from cache_under_test.metrics import Metrics
from cache_under_test.names import parse_digest
from cache_under_test.stored import Hit

MIB = 1024 * 1024


class Stored:
    """A blob all written and verified (what a hit streams)."""

    def __init__(self, size: int):
        self.written, self.done, self.error = size, True, None

    async def wait_change(self) -> None:
        raise AssertionError("a stored blob does not grow")


@pytest.fixture
def blob(tmp_path):
    data = os.urandom(6 * MIB + 12345)
    path = tmp_path / "blob"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data
    os.close(fd)


def _stream(fd: int, size: int, start: int = 0, end: int | None = None, backed_up=None,
            fast=None) -> tuple[list[int], bytes, list[int]]:
    """(write sizes, bytes written, bytes written before each yield to the loop)."""
    writes: list[bytes] = []
    yields: list[int] = []

    async def write(chunk: bytes) -> None:
        writes.append(bytes(chunk))

    async def scenario() -> None:
        real_sleep = asyncio.sleep

        async def counted(delay: float) -> None:
            yields.append(sum(len(w) for w in writes))
            await real_sleep(delay)

        fill.asyncio.sleep = counted
        try:
            await stream_growing(Stored(size), fd, start, size - 1 if end is None else end,
                                 write, backed_up, fast)
        finally:
            fill.asyncio.sleep = real_sleep

    asyncio.run(scenario())
    return [len(w) for w in writes], b"".join(writes), yields


def test_reads_are_read_chunks_without_a_fast_size(blob):
    fd, data = blob
    sizes, sent, _ = _stream(fd, len(data), backed_up=lambda: False)
    assert sent == data
    assert set(sizes[:-1]) == {READ_CHUNK}


def test_after_the_first_mib_a_connection_that_keeps_up_gets_the_fast_size(blob):
    fd, data = blob
    sizes, sent, _ = _stream(fd, len(data), backed_up=lambda: False, fast=lambda: 2 * MIB)
    assert sent == data
    assert sizes[:SLOW_AFTER // READ_CHUNK] == [READ_CHUNK] * (SLOW_AFTER // READ_CHUNK)
    assert sizes[SLOW_AFTER // READ_CHUNK:-1] == [2 * MIB, 2 * MIB]


def test_a_backed_up_connection_gets_slow_chunks_whatever_the_fast_size(blob):
    fd, data = blob
    asked = []
    sizes, sent, _ = _stream(fd, len(data), backed_up=lambda: True,
                             fast=lambda: asked.append(1) or 2 * MIB)
    assert sent == data
    assert set(sizes[SLOW_AFTER // READ_CHUNK:-1]) == {SLOW_CHUNK}
    assert not asked


def test_a_range_is_sent_exactly_in_fast_chunks(blob):
    fd, data = blob
    _, sent, _ = _stream(fd, len(data), start=1000, end=5 * MIB + 7,
                             backed_up=lambda: False, fast=lambda: MIB)
    assert sent == data[1000:5 * MIB + 8]


def test_the_loop_gets_a_turn_at_least_once_per_yield_every_bytes(blob):
    fd, data = blob
    for fast in (None, lambda: SLOW_CHUNK, lambda: 2 * MIB):
        sizes, _, yields = _stream(fd, len(data), backed_up=lambda: False, fast=fast)
        marks = [0, *yields, len(data)]
        biggest = max(sizes)
        assert all(b - a <= YIELD_EVERY + biggest for a, b in itertools.pairwise(marks)), \
            (marks, biggest)
        assert len(yields) >= len(data) // (YIELD_EVERY + biggest)


def test_a_file_that_shrank_breaks_the_transfer(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * MIB)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(StreamBroken) as broken:
            _stream(fd, 3 * MIB, backed_up=lambda: False, fast=lambda: MIB)
        assert broken.value.sent == MIB
    finally:
        os.close(fd)


def test_a_hit_reads_large_chunks_only_while_its_process_serves_few_hits(monkeypatch):
    monkeypatch.setattr(hit, "_serving", 1)
    assert hit.chunk_size() == hit.STORED_CHUNK > READ_CHUNK
    monkeypatch.setattr(hit, "_serving", hit.FEW_HITS)
    assert hit.chunk_size() == hit.STORED_CHUNK
    monkeypatch.setattr(hit, "_serving", hit.FEW_HITS + 1)
    assert hit.chunk_size() == READ_CHUNK


def test_a_hit_counts_itself_while_it_sends(tmp_path):
    data = os.urandom(4 * MIB + 99)
    digest = parse_digest("sha256:" + hashlib.sha256(data).hexdigest())
    path = tmp_path / "data"
    path.write_bytes(data)
    serving: list[int] = []

    class Transport(asyncio.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.writes: list[bytes] = []

        def write(self, chunk) -> None:
            serving.append(hit._serving)
            self.writes.append(bytes(chunk))

        def writelines(self, chunks) -> None:
            self.write(b"".join(bytes(c) for c in chunks))

        def is_closing(self) -> bool:
            return False

    async def scenario() -> list[bytes]:
        transport = Transport()
        protocol = mock.Mock(transport=transport, _paused=False)
        writer = StreamWriter(protocol, asyncio.get_running_loop())
        request = make_mocked_request("GET", f"/v2/a/blobs/{digest}", writer=writer,
                                      transport=transport)
        fd = os.open(path, os.O_RDONLY)
        stored = Hit(fd, os.fstat(fd), digest)
        try:
            await hit.serve_hit(request, stored, "a", None, time.monotonic(), Metrics())
        finally:
            stored.close()
        return transport.writes

    writes = asyncio.run(scenario())
    assert b"".join(writes).partition(b"\r\n\r\n")[2] == data
    assert serving and set(serving) == {1} and hit._serving == 0
    assert max(len(w) for w in writes) == hit.STORED_CHUNK  # one hit: large reads
