"""A hit: a stored copy's answer (the request's Range), sent from the file opened and checked
for the request, counted and logged as ``blob.hit``."""

from __future__ import annotations

import contextlib
import time

from aiohttp import web

from .delivery import deliver, ms
from .events import emit
from .fill import backed_up, stream_growing
from .forward import client_address
from .metrics import Metrics
from .ranges import blob_response
from .stored import Hit


async def serve_hit(request: web.Request, hit: Hit, name: str, user: str | None,
                    began: float, metrics: Metrics) -> web.StreamResponse:
    """Answer ``request`` from ``hit`` (authorized by the caller)."""
    size = hit.st.st_size
    answer = blob_response(request, str(hit.digest), size, "HIT", stored=True)
    if isinstance(answer, web.Response):
        return answer  # 416
    response, start, end = answer

    async def send() -> int:
        await response.prepare(request)
        if request.method != "GET" or not size:
            return 0
        return await stream_growing(_Complete(size), hit.fd, start, end, response.write,
                                    backed_up(request))  # FillFailed: truncated under us

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
