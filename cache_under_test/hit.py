"""A hit: a stored copy's answer (the request's Range), sent from the file opened and checked
for the request, counted and logged as ``blob.hit``.

While this process serves few hits at once (``FEW_HITS``), a hit that keeps up is read and
written ``STORED_CHUNK`` at a time past its first MiB (``fill.SLOW_AFTER``: a reader that
stalls at once still pins little): each write to the TLS transport is one encryption into
OpenSSL's memory buffer, one copy out and one ``send``, and fewer, larger ones cost up to 8%
less CPU per GiB (``python -m benchmarks.hitcells``, a noisy shared 2-core machine; 512 KiB
did worse, 2 MiB cost more copying than it saved and lowered throughput). The
buffer OpenSSL grows for a connection stays as large as its largest write while the connection
lives, so with many hits at once (where the CPU is shared anyway) the reads stay
``fill.READ_CHUNK``: 32 clients' memory stays what it was (FEW_HITS 8 cost 28 MiB PSS there).
"""

from __future__ import annotations

import contextlib
import time

from aiohttp import web

from .delivery import deliver, ms
from .events import emit
from .fill import READ_CHUNK, backed_up, stream_growing
from .forward import client_address
from .metrics import Metrics
from .ranges import blob_response
from .stored import Hit

STORED_CHUNK = 1024 * 1024
FEW_HITS = 4  # hits in progress in this process at most, for STORED_CHUNK reads
_serving = 0  # hits of this process sending their body now


def chunk_size() -> int:
    """How much a hit that keeps up reads and writes at a time, now (see the module's doc)."""
    return STORED_CHUNK if _serving <= FEW_HITS else READ_CHUNK


async def serve_hit(request: web.Request, hit: Hit, name: str, user: str | None,
                    began: float, metrics: Metrics) -> web.StreamResponse:
    """Answer ``request`` from ``hit`` (authorized by the caller)."""
    size = hit.st.st_size
    answer = blob_response(request, str(hit.digest), size, "HIT", stored=True)
    if isinstance(answer, web.Response):
        return answer  # 416
    response, start, end = answer

    async def send() -> int:
        global _serving
        await response.prepare(request)
        if request.method != "GET" or not size:
            return 0
        _serving += 1
        try:
            return await stream_growing(_Complete(size), hit.fd, start, end, response.write,
                                        backed_up(request), chunk_size)  # FillFailed: truncated
        finally:
            _serving -= 1

    sent = await deliver(request, hit.digest, name, send)
    if sent is None:
        return response
    metrics.hits.inc()
    metrics.proxy_served("blob", size, hit=True)
    metrics.served_bytes.inc(sent)
    # Logged before the final flush: by the time the client has it all, the line is out.
    emit("blob.hit", digest=str(hit.digest), repo=name, bytes=sent, size=size,
         ms=ms(began), user=user, method=request.method, client=client_address(request),
         age_s=round(time.time() - hit.st.st_mtime, 1))
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


class _Complete:
    """A stored blob, as ``stream_growing`` sees it: all written and verified."""

    def __init__(self, size: int):
        self.written, self.done, self.error = size, True, None

    async def wait_change(self) -> None:
        raise AssertionError("a stored blob does not grow")
