"""Upstream distance on loopback: fixtures.netproxy's TcpProxy, with latency on every chunk.

TcpProxy's own ``delay`` is paid once per connection, which a pooled connection hides. Here each
chunk read from either side is written to the other ``one_way`` seconds later (a delay line, not
a throttle: bulk transfers keep their rate), so every request on a kept-alive connection pays
the round trip, as over a WAN. ``one_way`` can be changed while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib

from dtr_cache_check.testkit.netproxy import TcpProxy

_READ = 64 * 1024


class DelayLine(TcpProxy):
    """``127.0.0.1:<port>`` -> target, each chunk delayed ``one_way`` seconds."""

    def __init__(self, target_host: str, target_port: int, one_way: float = 0.0):
        super().__init__(target_host, target_port)
        self.one_way = one_way

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Python 3.11's stream callback raises on a handler that ends cancelled (stop() does
        # that to open connections): end quietly instead.
        with contextlib.suppress(asyncio.CancelledError):
            await super()._handle(reader, writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    limit: bool) -> None:
        loop = asyncio.get_running_loop()
        line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def pump() -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(_READ):
                    line.put_nowait((loop.time() + self.one_way, data))
            line.put_nowait((loop.time() + self.one_way, b""))

        pumping = asyncio.create_task(pump())
        try:
            while True:
                due, data = await line.get()
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping
            with contextlib.suppress(Exception):
                writer.write_eof()
