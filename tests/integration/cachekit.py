"""A DTR-shaped upstream the tests control, and small probes of a running cache.

``FakeDTR`` serves, over HTTPS from a thread (``ThreadedApp``), what a cache needs of DTR: the
registry API header, blobs from memory, and a JWKS of signing keys the test holds (so a test
can sign tokens with any clock, lifetime or key, and rotate the keys). A blob GET is answered
to a signed-token request, or to Basic ``alice``/``password``; anything else is a 401 with a
challenge, like a private repository. Digests in ``hang`` are never answered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import jwt
import pytest
from aiohttp import web

from cache_under_test.blobtoken import JWKS_PATH, TOKEN_PARAM, SigningKey, jwks
from dtr_cache_check.testkit.threaded_app import ThreadedApp
from dtr_cache_formats.blob_token import ALGORITHM, AUDIENCE

API = {"Docker-Distribution-API-Version": "registry/2.0"}
REPO = "team/app"


@dataclass
class FakeDTR:
    """The upstream's state; ``app()`` serves it."""

    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.generate("key-1")])
    blobs: dict[str, bytes] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    password: str = field(default_factory=lambda: secrets.token_hex(8))
    gets: list[str] = field(default_factory=list)  # digests of the blob GETs answered 200
    url: str = ""

    def add(self, size: int = 64 * 1024) -> tuple[str, bytes]:
        data = os.urandom(size)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest, data

    def sign(self, digest: str, *, repo: str = REPO, key: SigningKey | None = None,
             **claims) -> str:
        """A token for ``digest``; ``claims`` replace or (None) drop the standard ones."""
        now = time.time()
        body = {"sub": "alice", "repo": repo, "digest": digest, "aud": AUDIENCE,
                "iat": int(now), "exp": int(now + 300), "jti": secrets.token_hex(8)}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        key = key or self.keys[0]
        return jwt.encode(body, key.private_key, algorithm=ALGORITHM,
                          headers={"kid": key.key_id})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/", self._base)
        app.router.add_get(JWKS_PATH, self._jwks)
        app.router.add_get("/v2/{name:.+}/blobs/{digest}", self._blob)  # HEAD too
        return app

    async def _base(self, request: web.Request) -> web.Response:
        return web.json_response({}, headers=API)

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(jwks(*self.keys))

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        allowed = (TOKEN_PARAM in request.query
                   or request.headers.get("Authorization") == self.authorization())
        if not allowed:
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                status=401, headers={**API, "WWW-Authenticate": 'Basic realm="fake"'})
        if digest in self.hang:
            await asyncio.Event().wait()
        data = self.blobs.get(digest)
        if data is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404,
                                     headers=API)
        if request.method == "GET":
            self.gets.append(digest)
        response = web.StreamResponse(headers={**API, "Docker-Content-Digest": digest})
        response.content_length = len(data)
        await response.prepare(request)
        for start in range(0, len(data), 256 * 1024):
            await response.write(data[start:start + 256 * 1024])
        await response.write_eof()
        return response

    def authorization(self) -> str:
        """The ``Authorization`` value the fake accepts (alice's Basic credentials)."""
        return "Basic " + base64.b64encode(f"alice:{self.password}".encode()).decode()

    def blob_url(self, cache_url: str, digest: str, token: str | None = None) -> str:
        url = f"{cache_url}/v2/{REPO}/blobs/{digest}"
        return f"{url}?{TOKEN_PARAM}={token}" if token else url


@pytest.fixture
def fake_dtr(pki) -> Iterator[FakeDTR]:
    """A running ``FakeDTR`` (its ``url`` set), stopped at teardown."""
    dtr = FakeDTR()
    server = ThreadedApp(dtr.app(), pki.leaf).start()
    dtr.url = server.url
    yield dtr
    server.stop()


def status_kib(pid: int, key: str = "VmRSS") -> int:
    """A ``/proc/<pid>/status`` figure, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
