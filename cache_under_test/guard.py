"""The public listener's door: TLS handshake and request-header timeouts, a connection limit
per server process and, optionally, per client address (values in ``limits``), and one
``request.bad`` line per malformed request.

aiohttp's stock site hands every accepted socket to the event loop with no handshake deadline
shorter than a minute and no limit, and its parser errors are logged as a traceback at ERROR
quoting the raw request line. Here the server process accepts connections itself
(``GuardedSite``): it stops accepting at ``max_connections`` (the other server processes, on
the same listening socket, take the new ones), gives each TLS handshake ``handshake_timeout``,
and serves each connection with a ``GuardedHandler``, aiohttp's handler with a deadline for the
request head and a quiet answer to bad requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from . import handshakes, heap
from .events import Every, emit
from .limits import Limits

# A client connection's write buffer: writing pauses above it (uvloop's TLS default is 512 KiB,
# which a slow reader keeps full), so with fill.SLOW_CHUNK reads a slow reader holds about
# 2 x 64 KiB of the process, as nginx's 2 x 32 KiB output buffers do.
WRITE_HIGH_WATER = 64 * 1024
LIMIT_LOG_INTERVAL = 10.0  # seconds between connections.limit lines while at a limit
ACCEPT_BATCH = 64  # connections accepted at once when several are waiting (a lone process)


class GuardedHandler(web.RequestHandler):
    """aiohttp's connection handler, and: the request line and headers must all arrive within
    ``header_timeout`` (from the connection's start, or from the first byte of a later request
    on a kept-alive connection), or the connection is closed (``connection.timeout``); a
    request the HTTP parser refuses is answered 4xx and logged as one ``request.bad`` line at
    warning level, its reason redacted, without a traceback."""

    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop,
                 header_timeout: float, release: Callable[[], None], **kwargs: Any):
        super().__init__(manager, loop=loop, **kwargs)
        self._header_timeout = header_timeout
        self._release = release
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        limit = getattr(transport, "set_write_buffer_limits", None)  # uvloop's: no base class
        if limit is not None:
            limit(high=WRITE_HIGH_WATER)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._release()
        super().connection_lost(exc)

    # aiohttp's own state read here (``_request_count``: request heads parsed on this
    # connection; ``_current_request``: one being handled; ``_messages``: parsed, not yet
    # handled) is internal, stable since 3.9: the integration tests (test_cache_slow_clients)
    # would see it change.
    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:  # a request head is complete (or refused)
            self._disarm()
        elif (self._head_timer is None and data and self._current_request is None
              and not self._messages):
            self._arm()  # the first bytes of the next request on a kept-alive connection

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self._loop.call_later(self._header_timeout, self._head_overdue)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self.transport is None or self._force_close:
            return
        emit("connection.timeout", client=_client(self.transport), phase="request header",
             timeout_s=self._header_timeout,
             reason="the request line and headers did not all arrive in time; closed")
        self.force_close()

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:  # our own failure: aiohttp logs it with its traceback
            return super().handle_error(request, status, exc, message)
        fields = bad_request_fields(exc, message)
        emit("request.bad", logging.WARNING, client=request.remote, status=status, **fields)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response "
                                  "with the error message")
        response = web.Response(status=status, text=f"{status} {fields['reason']}\n")
        response.force_close()
        return response


def bad_request_fields(exc: BaseException | None, message: str | None) -> dict:
    """What a ``request.bad`` line says: ``reason`` (the parser's words), ``error`` (the
    exception's class) and ``near`` (the quoted bytes it stopped at; the formatter redacts
    them). An over-long line's bytes are never quoted: its start is all aiohttp keeps, and that
    is usually a header's value."""
    fields: dict[str, Any] = {"error": type(exc).__name__ if exc else "BadRequest"}
    if isinstance(exc, LineTooLong):
        fields["reason"] = f"a line longer than {exc.args[1]} bytes"
        return fields
    text = exc.message if isinstance(exc, HttpProcessingError) else (message or str(exc or ""))
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    quoted = [line for line in lines if line.startswith(("b'", 'b"', "bytearray("))]
    words = [line.rstrip(":") for line in lines
             if line not in quoted and set(line) - set("^~ ")]
    if fields["error"] == "InvalidURLError" and len(lines) == 1:
        fields["reason"], quoted = "invalid URL", lines  # yarl's refusal: the URL alone
    else:
        fields["reason"] = ": ".join(words)[:200] or "malformed request"
    if quoted:
        fields["near"] = quoted[0][:200]
    return fields


def _client(transport: asyncio.BaseTransport | None) -> str | None:
    return _host(transport.get_extra_info("peername") if transport is not None else None)


