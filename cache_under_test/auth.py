"""Who may have a blob: a signed token checked locally, or the upstream's word.

With a token (DTR's redirect), the cache verifies it against the upstream's published keys and
never waits on DTR for a hit. Without one (a plain pull-through mirror), the client's
``Authorization`` goes to the upstream and the cache serves only what the upstream allowed.

Whose answer a client may share is the fill's business (``fill.Fill.credentials``). The pool
also verifies here the token of a redirect that DTR sends back to this cache
(``verify_token``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from .blobtoken import JWKS_PATH, BlobGrant, KeySet, TokenError, UnknownKey
from .events import emit
from .upstream import AllUpstreamsFailed, UpstreamPool

# After a successful fetch an unknown key id refetches at most this often (a flood of forged
# kids must not become a flood of upstream requests); after a failed one, sooner, so a cache
# that started before DTR answered recovers at once.
KEY_REFRESH_AFTER_SUCCESS = 1.0
KEY_REFRESH_AFTER_FAILURE = 0.5


class Authorizer:
    """Holds the upstream's public keys and answers the two authorization questions."""

    def __init__(self, pool: UpstreamPool, ignore_expiry: bool = False):
        self.pool = pool
        self.ignore_expiry = ignore_expiry  # TEST-ONLY fault mode "ignore-expiry"
        self.keys = KeySet()
        self.document: dict | None = None
        self._next_fetch = 0.0
        self._lock = asyncio.Lock()
        pool.token_verifier = self.verify_token

    async def refresh_keys(self, *, force: bool = False) -> bool:
        """Fetch the JWKS through the upstreams; at most once per interval. True if fetched."""
        async with self._lock:
            if not force and self.document is not None:
                return False
            if time.monotonic() < self._next_fetch:
                return False
            self._next_fetch = time.monotonic() + KEY_REFRESH_AFTER_FAILURE
            try:
                answer = await self.pool.request("GET", JWKS_PATH, registry_api=False)
            except AllUpstreamsFailed as exc:
                emit("keys.unavailable", logging.WARNING, error=str(exc)[:300])
                return False
            try:
                if answer.response.status != 200:
                    emit("keys.unavailable", logging.WARNING, upstream=answer.upstream,
                         status=answer.response.status)
                    return False
                document = json.loads(await answer.response.read())
                self.keys.update(document)
            except (ValueError, KeyError, TypeError) as exc:
                emit("keys.unavailable", logging.WARNING, upstream=answer.upstream,
                     error=f"bad JWKS: {exc}"[:300])
                return False
            finally:
                answer.release()
            self.document = document
            self._next_fetch = time.monotonic() + KEY_REFRESH_AFTER_SUCCESS
            emit("keys.fetched", upstream=answer.upstream, key_ids=sorted(self.keys.keys))
            return True

    async def verify_token(self, token: str, repository: str, digest: str) -> BlobGrant:
        """Verify a signed blob token; an unknown key id triggers one refetch of the keys."""
        now = 0.0 if self.ignore_expiry else None
        try:
            return self.keys.verify(token, repository=repository, digest=digest, now=now)
        except UnknownKey:
            if not await self.refresh_keys(force=True):
                raise
            return self.keys.verify(token, repository=repository, digest=digest, now=now)


def denied(reason: TokenError | str, *, repo: str, digest: str, client: str | None,
           status: int) -> None:
    """Log an ``auth.denied`` fact (the token itself is never logged)."""
    emit("auth.denied", logging.WARNING, reason=str(reason), repo=repo, digest=digest,
         client=client, status=status)
