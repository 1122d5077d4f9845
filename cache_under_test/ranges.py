"""A blob answer's status and headers for the request's Range (one range, or the whole)."""

from __future__ import annotations

import re

from aiohttp import web

from .errors import API_VERSION, API_VERSION_HEADER, oci_error

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class StoredResponse(web.StreamResponse):
    """The answer of a stored blob, whose body is at hand: ``prepare`` keeps its head for the
    first body write (or ``write_eof``), so head and first bytes are one TLS flush and one
    send, not two (a hit's fixed cost). aiohttp's StreamResponse sends its head at once."""

    # aiohttp's switch (3.12+; Response sets it so too): buffer the head until the body.
    _send_headers_immediately = False


def blob_response(request: web.Request, digest: str, size: int, x_cache: str,
                  stored: bool = False) -> tuple[web.StreamResponse, int, int] | web.Response:
    """(response to prepare, first byte, last byte), or a 416 when the range is past the end;
    ``stored``: the body is a stored copy (``StoredResponse``), not a transfer in progress.

    ``If-Range`` (RFC 9110 13.1.5) keeps the Range only when it is the blob's strong ETag;
    any other validator (a weak or other ETag, a date: no Last-Modified is sent) gets it all."""
    validator = request.headers.get("If-Range")
    span = None if validator is not None and validator.strip() != f'"{digest}"' else \
        parse_range(request.headers.get("Range"), size)
    if span == "unsatisfiable":
        return oci_error(416, "RANGE_INVALID", "requested range not satisfiable",
                         headers={"Content-Range": f"bytes */{size}"})
    start, end = span or (0, size - 1)
    kind = StoredResponse if stored else web.StreamResponse
    response = kind(status=206 if span else 200, headers={
        "Content-Type": "application/octet-stream",
        "Docker-Content-Digest": digest,
        API_VERSION_HEADER: API_VERSION,
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
        "X-Cache": x_cache,
    })
    if span:
        response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    response.content_length = end - start + 1
    return response, start, end


def parse_range(header: str | None, size: int):
    """(start, end) inclusive for a single ``bytes=`` range, None to send it all."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # not a form we serve partially: RFC 9110 lets us send the whole body
    first, last = match.groups()
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end

