"""Run one cache process on uvloop, on a socket already listening (see ``processes``).

The public listener is served by ``guard.GuardedSite`` (handshake and header timeouts, a
connection limit: see ``limits``); the fetcher's private Unix socket by aiohttp's own site; the
debug listener (``http.debug.addr``), where there is one, beside them in the same event loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import uvloop
from aiohttp import web

from . import distlog
from .app import Cache
from .config import CacheConfig
from .events import emit
from .guard import GuardedSite
from .tls import server_context

SHUTDOWN_TIMEOUT = 5.0  # seconds for responses in flight at SIGTERM


def serve_on(config: CacheConfig, sock: socket.socket, *, tls: bool,
             fetcher: str | None = None, lifeline: int | None = None,
             supervisor=None, debug_sock: socket.socket | None = None,
             private: Path | None = None) -> None:
    """Serve ``sock`` until SIGINT/SIGTERM.

    ``tls``: ``sock`` is the public listener (TLS when the config has a certificate, the
    guards of ``limits``, the minimal ``/health``); otherwise the fetcher's private socket;
    ``fetcher``: the fetcher's Unix socket, for a server process (misses go there; its
    listener is shared with the other server processes);
    ``lifeline``: a pipe's read end that closes when the fetcher dies (then this one stops);
    ``supervisor``: the fetcher's watch over the server processes;
    ``debug_sock``: the debug listener (``http.debug.addr``), in the process that serves it;
    ``private``: the run's private directory, with several processes.
    """
    ssl_context = server_context(config.tls.certificate, config.tls.key, config.test_faults) \
        if tls and config.tls else None
    cache = Cache(config, fetcher=fetcher, private=private)
    app = cache.application(detail=config.public_debug if tls else True)

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
    # The distribution profile's public listener: no X-Cache, distribution's access lines.
    public_args = distlog.attach(app) if tls and config.output.profile == "distribution" \
        else {}
    debug_app = cache.debug_application() if debug_sock is not None else None
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(_serve(config, app, sock, ssl_context, public=tls, debug_app=debug_app,
                       debug_sock=debug_sock, public_args=public_args,
                       shared=fetcher is not None))


async def _serve(config: CacheConfig, app: web.Application, sock: socket.socket,
                 ssl_context, *, public: bool, debug_app: web.Application | None,
                 debug_sock: socket.socket | None, public_args: dict,
                 shared: bool = False) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    handler_args = {"access_log": None, "keepalive_timeout": config.limits.keepalive_timeout}
    runners: list[web.AppRunner] = []
    try:
        runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT, **handler_args)
        runners.append(runner)
        await runner.setup()  # the application's start-up: keys, the fetcher's connection...
        site: web.BaseSite
        if public:
            site = GuardedSite(runner, sock, ssl_context=ssl_context, limits=config.limits,
                               handler_args={**handler_args, **public_args}, shared=shared)
        else:
            site = web.SockSite(runner, sock, ssl_context=ssl_context)
        await site.start()
        if debug_app is not None and debug_sock is not None:
            debug = web.AppRunner(debug_app, shutdown_timeout=1.0, **handler_args)
            runners.append(debug)
            await debug.setup()
            await GuardedSite(debug, debug_sock, ssl_context=None, limits=config.limits,
                              handler_args=handler_args).start()
            host, port = debug_sock.getsockname()[:2]
            emit("debug.started", addr=f"{host}:{port}",
                 serves=sorted(r.canonical for r in debug_app.router.resources()
                               if "{" not in r.canonical))
        await stopping.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


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
