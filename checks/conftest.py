"""What several checks stand on: the cache as DTR lists it, fresh images pushed to DTR (deleted
again at the end of the run), and the pull cycle (steps.pullcycle), whose steps run once,
on demand, by the first check that needs them: a check run alone performs exactly the steps it
needs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from dtr_cache_check.probes.oci import Image, synthesize
from dtr_cache_check.probes.registry import RegistryError
from dtr_cache_check.steps.findings import requires
from dtr_cache_check.steps.memo import Steps
from dtr_cache_check.steps.pullcycle import TRUSTS_DTR, PullCycle
from dtr_cache_check.steps.target import Target, normalize_url


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
        if target.no_writes:
            pytest.skip("--no-writes: this check needs a fresh image pushed to DTR (drop "
                        "--no-writes to run it)")
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


@pytest.fixture(scope="session")
def cycle(target: Target, steps: Steps, push_image) -> PullCycle:
    """The pull cycle; its steps run when a check first asks for them."""
    return PullCycle(target, steps, push_image)
