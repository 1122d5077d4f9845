"""A blob sent from the upstream to one client without a copy kept: when storage fails.

A full disk (or any failed write) must not fail the pull: as nginx finishes a response it
cannot cache, the client's transfer is completed from a request of its own to the upstream
(its own credentials), verified as a fill is (the last byte is held back until the whole body
hashed to the digest), and nothing of it is written to storage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import aiohttp

from .fill import FillFailed
from .names import Digest
from .upstream import AllUpstreamsFailed, UpstreamResponse


async def relay_verified(response: aiohttp.ClientResponse, digest: Digest, size: int,
                         start: int, end: int,
                         write: Callable[[bytes], Awaitable[None]]) -> int:
    """Send bytes ``start..end`` (inclusive) of the upstream's body as they come, hashing the
    whole body; byte ``end`` only once the body is ``size`` bytes of ``digest``. Returns the
    bytes sent; FillFailed when the body is not the blob (the caller breaks the transfer)."""
    hasher = hashlib.new(digest.algorithm)
    position = 0
    held = b""
    sent = 0
    async for chunk in response.content.iter_any():
        if position + len(chunk) > size:
            raise FillFailed("upstream sent more bytes than its Content-Length")
        hasher.update(chunk)
        first, last = max(start, position), min(end, position + len(chunk) - 1)
        if first <= last:
            piece = chunk[first - position:last - position + 1]
            if last == end:
                piece, held = piece[:-1], piece[-1:]
            if piece:
                await write(piece)
                sent += len(piece)
        position += len(chunk)
    if position != size or hasher.hexdigest() != digest.hex:
        raise FillFailed(f"upstream body of {position} bytes is not {digest} ({size} bytes)")
    if held:
        await write(held)
        sent += len(held)
    return sent


async def finish_uncached(fetch: Callable[[], Awaitable[UpstreamResponse]], digest: Digest,
                          size: int, start: int, end: int,
                          write: Callable[[bytes], Awaitable[None]]) -> int:
    """Bytes ``start..end`` of the blob from a new upstream request, verified, no copy kept:
    the rest of a transfer whose fill could not be stored. FillFailed if that fails."""
    try:
        answer = await fetch()
    except AllUpstreamsFailed as exc:
        raise FillFailed(f"cannot finish from the upstream: {exc}") from None
    try:
        if answer.response.status != 200:
            raise FillFailed(f"cannot finish from the upstream: it answered "
                             f"{answer.response.status}")
        return await relay_verified(answer.response, digest, size, start, end, write)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FillFailed(f"the upstream broke off: {exc}") from None
    finally:
        answer.release()
