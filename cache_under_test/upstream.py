"""The cache's upstreams (DTR or the next cache): round-robin, failover, registry check.

An upstream that cannot be reached, fails TLS, answers 5xx or does not answer as a registry is
logged as ``upstream.error`` (with the failure class and address) and the next one is tried.
Any other answer, 4xx included, is the upstream's word and goes back to the caller.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import aiohttp

from .errors import API_VERSION_HEADER
from .events import emit
from .tls import classify

MAX_REDIRECTS = 5
# Upstream answer headers a client needs to see (auth challenges, digests, paging).
RELAYED_HEADERS = ("Content-Type", "Content-Length", "Docker-Content-Digest", "ETag",
                   "WWW-Authenticate", "Link", "Docker-Distribution-API-Version")


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


@dataclass
class UpstreamResponse:
    """A usable upstream answer; the caller must ``release()`` it."""

    upstream: str
    response: aiohttp.ClientResponse

    def release(self) -> None:
        self.response.release()


class UpstreamPool:
    """Round-robin over ``urls`` with one shared HTTP client."""

    def __init__(self, urls: list[str], ssl_context, metrics=None, *,
                 connect_timeout: float = 10.0, read_timeout: float = 60.0):
        self.urls = list(urls)
        self._next = itertools.cycle(range(len(self.urls)))
        self._ssl = ssl_context
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout,
                                              sock_read=read_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self._ssl, limit=256, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, auto_decompress=False,
            headers={"User-Agent": "dtr-cache-under-test"},
        )

    async def close(self) -> None:
        if self._session:
            await self._session.close()

    def order(self) -> list[str]:
        """This request's upstream order: the next in turn first, the others as failover."""
        start = next(self._next)
        return self.urls[start:] + self.urls[:start]

    async def request(self, method: str, path_qs: str, headers: Mapping[str, str] | None = None,
                      *, registry_api: bool = True) -> UpstreamResponse:
        """Send ``method path_qs`` to the upstreams in turn until one gives a usable answer.

        ``registry_api``: the answer must carry the registry API version header.
        Redirects are followed (a registry may send blobs to its storage), dropping
        ``Authorization`` when the host changes.
        """
        assert self._session is not None, "start() first"
        failures = []
        for upstream in self.order():
            try:
                response = await self._send(method, upstream + path_qs, dict(headers or {}),
                                            registry_api)
            except _Unusable as exc:
                failures.append(self._fail(upstream, exc.kind, exc.detail))
                continue
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failures.append(self._fail(upstream, classify(exc), str(exc)[:300]))
                continue
            return UpstreamResponse(upstream, response)
        raise AllUpstreamsFailed(failures)

    async def _send(self, method: str, url: str, headers: dict, registry_api: bool):
        origin = urlsplit(url).netloc
        for hop in range(MAX_REDIRECTS + 1):
            response = await self._session.request(method, url, headers=headers,
                                                   allow_redirects=False)
            if hop == 0:
                if response.status >= 500:
                    response.release()
                    raise _Unusable(f"http {response.status}", response.reason or "")
                if registry_api and API_VERSION_HEADER not in response.headers:
                    response.release()
                    raise _Unusable("not a registry", f"no {API_VERSION_HEADER} header on "
                                    f"{method} {urlsplit(url).path} (status {response.status})")
            location = response.headers.get("Location")
            if response.status not in (301, 302, 303, 307, 308) or not location:
                return response
            response.release()
            url = urljoin(url, location)
            if urlsplit(url).netloc != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise _Unusable("redirect loop", f"more than {MAX_REDIRECTS} redirects")

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
