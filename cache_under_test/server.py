"""Bind and run the cache on uvloop (aiohttp's sendfile path is only fast there)."""

from __future__ import annotations

import asyncio

import uvloop
from aiohttp import web

from .app import Cache
from .config import CacheConfig
from .events import emit
from .tls import server_context


def serve(config: CacheConfig) -> None:
    """Run until SIGINT/SIGTERM."""
    ssl_context = server_context(config.tls.certificate, config.tls.key) if config.tls else None
    app = Cache(config).application()

    async def announce(_app: web.Application) -> None:
        emit("server.started", addr=f"{config.addr_host}:{config.addr_port}",
             tls=ssl_context is not None)

    app.on_startup.append(announce)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, host=config.addr_host, port=config.addr_port, ssl_context=ssl_context,
                print=None, access_log=None, handle_signals=True, shutdown_timeout=5)