class GuardedSite(web.BaseSite):
    """Serves ``runner``'s application on an already listening TCP socket (shared with the
    other server processes), accepting connections itself: at most ``limits.max_connections``
    at a time, TLS handshakes within ``limits.handshake_timeout``.

    ``shared``: other server processes accept on the same socket. Then each takes one
    connection a turn of its event loop (as nginx's workers do, ``multi_accept off``), so that
    a burst of connections (a client's 8 or 32 at once) is spread over the processes, a busy
    one taking fewer; taking every waiting one at once, the first process to wake served them
    all on one core while the others idled. A lone process takes them in batches."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket, *,
                 ssl_context: ssl.SSLContext | None, limits: Limits,
                 handler_args: dict[str, Any], shared: bool = False):
        super().__init__(runner, ssl_context=ssl_context)
        self._sock = sock
        self._batch = 0 if shared else ACCEPT_BATCH
        self._limits = limits
        self._handler_args = handler_args
        self._active = 0  # client connections held now, handshakes included
        self._by_client: dict[str, int] = {}  # connections held, by client address
        self._room = asyncio.Event()
        self._accepting: asyncio.Task | None = None
        self._opening: set[asyncio.Task] = set()
        self._limit_logged = Every(LIMIT_LOG_INTERVAL)
        self._client_limit_logged = Every(LIMIT_LOG_INTERVAL)
        host, port = sock.getsockname()[:2]
        self._name = f"{'https' if ssl_context else 'http'}://{host}:{port}"

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        await super().start()
        self._accepting = asyncio.create_task(self._accept_forever())

    async def stop(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
        for task in list(self._opening):
            task.cancel()
        await asyncio.gather(*self._opening, return_exceptions=True)
        self._sock.close()
        await super().stop()

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._active >= self._limits.max_connections:
                self._at_limit()
                self._room.clear()
                await self._room.wait()
                continue
            try:
                conn, peer = await loop.sock_accept(self._sock)
                self._serve(conn, peer)
                if not self._batch:
                    await asyncio.sleep(0)  # the next one a turn later (asyncio's own
                    continue                # sock_accept would take it at once)
                # Then whatever else is already waiting, without a trip through the loop.
                for _ in range(self._batch):
                    if self._active >= self._limits.max_connections:
                        break
                    conn, peer = self._sock.accept()
                    self._serve(conn, peer)
            except (BlockingIOError, InterruptedError):
                continue  # nothing more waiting (or another server process took it)
            except OSError as exc:  # EMFILE, ENFILE, ENOBUFS: wait for some to close
                emit("connection.accept_failed", logging.WARNING, error=str(exc),
                     connections=self._active)
                await asyncio.sleep(0.5)

    def _serve(self, conn: socket.socket, peer: Any) -> None:
        client = _host(peer) or ""
        held = self._by_client.get(client, 0)
        if self._limits.max_client_connections and held >= self._limits.max_client_connections:
            conn.close()  # at once: a flood from one address must not cost a handshake each
            self._at_client_limit(client)
            return
        self._by_client[client] = held + 1
        conn.setblocking(False)
        self._active += 1
        task = asyncio.create_task(self._open(conn, peer, client))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    def _at_limit(self) -> None:
        if self._limit_logged.due():
            emit("connections.limit", logging.WARNING, connections=self._active,
                 max_connections=self._limits.max_connections,
                 action="not accepting until a connection closes (set "
                        "DTRCACHE_MAX_CONNECTIONS to change the limit)")

    def _at_client_limit(self, client: str) -> None:
        if self._client_limit_logged.due():
            emit("connections.client_limit", logging.WARNING, client=client,
                 connections=self._by_client.get(client, 0),
                 max_client_connections=self._limits.max_client_connections,
                 action="closing its new connections until one closes (set "
                        "DTRCACHE_MAX_CLIENT_CONNECTIONS to change the limit)")

    async def _open(self, conn: socket.socket, peer: Any, client: str) -> None:
        """TLS, then the HTTP handler; the connection's slot is freed exactly once."""
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._active -= 1
                heap.closed()
                left = self._by_client[client] - 1
                if left:
                    self._by_client[client] = left
                else:
                    del self._by_client[client]
                self._room.set()

        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        try:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.connect_accepted_socket(
                lambda: GuardedHandler(server, loop=loop, release=release,
                                       header_timeout=self._limits.header_timeout,
                                       **self._handler_args),
                conn, ssl=self._ssl_context,
                ssl_handshake_timeout=self._limits.handshake_timeout
                if self._ssl_context else None)
        except (OSError, ssl.SSLError) as exc:  # TimeoutError and ConnectionError too
            # A handshake that failed (a client that distrusts us, or does not speak TLS) or
            # did not finish in time: the handler never saw the connection.
            if "taking longer" in str(exc) or isinstance(exc, TimeoutError):
                emit("connection.timeout", client=_host(peer), phase="tls handshake",
                     timeout_s=self._limits.handshake_timeout,
                     reason="the TLS handshake did not finish in time; closed")
            handshakes.refused(peer, self._local(conn), exc)
            conn.close()
            release()
        except BaseException:
            conn.close()
            release()
            raise


    def _local(self, conn: socket.socket) -> Any:
        """The accepted connection's own address (the listener's when it is gone)."""
        try:
            return conn.getsockname()
        except OSError:
            return self._sock.getsockname()


def _host(peer: Any) -> str | None:
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else None
