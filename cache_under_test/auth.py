"""Who may have a blob: a signed token checked locally, or the upstream's word.

With a token (DTR's redirect), the cache verifies it against the upstream's published keys and
never waits on DTR for a hit. Without one (a plain pull-through mirror), the client's
``Authorization`` goes to the upstream and the cache serves only what the upstream allowed.

Whose answer a client may share is the fill's business (``fill.Fill.credentials``). The pool
also verifies here the token of a redirect that DTR sends back to this cache
(``verify_token``).

The keys are fetched at start, every ``refresh`` seconds after (a key withdrawn from the JWKS
stops verifying, a key replaced under the same id is picked up), and on a token with an
unknown key id (rate-limited). A token issued ahead of this clock says how far the signer's
clock is ahead: logged as ``auth.clock_skew`` (info within the leeway, warning beyond it,
where the token is refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from .blobtoken import (
    JWKS_PATH,
    LEEWAY,
    MAX_LIFETIME,
    BlobGrant,
    ClockSkew,
    KeySet,
    TokenError,
    UnknownKey,
)
from .events import emit
from .upstream import AllUpstreamsFailed, UpstreamPool

# After a successful fetch an unknown key id refetches at most this often (a flood of forged
# kids must not become a flood of upstream requests); after a failed one, sooner, so a cache
# that started before DTR answered recovers at once.
KEY_REFRESH_AFTER_SUCCESS = 1.0
KEY_REFRESH_AFTER_FAILURE = 0.5
# Tokens whose verification is remembered (a client's Range requests and retries, and joins,
# send the same signed URL again): an ECDSA verification is a tenth of a small hit's time.
VERIFIED_MEMO = 1024
SKEW_LOG_INTERVAL = 60.0  # s between auth.clock_skew lines for a skew that stays the same
SKEW_SEEN = 1.0  # s: an iat less far ahead than this is rounding, not skew


class Authorizer:
    """Holds the upstream's public keys and answers the two authorization questions."""

    def __init__(self, pool: UpstreamPool, ignore_expiry: bool = False, *,
                 leeway: float = LEEWAY, max_lifetime: float = MAX_LIFETIME,
                 refresh: float = 300.0):
        self.pool = pool
        self.ignore_expiry = ignore_expiry  # TEST-ONLY fault mode "ignore-expiry"
        self.leeway = leeway
        self.max_lifetime = max_lifetime
        self.refresh = refresh
        self.keys = KeySet()
        self.document: dict | None = None
        self._next_fetch = 0.0
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task | None = None
        self._skew_logged = (0.0, -SKEW_LOG_INTERVAL)  # (skew, monotonic time) last logged
        # (token, repository, digest) -> its grant, while the keys stay the same: the
        # verdict of the same text under the same keys changes only with the clock, and the
        # expiry is checked again on every use.
        self._verified: dict[tuple[str, str, str], BlobGrant] = {}
        pool.token_verifier = self.verify_token

    async def start(self) -> None:
        """Fetch the keys, then again every ``refresh`` seconds until ``stop``."""
        await self.refresh_keys()
        self._timer = asyncio.create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            await self.refresh_keys(force=True)

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
                self._verified.clear()  # a withdrawn key must stop verifying at once
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
        """Verify a signed blob token; an unknown key id triggers one refetch of the keys.
        A token verified before under the same keys is only checked for expiry."""
        memo = (token, repository, digest)
        grant = self._verified.get(memo)
        if grant is not None:
            if self.ignore_expiry or grant.expires_at + self.leeway >= time.time():
                return grant
            del self._verified[memo]  # expired: verify_token says so below
        try:
            try:
                grant = self._verify(token, repository, digest)
            except UnknownKey:
                if not await self.refresh_keys(force=True):
                    raise
                grant = self._verify(token, repository, digest)
        except ClockSkew as exc:
            self._skew(exc.skew, refused=True)
            raise
        ahead = grant.issued_at - time.time()
        if ahead >= SKEW_SEEN:
            self._skew(ahead, refused=False)
        if len(self._verified) >= VERIFIED_MEMO:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[memo] = grant
        return grant

    def _verify(self, token: str, repository: str, digest: str) -> BlobGrant:
        return self.keys.verify(token, repository=repository, digest=digest,
                                now=0.0 if self.ignore_expiry else None, leeway=self.leeway,
                                max_lifetime=self.max_lifetime)

    def _skew(self, ahead: float, *, refused: bool) -> None:
        """Log the signer's clock skew: every refusal, and a believed skew when it changed by
        a second or more, or once a ``SKEW_LOG_INTERVAL``."""
        last, at = self._skew_logged
        now = time.monotonic()
        if not refused and abs(ahead - last) < SKEW_SEEN and now - at < SKEW_LOG_INTERVAL:
            return
        self._skew_logged = (ahead, now)
        emit("auth.clock_skew", logging.WARNING if refused else logging.INFO,
             skew_s=round(ahead, 1), leeway_s=self.leeway,
             action="token refused: the upstream's clock is ahead by more than "
                    "DTRCACHE_CLOCK_LEEWAY" if refused else "within the leeway: believed")


def denied(reason: TokenError | str, *, repo: str, digest: str, client: str | None,
           status: int) -> None:
    """Log an ``auth.denied`` fact (the token itself is never logged)."""
    emit("auth.denied", logging.WARNING, reason=str(reason), repo=repo, digest=digest,
         client=client, status=status)
