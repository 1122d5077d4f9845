"""Nothing one client's credentials (or their absence) produce reaches another client: a
token holder who arrives in the very instant an anonymous client starts the fill gets the blob,
never the anonymous client's 401."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from . import cachekit
from .cachekit import FakeDTR
from .serverkit import wait_for_event

pytestmark = pytest.mark.integration
fake_dtr = cachekit.fake_dtr

TRIES = 15
ANONYMOUS = 3
HOLDERS = 3


async def _round(clients: list[httpx.AsyncClient], dtr: FakeDTR, cache_url: str) -> list:
    """One cold digest asked at once by anonymous clients and token holders (alternating, so
    an anonymous request is first): [(kind, status, body ok)]."""
    digest, data = dtr.add(128 * 1024)
    urls = []
    for i in range(len(clients)):
        token = dtr.sign(digest) if i % 2 else None
        urls.append(("token" if token else "anonymous", dtr.blob_url(cache_url, digest, token)))
    answers = await asyncio.gather(*(c.get(url) for c, (_, url) in zip(clients, urls, strict=True)),
                                   return_exceptions=True)
    return [(kind, getattr(a, "status_code", repr(a)), getattr(a, "content", None) == data)
            for (kind, _), a in zip(urls, answers, strict=True)]


def test_a_refusal_is_never_shared_even_when_both_arrive_at_once(fake_dtr, make_cache, pki,
                                                                  processes):
    cache = make_cache([fake_dtr.url], processes=processes)
    wait_for_event(cache, "keys.fetched")

    async def scenario() -> list:
        clients = [httpx.AsyncClient(verify=pki.context, timeout=30)
                   for _ in range(ANONYMOUS + HOLDERS)]
        try:
            # Connections open first, so that the requests themselves arrive together.
            await asyncio.gather(*(c.get(f"{cache.url}/v2/") for c in clients))
            return [await _round(clients, fake_dtr, cache.url) for _ in range(TRIES)]
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    rounds = asyncio.run(scenario())
    leaked = [r for r in rounds if any(kind == "token" and not ok for kind, _, ok in r)]
    assert leaked == [], f"{len(leaked)} of {TRIES} rounds gave a token holder another " \
                         f"client's answer: {leaked[:3]}"
    assert all(status == 401 for r in rounds for kind, status, _ in r if kind == "anonymous")
