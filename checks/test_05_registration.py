"""Registration: DTR knows the cache, and the test user is pointed at it."""

from __future__ import annotations

import pytest

from dtr_cache_check.steps.findings import REGISTRATION, fail
from dtr_cache_check.steps.target import normalize_url

pytestmark = [pytest.mark.family("registration"), pytest.mark.hop(REGISTRATION)]


@pytest.mark.essential("registration")
@pytest.mark.requires("test_client_trusts_the_server[client->DTR]")
def test_cache_is_registered_in_dtr(target, cache_listing, registered_cache, evidence):
    """DTR lists the cache under its name with the URL clients will be sent to."""
    if cache_listing and "_error" in cache_listing[0]:
        fail(REGISTRATION, f"DTR refused to list its content caches: {cache_listing[0]['_error']}",
             "run the checks with a DTR admin (--dtr-admin-user/--dtr-admin-password)")
    names = sorted(str(c.get("name")) for c in cache_listing)
    evidence.text("GET /api/v0/content_caches", "\n".join(
        f"{c.get('id')}  {c.get('name')}  {c.get('host')}" for c in cache_listing) or "(none)")
    if registered_cache is None:
        fail(REGISTRATION,
             f"no content cache named {target.cache_name!r} or at {target.cache_url} is registered "
             f"in DTR (registered: {', '.join(names) or 'none'})",
             f'register it as an admin: POST /api/v0/content_caches '
             f'{{"name": "{target.cache_name or "region-x"}", "host": "{target.cache_url}"}}')
    host = str(registered_cache.get("host", ""))
    if target.cache_url and normalize_url(host) != normalize_url(target.cache_url):
        fail(REGISTRATION,
             f"DTR has {registered_cache.get('name')!r} at {host}, but the cache answers at "
             f"{target.cache_url}: DTR would send clients to the wrong place",
             "delete the registration and register the cache again with its external URL "
             "(http.host in config.yml)")
    evidence.note(f"registered as {registered_cache.get('name')!r} -> {host}")


@pytest.mark.essential("user setting")
@pytest.mark.requires("test_cache_is_registered_in_dtr")
def test_user_points_at_the_cache(target, registered_cache, evidence):
    """The test user's account settings select this cache (else DTR serves them directly)."""
    user = target.dtr_user
    with target.api(user) as api:
        answer = api.get(f"/api/v0/accounts/{user}/settings")
    if answer.status_code != 200:
        fail(REGISTRATION, f"cannot read {user}'s settings: {answer.status_code}",
             "check --dtr-user/--dtr-password")
    settings = answer.json()
    fields = {k: v for k, v in settings.items() if "cache" in k.lower()}
    evidence.text(f"GET /api/v0/accounts/{user}/settings", str(settings))
    if not fields:
        fail(REGISTRATION, f"{user}'s settings have no content-cache field ({sorted(settings)})",
             "select the cache in DTR: Account -> Settings -> Content Cache")
    field, value = next(iter(fields.items()))
    wanted = {str(registered_cache.get(k)) for k in ("id", "name") if registered_cache.get(k)}
    if str(value) not in wanted:
        fail(REGISTRATION,
             f"{user}'s settings field {field!r} is {value!r}, not this cache "
             f"({' / '.join(sorted(wanted))}): DTR will not redirect their pulls to it",
             f"set it: POST /api/v0/accounts/{user}/settings {{\"{field}\": "
             f"\"{registered_cache.get('id')}\"}} (or Account -> Settings -> Content Cache)")
    evidence.note(f"{user}: {field} = {value} (field discovered in the settings)")
