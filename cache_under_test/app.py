"""The cache server: routes, start-up and shutdown, the TTL sweeper.

What the public listener tells anyone who asks: ``/health`` answers the status alone (200
``{"status": "ok"}``, or 503 naming the first problem); there is no ``/metrics``. The detail
(upstream URLs, signing key ids, storage numbers, fault modes) and the Prometheus metrics are
served where distribution serves its debug server, on ``http.debug.addr`` (plain HTTP: bind it
to a private address such as ``localhost:5001``): ``/metrics`` (``http.debug.prometheus.path``),
``/health`` and ``/debug/health`` (distribution's name) with the detailed report. Without a debug
address, ``DTRCACHE_PUBLIC_DEBUG=1`` opts in to the former behaviour: the detailed ``/health``
and ``/metrics`` on the public listener, without authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from .auth import Authorizer
from .blobs import BlobHandler
from .blobtoken import JWKS_PATH
from .config import CacheConfig
from .errors import API_VERSION, API_VERSION_HEADER, oci_error
from .events import emit
from .fill import FillRegistry
from .forward import MissForwarder
from .heap import trim_forever
from .metrics import Metrics
from .names import InvalidDigest, InvalidName, parse_name, parse_reference
from .storage import BlobStore
from .tls import client_context
from .upstream import AllUpstreamsFailed, UpstreamPool, relay_headers
from .verified import VerifiedBlobs

# Request headers a manifest or tag request carries on to the upstream.
FORWARDED_HEADERS = ("Authorization", "Accept", "If-None-Match")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
FILL_SHUTDOWN_GRACE = 3.0  # seconds running fills get at shutdown before they are cancelled
HEALTH_FETCHER_TIMEOUT = 5.0  # seconds a server process waits for the fetcher's /health
MAX_RELAYED_ERROR = 64 * 1024  # an upstream's error answer up to this size is relayed whole


class Cache:
    """One cache process built from a validated config.

    ``fetcher``: in a server process (see ``processes``), the fetcher's Unix socket: blob
    misses are forwarded there, and storage upkeep (crash leftovers, the TTL sweep) is its job.
    ``private``: with several processes, the run's private directory (what the run verified
    of the stored blobs is shared there: see ``verified``).
    """

    def __init__(self, config: CacheConfig, fetcher: str | None = None,
                 private: Path | None = None):
        self.config = config
        self.fetcher_socket = fetcher  # /health asks the fetcher how its writes went
        self.metrics = Metrics()
        self.forwarder = MissForwarder(fetcher, self.metrics) if fetcher else None
        ttl = None if "ignore-ttl" in config.test_faults else config.blobttl
        self.store = BlobStore(config.root, ttl,
                               VerifiedBlobs(private / "verified" if private else None))
        self.pool = UpstreamPool(config.upstreams, client_context(config.cas), self.metrics,
                                 own_urls=config.own_urls, min_rate=config.minrate,
                                 fetch_timeout=config.fetchtimeout,
                                 max_fills=config.limits.max_fills)
        self.fills = FillRegistry(self.store, self.metrics,
                                  keep="never-store" not in config.test_faults,
                                  single_flight="no-single-flight" not in config.test_faults)
        self.auth = Authorizer(self.pool, "ignore-expiry" in config.test_faults,
                               leeway=config.limits.clock_leeway,
                               max_lifetime=config.limits.max_token_lifetime,
                               refresh=config.limits.keys_refresh)
        self.blobs = BlobHandler(self.store, self.pool, self.fills, self.auth, self.metrics,
                                 config.test_faults, self.forwarder)
        self._sweeper: asyncio.Task | None = None
        self._trimmer: asyncio.Task | None = None

    def application(self, *, detail: bool = False) -> web.Application:
        """The cache's routes; ``detail``: also ``/metrics``, and the detailed ``/health``
        (the fetcher's private socket, or the public listener with ``DTRCACHE_PUBLIC_DEBUG``)."""
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get("/v2/", self.base)
        app.router.add_get("/v2/_catalog", self.catalog)
        app.router.add_get("/v2/{name:.+}/blobs/{digest}", self.blobs.handle)
        app.router.add_get("/v2/{name:.+}/manifests/{reference}", self.manifest)
        app.router.add_get("/v2/{name:.+}/tags/list", self.tags)
        app.router.add_route("*", "/v2/{tail:.*}", self.other)
        app.router.add_get(JWKS_PATH, self.jwks)
        if detail:
            app.router.add_get("/metrics", self.metrics_page)
            app.router.add_get("/health", self.health)
        else:
            app.router.add_get("/health", self.health_status)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        app.on_startup.append(self._start)
        # Fills end first at shutdown (after a grace): their clients then get their answer
        # (a broken transfer or an error) instead of waiting on a hung upstream until killed.
        app.on_shutdown.append(self._end_fills)
        app.on_cleanup.append(self._stop)
        return app

    def debug_application(self) -> web.Application:
        """The debug listener's routes (``http.debug.addr``): the detailed health report and
        the metrics. It shares this cache's state: start it beside ``application()``'s app."""
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/health", self.health)
        app.router.add_get("/debug/health", self.health)
        debug = self.config.debug
        if debug is None or debug.prometheus:
            app.router.add_get(debug.metrics_path if debug else "/metrics", self.metrics_page)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    async def _start(self, app: web.Application) -> None:
        if self.forwarder is None:
            removed = self.store.prepare()
            if removed:
                emit("storage.cleaned", leftovers=removed,
                     reason="partial downloads from a crash")
        else:
            await self.forwarder.start()
        await self.pool.start()
        await self.auth.start()
        if self.store.ttl and self.forwarder is None:
            self._sweeper = asyncio.create_task(self._sweep_forever())
        self._trimmer = asyncio.create_task(trim_forever())
        # What start-up made lives as long as the process: out of the cycle collector's way,
        # so that heap.trim_forever's collections look at connections' objects only.
        gc.freeze()

    async def _end_fills(self, app: web.Application) -> None:
        await self.fills.drain(grace=FILL_SHUTDOWN_GRACE)

    async def _stop(self, app: web.Application) -> None:
        for task in (self._sweeper, self._trimmer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.fills.drain()
        await self.auth.stop()
        await self.pool.close()
        if self.forwarder is not None:
            await self.forwarder.close()

    async def _sweep_forever(self) -> None:
        interval = max(0.5, min(self.store.ttl / 4, 60.0))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            try:
                expired = await loop.run_in_executor(None, self.store.expired)
                for blob in expired:
                    if self.fills.get(blob.digest) is None and self.store.remove(blob.digest):
                        self.metrics.expired.inc()
                        emit("blob.expired", digest=str(blob.digest), bytes=blob.size,
                             age_s=round(time.time() - blob.fetched_at, 1), reason="ttl sweep")
            except OSError as exc:
                emit("storage.error", logging.ERROR, error=str(exc))

    async def base(self, request: web.Request) -> web.Response:
        return web.json_response({}, headers={API_VERSION_HEADER: API_VERSION})

    async def catalog(self, request: web.Request) -> web.Response:
        return web.json_response({"repositories": []}, headers={API_VERSION_HEADER: API_VERSION})

    async def manifest(self, request: web.Request) -> web.StreamResponse:
        try:
            name = parse_name(request.match_info["name"])
            reference = parse_reference(request.match_info["reference"])
        except InvalidName as exc:
            code = "TAG_INVALID" if "tag" in str(exc) else "NAME_INVALID"
            return oci_error(400, code, str(exc))
        except InvalidDigest as exc:
            return oci_error(400, "DIGEST_INVALID", str(exc))
        return await self._pass_through(request, f"/v2/{name}/manifests/{reference}",
                                        counted="manifest")

    async def tags(self, request: web.Request) -> web.StreamResponse:
        try:
            name = parse_name(request.match_info["name"])
        except InvalidName as exc:
            return oci_error(400, "NAME_INVALID", str(exc))
        query = f"?{request.query_string}" if request.query_string else ""
        return await self._pass_through(request, f"/v2/{name}/tags/list{query}")

    async def _pass_through(self, request: web.Request, path: str,
                            counted: str | None = None) -> web.StreamResponse:
        """Ask the upstream (DTR stays the source of truth for tags) and stream its answer;
        ``counted``: the type under which distribution's proxy counters count it (a manifest
        from the upstream is a miss, as in distribution's proxy)."""
        headers = {h: ", ".join(request.headers.getall(h)) for h in FORWARDED_HEADERS
                   if h in request.headers}
        try:
            answer = await self.pool.request(request.method, path, headers)
        except AllUpstreamsFailed as exc:
            return oci_error(502, "UNAVAILABLE", "no upstream answered", str(exc))
        try:
            relayed = relay_headers(answer.response)
            length = relayed.get("Content-Length")
            if answer.response.status >= 400 and request.method == "GET" and length \
                    and length.isdigit() and int(length) <= MAX_RELAYED_ERROR:
                # A small error answer relayed whole: its OCI errors are then what this
                # answer's log line says (distlog), as distribution's names them.
                body = await answer.response.content.read()
                del relayed["Content-Length"]
                return web.Response(status=answer.response.status, body=body, headers=relayed)
            response = web.StreamResponse(status=answer.response.status, headers=relayed)
            if length and length.isdigit():
                response.content_length = int(length)
            await response.prepare(request)
            relayed_bytes = 0
            if request.method == "GET":
                async for chunk in answer.response.content.iter_any():
                    await response.write(chunk)
                    relayed_bytes += len(chunk)
            await response.write_eof()
            if counted and request.method == "GET" and answer.response.status == 200:
                self.metrics.proxy_pulled(counted, relayed_bytes)
                self.metrics.proxy_served(counted, relayed_bytes, hit=False)
            return response
        finally:
            answer.release()

    async def other(self, request: web.Request) -> web.Response:
        if request.method in WRITE_METHODS:
            return oci_error(405, "UNSUPPORTED", "this is a read-only cache: push and delete "
                             "go to DTR", headers={"Allow": "GET, HEAD"})
        return oci_error(404, "NOT_FOUND", "no such registry endpoint")

    async def not_found(self, request: web.Request) -> web.Response:
        return oci_error(404, "NOT_FOUND", "not found")

    async def jwks(self, request: web.Request) -> web.Response:
        if self.auth.document is None:
            await self.auth.refresh_keys()
        if self.auth.document is None:
            return oci_error(503, "UNAVAILABLE", "the upstream's signing keys are not available")
        return web.json_response(self.auth.document)

    async def metrics_page(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = self.metrics.content_type
        return response

    async def health(self, request: web.Request) -> web.Response:
        """200 ``{"status": "ok", ...}``, or 503 with ``status`` naming the first problem and
        ``problems`` saying each one: "storage unavailable" (no uploads directory), "storage
        low on free space" (below min(100 MiB, 5% of the file system): see ``storage``),
        "storage write failed" (the last write to storage failed: errno and time in
        ``storage.last_write_error``; it clears when a blob is next written whole, or after
        ``storage.WRITE_ERROR_HOLD``), "fetcher unavailable". ``storage`` has the numbers.

        Blobs are written by the fetcher process: a server process takes the storage part of
        its answer from the fetcher's own ``/health`` (over the private Unix socket)."""
        report = await self._storage_health()
        body = {"status": report["status"], "problems": report["problems"],
                "upstreams": self.config.upstreams, "keys": sorted(self.auth.keys.keys),
                "fills_in_flight": int(self.metrics.value("dtrcache_fills_in_flight")),
                "test_faults": sorted(self.config.test_faults), "storage": report["storage"]}
        return web.Response(status=503 if report["problems"] else 200, text=json.dumps(body),
                            content_type="application/json")

    async def health_status(self, request: web.Request) -> web.Response:
        """The public ``/health``: the status alone (200 ``ok``, or 503 and the first problem's
        name); what it is made of is on the debug listener."""
        report = await self._storage_health()
        return web.json_response({"status": report["status"]},
                                 status=503 if report["problems"] else 200)

    async def _storage_health(self) -> dict:
        if self.fetcher_socket is None:  # we are the process that writes blobs
            return self.store.health()
        try:
            async with aiohttp.ClientSession(
                    connector=aiohttp.UnixConnector(path=self.fetcher_socket),
                    timeout=aiohttp.ClientTimeout(total=HEALTH_FETCHER_TIMEOUT)) as session, \
                    session.get("http://fetcher/health") as answer:
                fetched = await answer.json()
            return {"status": str(fetched["status"]), "problems": list(fetched["problems"]),
                    "storage": dict(fetched["storage"])}
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            report = self.store.health()  # free space at least, seen from here
            report["problems"].insert(0, "fetcher unavailable: the fetcher process did not "
                                      f"answer /health ({str(exc) or type(exc).__name__})")
            report["status"] = "fetcher unavailable"
            return report



