"""Registry-style (OCI distribution) error responses."""

from __future__ import annotations

import json

from aiohttp import web

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"


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
