"""A stored blob's answer goes out as one write to the transport: head and first body bytes
together (one TLS flush, one send), where aiohttp's StreamResponse writes its head alone."""

from __future__ import annotations

import asyncio
from unittest import mock

from aiohttp.http_writer import StreamWriter
from aiohttp.test_utils import make_mocked_request

from cache_under_test.ranges import blob_response

DIGEST = "sha256:" + "ab" * 32
BODY = b"x" * 300_000


class Transport(asyncio.Transport):
    """Records what is handed to it, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def writelines(self, chunks) -> None:
        self.writes.append(b"".join(bytes(c) for c in chunks))

    def is_closing(self) -> bool:
        return False


def _send(method: str, stored: bool, body: bytes = BODY) -> list[bytes]:
    async def scenario() -> list[bytes]:
        transport = Transport()
        protocol = mock.Mock(transport=transport, _paused=False)  # never backed up
        writer = StreamWriter(protocol, asyncio.get_running_loop())
        request = make_mocked_request(method, "/v2/a/blobs/" + DIGEST, writer=writer,
                                      transport=transport)
        response, start, end = blob_response(request, DIGEST, len(body), "HIT", stored=stored)
        await response.prepare(request)
        if method == "GET":
            await response.write(body[start:end + 1])
        await response.write_eof()
        return transport.writes

    return asyncio.run(scenario())


def test_a_stored_blob_is_sent_head_and_body_in_one_write():
    writes = _send("GET", stored=True)
    assert len(writes) == 1, [w[:40] for w in writes]
    head, _, body = writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 300000" in head
    assert body == BODY


def test_a_transfer_in_progress_sends_its_head_at_once():
    # A miss's head must not wait for the upstream's first bytes.
    writes = _send("GET", stored=False)
    assert len(writes) == 2 and writes[0].endswith(b"\r\n\r\n") and writes[1] == BODY


def test_a_stored_blob_head_request_still_sends_its_head():
    writes = _send("HEAD", stored=True)
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200 OK")
    assert writes[0].endswith(b"\r\n\r\n") and b"Content-Length: 300000" in writes[0]

