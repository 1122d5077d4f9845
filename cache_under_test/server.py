"""Run one cache process on uvloop, on a socket already listening (see ``processes``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import uvloop
from aiohttp import web

from .app import Cache
from .config import CacheConfig
from .events import emit
from .tls import server_context


def serve_on(config: CacheConfig, sock: socket.socket, *, tls: bool,
             fetcher: str | None = None, lifeline: int | None = None,
             supervisor=None) -> None:
    """Serve ``sock`` until SIGINT/SIGTERM.

    ``fetcher``: the fetcher's Unix socket, for a server process (misses go there);
    ``lifeline``: a pipe's read end that closes when the fetcher dies (then this one stops);
    ``supervisor``: the fetcher's watch over the server processes.
    """
    ssl_context = server_context(config.tls.certificate, config.tls.key, config.test_faults) \
        if tls and config.tls else None
    app = Cache(config, fetcher=fetcher).application()

    async def announce(_app: web.Application) -> None:
        where = sock.getsockname()
        emit("server.started", addr=where if isinstance(where, str) else
             f"{config.addr_host}:{config.addr_port}", tls=ssl_context is not None)

    app.on_startup.append(announce)
    if lifeline is not None:
        app.on_startup.append(_watch_lifeline(lifeline))
    if supervisor is not None:
        app.on_startup.append(supervisor.start)
        app.on_shutdown.insert(0, supervisor.stop)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, sock=sock, ssl_context=ssl_context, print=None, access_log=None,
                handle_signals=True, shutdown_timeout=5)


def _watch_lifeline(fd: int):
    async def watch(_app: web.Application) -> None:
        loop = asyncio.get_running_loop()

        def fetcher_gone() -> None:
            if not os.read(fd, 1):  # EOF: the fetcher's end closed
                loop.remove_reader(fd)
                emit("process.orphaned", reason="the fetcher process exited; stopping")
                os.kill(os.getpid(), signal.SIGTERM)

        loop.add_reader(fd, fetcher_gone)

    return watch
