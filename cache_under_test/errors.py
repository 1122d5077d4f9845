"""Registry-style (OCI distribution) error responses, breaking off a body that failed, and
letting go of a client that left."""

from __future__ import annotations

import json
from typing import NoReturn

from aiohttp import web

from dtr_cache_formats.registry_api import API_VERSION, API_VERSION_HEADER

from .events import emit


def oci_error(
    status: int, code: str, message: str, detail: object = None, headers: dict | None = None
) -> web.Response:
    """An error response with the OCI body ``{"errors": [{"code", "message", "detail"}]}``."""
    body = {"errors": [{"code": code, "message": message, "detail": detail}]}
    all_headers = {API_VERSION_HEADER: API_VERSION}
    all_headers.update(headers or {})
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers=all_headers,
    )


def break_off(request: web.Request, reason: Exception, **fields: object) -> NoReturn:
    """End a blob body that cannot be completed (its bytes did not verify, or vanished):
    log ``blob.broken`` and close the connection mid-body, so the client sees a broken
    transfer and never a complete, wrong blob."""
    emit("blob.broken", error=str(reason)[:300], **fields)
    if request.transport is not None:
        request.transport.abort()
    raise web.HTTPInternalServerError()


def client_gone(request: web.Request, **fields: object) -> None:
    """Log ``blob.client_gone`` and drop the connection at once: a TLS close would wait for a
    peer that is gone (uvloop allows its shutdown 30 s), holding the connection's buffers."""
    emit("blob.client_gone", **fields)
    if request.transport is not None:
        request.transport.abort()
