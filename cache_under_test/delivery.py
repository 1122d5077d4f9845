"""A blob body on its way to a client: a client that left is let go, a failed transfer is
broken off (never completed, so never trusted)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from .errors import break_off, client_gone
from .fill import FillFailed
from .forward import client_address
from .names import Digest


async def deliver(request: web.Request, digest: Digest, name: str,
                  send: Callable[[], Awaitable[int]]) -> int | None:
    """The bytes ``send()`` sent to the client; None when the client left (logged, dropped).
    A transfer that failed (its bytes did not verify, or stopped coming) is broken off."""
    try:
        return await send()
    except ConnectionError:  # before ClientError: aiohttp's reset is both
        client_gone(request, digest=str(digest), repo=name, client=client_address(request))
        return None
    except (FillFailed, aiohttp.ClientError, TimeoutError) as exc:
        break_off(request, exc, digest=str(digest), repo=name, client=client_address(request))


def ms(began: float) -> float:
    """Milliseconds since ``began`` (``time.monotonic()``), as the events log them."""
    return round((time.monotonic() - began) * 1000, 1)
