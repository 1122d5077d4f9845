"""The cache's upstreams (DTR or the next cache): round-robin, failover, registry check.

An upstream that cannot be reached, fails TLS, answers 5xx or does not answer as a registry is
logged as ``upstream.error`` (with the failure class and address) and the next one is tried.
Any other answer, 4xx included, is the upstream's word and goes back to the caller.

Redirects (a registry may send blobs to its storage, DTR sends a user's blob GET to the user's
cache) are followed by hand, hop by hop:

- A hop that fails (unreachable, TLS, 5xx, or any 4xx: the upstream's word was the redirect, so
  a refusal further on is a broken link) fails over to the next upstream like a failed upstream.
- ``Authorization`` goes only to the upstream's own origin: it is dropped for good as soon as a
  hop changes scheme, host or effective port (``same_origin``; default ports by scheme). A hop
  from https to http is never followed at all (``insecure redirect``): credentials and blob
  tokens would cross the network in clear.
- A redirect to this cache itself (DTR sends a token-less pull of a user pointed at this cache
  back here, with a signed token) is never followed: the cache would join its own fill and wait
  on itself. Its token is verified locally (``token_verifier``, set by ``auth.Authorizer``) and
  the blob is fetched from the same upstream with it, as a cache's signed fill request.

Transfers are bounded: ``fetch_timeout`` (the whole request, headers and body) and ``min_rate``
(bytes/s, checked over every ``RATE_WINDOW`` seconds of the body). A transfer that falls behind
is broken off with ``UpstreamTooSlow`` and logged as ``upstream.error`` kind ``too slow``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp

from .blobtoken import TOKEN_PARAM, TokenError
from .errors import API_VERSION_HEADER
from .events import emit
from .origins import OwnOrigins, origin, safe_url, same_origin
from .tls import classify

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
# The body of a transfer must bring at least min_rate x RATE_WINDOW bytes in every window.
RATE_WINDOW = 10.0
# Upstream answer headers a client needs to see (auth challenges, digests, paging).
RELAYED_HEADERS = ("Content-Type", "Content-Length", "Docker-Content-Digest", "ETag",
                   "WWW-Authenticate", "Link", "Docker-Distribution-API-Version")
_BLOB_PATH = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[a-z0-9]+(?:[+._-][a-z0-9]+)*"
                        r":[a-zA-Z0-9=_-]+)$")

TokenVerifier = Callable[[str, str, str], Awaitable[object]]


def relay_headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    """The headers of an upstream answer that are passed on to the client."""
    return {h: response.headers[h] for h in RELAYED_HEADERS if h in response.headers}


@dataclass
class UpstreamFailure:
    """One upstream's failure, as logged."""

    upstream: str
    kind: str
    detail: str


@dataclass
class AllUpstreamsFailed(Exception):
    """No upstream gave a usable answer."""

    failures: list[UpstreamFailure] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{f.upstream}: {f.kind} ({f.detail})" for f in self.failures)


class UpstreamsBusy(AllUpstreamsFailed):
    """Every upstream has ``max_fills`` fills in flight: come back later."""


class UpstreamTooSlow(aiohttp.ClientPayloadError):
    """The upstream's body fell behind ``min_rate`` or past ``fetch_timeout``."""


@dataclass
class UpstreamResponse:
    """A usable upstream answer; the caller must ``release()`` it."""

    upstream: str
    response: aiohttp.ClientResponse
    on_release: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def release(self) -> None:
        self.response.release()
        callbacks, self.on_release = self.on_release, []
        for callback in callbacks:
            callback()


