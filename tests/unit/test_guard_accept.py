"""A server process that shares its listener takes one connection a turn of its event loop
(the others get their share of a burst); a lone process takes every waiting one at once."""

from __future__ import annotations

import asyncio
import itertools
import socket

import uvloop
from aiohttp import web

from cache_under_test.guard import GuardedSite
from cache_under_test.limits import Limits

WAITING = 5


def _turns_at_each_accept(shared: bool) -> list[int]:
    """The loop turn at which each of ``WAITING`` queued connections was accepted."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(WAITING)]

    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        turn = 0

        def tick() -> None:
            nonlocal turn
            turn += 1
            loop.call_soon(tick)

        runner = web.AppRunner(web.Application())
        await runner.setup()
        site = GuardedSite(runner, listener, ssl_context=None, limits=Limits(),
                           handler_args={}, shared=shared)
        seen: list[int] = []
        serve = site._serve

        def counting(conn, peer) -> None:
            seen.append(turn)
            serve(conn, peer)

        site._serve = counting  # type: ignore[method-assign]
        loop.call_soon(tick)
        await site.start()
        for _ in range(200):
            if len(seen) == WAITING:
                break
            await asyncio.sleep(0.005)
        await runner.cleanup()
        return seen

    try:
        return uvloop.run(scenario())
    finally:
        for client in clients:
            client.close()


def test_a_process_sharing_its_listener_takes_one_connection_a_turn():
    turns = _turns_at_each_accept(shared=True)
    assert len(turns) == WAITING
    assert all(later > earlier for earlier, later in itertools.pairwise(turns)), turns


def test_a_lone_process_takes_every_waiting_connection_at_once():
    turns = _turns_at_each_accept(shared=False)
    assert len(turns) == WAITING and len(set(turns)) == 1, turns
