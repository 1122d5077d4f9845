"""What several checks stand on: the cache as DTR lists it, and fresh images pushed to DTR
(deleted again at the end of the run)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from fixtures.harness.diagnosis import requires
from fixtures.harness.target import Target, normalize_url
from fixtures.oci import Image, synthesize
from fixtures.registry import RegistryError

TRUSTS_DTR = "test_client_trusts_the_server[client->DTR]"
TRUSTS_CACHE = "test_client_trusts_the_server[client->cache]"


@pytest.fixture(scope="session")
def cache_listing(target: Target) -> list[dict]:
    """``GET /api/v0/content_caches`` as the admin (or the test user)."""
    requires(TRUSTS_DTR)
    with target.api() as api:
        answer = api.get("/api/v0/content_caches")
    if answer.status_code != 200:
        return [{"_error": f"{answer.status_code} {answer.text[:200]}"}]
    body = answer.json()
    if isinstance(body, dict):  # DTR's schema is not public: take the first list inside
        body = next((v for v in body.values() if isinstance(v, list)), [])
    return [c for c in body if isinstance(c, dict)]


@pytest.fixture(scope="session")
def registered_cache(target: Target, cache_listing: list[dict]) -> dict | None:
    """The listing's entry for this cache: by --cache-name, else by host."""
    for entry in cache_listing:
        if target.cache_name and entry.get("name") == target.cache_name:
            return entry
    for entry in cache_listing:
        host = entry.get("host")
        if target.cache_url and host and normalize_url(host) == normalize_url(target.cache_url):
            return entry
    return None


@pytest.fixture(scope="session")
def push_image(target: Target) -> Iterator[Callable[..., Image]]:
    """Push a fresh synthesized image to the test repository as the test user; every image
    pushed is deleted at the end (as the admin: users may not delete)."""
    pushed: list[tuple[str, str]] = []

    def push(*, layers: int = 2, layer_size: int = 256 * 1024, tag: str = "check",
             user: str | None = None, repo: str | None = None) -> Image:
        image = synthesize(layers=layers, layer_size=layer_size)
        repo = repo or target.test_repo
        with target.client(user) as client:
            image.push(client, repo, tag)
        pushed.append((repo, image.manifest_digest))
        return image

    yield push
    if pushed:
        with target.client(target.admin_user) as admin:
            for repo, digest in pushed:
                # Best effort: a leftover shows in the registry's own listing.
                with contextlib.suppress(RegistryError, httpx.HTTPError):
                    admin.delete_manifest(repo, digest)


class PullCycle:
    """What the pull-cycle checks did, for the checks that read their traces (logs, TTL)."""

    def __init__(self) -> None:
        self.image: Image | None = None
        self.redirects: dict = {}       # digest -> DTR's 307 response
        self.first: dict = {}           # digest -> the cache's first answer
        self.second: dict = {}          # digest -> the cache's second answer
        self.log_start = 0              # cache log lines before the cycle


@pytest.fixture(scope="session")
def cycle() -> PullCycle:
    return PullCycle()