class UpstreamPool:
    """Round-robin over ``urls`` with one shared HTTP client.

    ``own_urls``: the URLs that reach this cache (``http.host``, the listening address), so a
    redirect back here is recognised. ``min_rate`` (bytes/s) and ``fetch_timeout`` (s) bound a
    transfer (None: unbounded).
    """

    def __init__(self, urls: list[str], ssl_context, metrics=None, *,
                 connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 own_urls: Iterable[str] | None = None, min_rate: float | None = None,
                 fetch_timeout: float | None = None, max_fills: int = 64):
        self.urls = list(urls)
        self.max_fills = max_fills
        self._fills = dict.fromkeys(self.urls, 0)  # blob fetches in flight, by upstream
        self._next = itertools.cycle(range(len(self.urls)))
        self._ssl = ssl_context
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None
        self.own = OwnOrigins(own_urls or ())
        self.min_rate = min_rate
        self.fetch_timeout = fetch_timeout
        # Set by auth.Authorizer: verifies a blob token (token, repository, digest) or raises.
        self.token_verifier: TokenVerifier | None = None
        self._watches: set[asyncio.Task] = set()

    async def start(self) -> None:
        # No pool-wide limit: fills are bounded per upstream (max_fills), and nothing else (a
        # pull-through HEAD, a manifest, the keys) may queue behind fills on a hung upstream.
        connector = aiohttp.TCPConnector(ssl=self._ssl, limit=0, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, auto_decompress=False,
            headers={"User-Agent": "dtr-cache-under-test"},
        )

    async def close(self) -> None:
        for task in list(self._watches):
            task.cancel()
        if self._session:
            await self._session.close()

    def order(self) -> list[str]:
        """This request's upstream order: the next in turn first, the others as failover."""
        start = next(self._next)
        return self.urls[start:] + self.urls[:start]

    def has_room(self) -> bool:
        """Some upstream can take one more fill."""
        return any(n < self.max_fills for n in self._fills.values())

    async def request(self, method: str, path_qs: str, headers: Mapping[str, str] | None = None,
                      *, registry_api: bool = True, fill: bool = False) -> UpstreamResponse:
        """Send ``method path_qs`` to the upstreams in turn until one gives a usable answer.

        ``registry_api``: the answer must carry the registry API version header.
        ``fill``: a blob fetch, counted against its upstream's ``max_fills`` until released;
        an upstream at its bound is passed over (``UpstreamsBusy`` when all are).
        Redirects are followed as the module docstring says.
        """
        assert self._session is not None, "start() first"
        return await self._request(method, path_qs, dict(headers or {}), registry_api, fill)

    async def _request(self, method: str, path_qs: str, headers: dict,
                       registry_api: bool, fill: bool) -> UpstreamResponse:
        failures = []
        busy = 0
        for upstream in self.order():
            if fill and self._fills[upstream] >= self.max_fills:
                busy += 1
                continue
            answer = await self._try(upstream, method, path_qs, headers, registry_api, fill,
                                     failures)
            if answer is not None:
                return answer
        if busy and not failures:
            raise UpstreamsBusy([UpstreamFailure("every upstream", "busy", f"{self.max_fills} "
                                                 "fills in flight (DTRCACHE_MAX_FILLS)")])
        raise AllUpstreamsFailed(failures)

    async def _try(self, upstream: str, method: str, path_qs: str, headers: dict,
                   registry_api: bool, fill: bool,
                   failures: list[UpstreamFailure]) -> UpstreamResponse | None:
        """One upstream's usable answer, or None (its failure added to ``failures``)."""
        began = time.monotonic()
        if fill:
            self._fills[upstream] += 1
        answer = None
        try:
            try:
                async with asyncio.timeout(self.fetch_timeout) as deadline:
                    response = await self._send(method, upstream, path_qs, dict(headers),
                                                registry_api)
            except _Unusable as exc:
                failures.append(self._fail(upstream, exc.kind, exc.detail))
                return None
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                if self.fetch_timeout is not None and deadline.expired():
                    failures.append(self._fail(
                        upstream, "too slow", f"no answer to {method} {safe_url(path_qs)} within "
                        f"fetchtimeout ({self.fetch_timeout:g} s)"))
                else:
                    failures.append(self._fail(upstream, classify(exc), str(exc)[:300]))
                return None
            answer = UpstreamResponse(upstream, response)
            self._watch(answer, method, path_qs, began)
            return answer
        finally:
            if fill and answer is None:
                self._fills[upstream] -= 1
            elif fill:
                answer.on_release.append(lambda: self._end_fill(upstream))

    def _end_fill(self, upstream: str) -> None:
        self._fills[upstream] -= 1

    async def _send(self, method: str, upstream: str, path_qs: str, headers: dict,
                    registry_api: bool) -> aiohttp.ClientResponse:
        url = upstream + path_qs
        check_registry = registry_api
        for hop in range(MAX_REDIRECTS + 1):
            response = await self._session.request(method, url, headers=headers,
                                                   allow_redirects=False)
            where = "" if hop == 0 else f" (redirect hop {hop}: {safe_url(url)})"
            if response.status >= 500 or (hop > 0 and response.status >= 400):
                response.release()
                raise _Unusable(f"http {response.status}",
                                f"{response.reason or ''}{where}".strip())
            if check_registry and API_VERSION_HEADER not in response.headers:
                response.release()
                raise _Unusable("not a registry", f"no {API_VERSION_HEADER} header on "
                                f"{method} {urlsplit(url).path} (status {response.status})"
                                f"{where}")
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or not location:
                return response
            response.release()
            target = urljoin(url, location)
            try:
                origin(target)
            except ValueError:
                raise _Unusable("bad redirect", f"{method} {urlsplit(url).path} redirected "
                                f"to {safe_url(target)[:200]}") from None
            if urlsplit(url).scheme == "https" and urlsplit(target).scheme == "http":
                raise _Unusable("insecure redirect", f"{method} {urlsplit(url).path} "
                                f"redirected from https to {safe_url(target)}: not followed")
            if self.own.reaches(target):
                target = await self._own_redirect(upstream, target)
                headers = _without_authorization(headers)
                check_registry = registry_api  # the upstream again
            else:
                check_registry = False  # e.g. the registry's storage
                if not same_origin(upstream, target):
                    headers = _without_authorization(headers)
            url = target
        raise _Unusable("redirect loop", f"more than {MAX_REDIRECTS} redirects")

    # -- a redirect back to this cache ---------------------------------------------------

    async def _own_redirect(self, upstream: str, target: str) -> str:
        """The upstream URL that fetches what ``target`` (this cache) was asked for, with its
        signed token, once the token verified here; _Unusable otherwise."""
        parts = urlsplit(target)
        match = _BLOB_PATH.match(parts.path)
        tokens = parse_qs(parts.query).get(TOKEN_PARAM, [])
        if match is None or len(tokens) != 1:
            raise _Unusable("redirect to this cache", f"the upstream redirected "
                            f"{safe_url(target)} back to this cache without a signed blob token")
        if self.token_verifier is None:
            raise _Unusable("redirect to this cache", "cannot verify the redirect's token")
        try:
            await self.token_verifier(tokens[0], match["name"], match["digest"])
        except TokenError as exc:
            raise _Unusable("redirect to this cache", f"the redirect's token does not "
                            f"verify: {exc}") from None
        emit("upstream.own_redirect", upstream=upstream, repo=match["name"],
             digest=match["digest"], action="fetching from the upstream with its token")
        return f"{upstream}{parts.path}?{parts.query}"

    # -- slow transfers ------------------------------------------------------------------

    def _watch(self, answer: UpstreamResponse, method: str, path_qs: str,
               began: float) -> None:
        if method == "HEAD" or (self.min_rate is None and self.fetch_timeout is None):
            return
        if answer.response.content.is_eof():
            return
        task = asyncio.create_task(self._watchdog(answer, method, path_qs, began))
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)
        answer.on_release.append(task.cancel)

    async def _watchdog(self, answer: UpstreamResponse, method: str, path_qs: str,
                        began: float) -> None:
        content = answer.response.content
        deadline = began + self.fetch_timeout if self.fetch_timeout is not None else None
        window_end = time.monotonic() + RATE_WINDOW if self.min_rate else None
        window_start_bytes = 0
        while True:
            wake = min(t for t in (deadline, window_end, float("inf")) if t is not None)
            if wake == float("inf"):
                return
            await asyncio.sleep(max(0.0, wake - time.monotonic()))
            if content.is_eof() or answer.response.closed:
                return
            now = time.monotonic()
            got = content.total_bytes
            if deadline is not None and now >= deadline:
                self._too_slow(answer, f"{method} {safe_url(path_qs)} not complete within "
                               f"fetchtimeout ({self.fetch_timeout:g} s): {got} bytes received")
                return
            if window_end is not None and now >= window_end:
                rate = (got - window_start_bytes) / RATE_WINDOW
                if rate < self.min_rate:
                    self._too_slow(answer, f"{method} {safe_url(path_qs)}: {rate:.0f} bytes/s over "
                                   f"the last {RATE_WINDOW:g} s, below minrate "
                                   f"({self.min_rate:g} bytes/s); {got} bytes received")
                    return
                window_start_bytes, window_end = got, now + RATE_WINDOW

    def _too_slow(self, answer: UpstreamResponse, detail: str) -> None:
        self._fail(answer.upstream, "too slow", detail)
        answer.response.content.set_exception(UpstreamTooSlow(f"upstream too slow: {detail}"))
        answer.response.close()

    def _fail(self, upstream: str, kind: str, detail: str) -> UpstreamFailure:
        emit("upstream.error", logging.WARNING, upstream=upstream, kind=kind, detail=detail)
        if self._metrics:
            self._metrics.errors.labels(kind=f"upstream {kind}").inc()
        return UpstreamFailure(upstream, kind, detail)


class _Unusable(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


def _without_authorization(headers: dict) -> dict:
    return {k: v for k, v in headers.items() if k.lower() != "authorization"}
