"""Property: whatever the path, the blob and manifest endpoints answer 4xx with an OCI error
body, and never touch a file outside the storage root."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cache_under_test.app import Cache
from cache_under_test.config import validate
from dtr_cache_check.reference.seed_templates import cache_config
from dtr_cache_check.testkit.local import free_port

pytestmark = pytest.mark.integration

FRAGMENTS = ["..", ".", "%2e%2e", "%2F", "/", "etc", "passwd", "secret.txt", "a", "A", "-",
             "_", "__", "sha256:", "sha512:", "md5:", "0" * 64, "f" * 63, "f" * 65, "\\",
             "%00", "~", "blobs", "manifests", "x" * 300, ":", "@", "%252e"]


class InProcessCache:
    """The cache app on its own loop in a thread, so an audit hook sees its file access."""

    def __init__(self, config):
        self.port = free_port()
        self.cache = Cache(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(20)
        return self

    async def _start(self):
        self.runner = web.AppRunner(self.cache.application())
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def watched_cache(tmp_path, registry, pki):
    root = tmp_path / "root"
    (tmp_path / "secret.txt").write_text("canary")
    raw = cache_config(upstreams=[registry.url], cas=[str(pki.ca_path)], blobttl=None,
                       rootdirectory=str(root))
    del raw["http"]["tls"]
    opened: list[str] = []

    server_thread: list[int] = []

    def hook(event, args):
        # Only the server's own thread (and its executor threads are not used for paths):
        # hypothesis and pytest open files of their own meanwhile.
        if (event == "open" and args and isinstance(args[0], (str, bytes, Path))
                and threading.get_ident() in server_thread):
            opened.append(str(args[0]))

    sys.addaudithook(hook)  # audit hooks cannot be removed: the list is simply dropped after
    with InProcessCache(validate(raw)) as server:
        server_thread.append(server.thread.ident)
        opened.clear()
        yield server, root, opened
    opened.clear()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6).map("".join),
       ref=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=4).map("".join),
       kind=st.sampled_from(["blobs", "manifests"]))
def test_any_path_gets_a_4xx_oci_error_and_stays_in_the_root(watched_cache, name, ref, kind):
    server, root, opened = watched_cache
    path = f"/v2/{name}/{kind}/{ref}"
    url = f"http://127.0.0.1:{server.port}/"
    # The raw request target: httpx would normalise "..", which is the point of the test.
    with httpx.Client(timeout=10) as http:
        request = http.build_request("GET", url, extensions={"target": path.encode()})
        r = http.send(request)
    assert 400 <= r.status_code < 500, (url, r.status_code, r.text)
    body = r.json()
    assert body["errors"] and body["errors"][0]["code"], body
    outside = [p for p in opened if not Path(p).resolve().is_relative_to(root)
               and not p.endswith((".py", ".pyc", ".so")) and not p.startswith("/etc/ssl")]
    assert not outside, outside
