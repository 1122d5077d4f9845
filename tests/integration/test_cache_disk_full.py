"""A full disk never becomes a corrupt blob, never fails a pull, and /health says the storage
is in trouble.

The cache's storage root is a 2 MiB tmpfs mounted for the test (we run as root; the tests skip,
saying why, where mounting is not permitted). A blob slightly bigger than the free space fails
its fill's write: the client still gets the whole blob, verified, from the upstream (as nginx
finishes a response it cannot cache), nothing is published, ``blob.uncached`` and a
``storage.error`` naming the errno are logged, and ``/health`` answers 503 naming the write
error until a later fill is written whole (the public ``/health`` names the problem; its detail
is on the debug listener).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from dtr_cache_check.probes.logs import events
from dtr_cache_check.probes.registry import verify_digest

from .serverkit import stored_files, wait_for_event

pytestmark = pytest.mark.integration

DISK_SIZE = 2 * 1024 * 1024
# /health's default threshold (cache_under_test.storage): min(100 MiB, 5% of the file system).
MIN_FREE = DISK_SIZE * 5 // 100


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 2 MiB tmpfs, unmounted at teardown (after the caches on it stopped: this fixture is
    set up before them, so it is torn down after them)."""
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 2 MiB tmpfs for the disk-full tests needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs",
                              str(mountpoint)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): the disk-full "
                    "tests need one")
    try:
        yield mountpoint
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)  # a cache process may still be on its way out
        else:
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fetch(pki, url: str) -> httpx.Response | None:
    """The answer, or None when the transfer broke off."""
    with httpx.Client(verify=pki.context, timeout=30) as http:
        try:
            return http.get(url)
        except httpx.TransportError:
            return None


def health(pki, cache) -> httpx.Response:
    """The public /health: the status alone, from whichever server process answers."""
    with httpx.Client(verify=pki.context, timeout=10) as http:
        return http.get(f"{cache.url}/health")


def detail(cache) -> httpx.Response:
    """The detailed health report, on the debug listener (``http.debug.addr``)."""
    return httpx.get(cache.extra["debug_url"] + "/health", timeout=10)


def unhealthy(pki, cache, status: str) -> dict:
    """Both /health answers say 503 ``status`` (the public one from several server processes);
    the detailed report's body."""
    for _ in range(4):  # with several server processes, ask more than one of them
        public = health(pki, cache)
        assert public.status_code == 503, public.text
        assert public.json() == {"status": status}
    sick = detail(cache)
    assert sick.status_code == 503, sick.text
    body = sick.json()
    assert body["status"] == status, body
    return body


def published(cache, digest: str) -> list[Path]:
    hexpart = digest.split(":")[1]
    return [p for p in stored_files(cache) if p.name == "data" and p.parent.name == hexpart]


def uploads(cache) -> list[Path]:
    return [p for p in stored_files(cache) if "_cache_uploads" in p.parts]


# excess 1: the short write is the body's last write (nothing else would notice it);
# excess 300000: a later write fails with ENOSPC.
@pytest.mark.parametrize("excess", [1, 300_000], ids=["one-byte-over", "far-over"])
def test_a_blob_bigger_than_the_free_space_is_never_published(small_disk, registry, make_cache,
                                                              push, pki, client, processes,
                                                              excess):
    cache = make_cache([registry.url], processes=processes, storage=small_disk / "cache",
                       debug=True)
    before = health(pki, cache)
    assert before.status_code == 200, before.text
    assert before.json()["status"] == "ok"
    digest, _ = push(registry, size=free_bytes(small_disk) + excess)
    url = f"{cache.url}/v2/team/app/blobs/{digest}"

    first = fetch(pki, url)
    # Finished from the upstream, verified, without a copy kept.
    assert first is not None, "the transfer broke off: the pull failed"
    assert first.status_code == 200 and verify_digest(first.content, digest), first.status_code
    uncached = wait_for_event(cache, "blob.uncached", digest=digest)[0]
    assert uncached.get("level") == "warning" and "ENOSPC" in uncached.get("reason"), uncached
    deadline = time.monotonic() + 15
    while not (events(cache.log_lines(), "blob.fill_failed", digest=digest)
               or events(cache.log_lines(), "blob.fetched", digest=digest)):
        assert time.monotonic() < deadline, cache.log_path.read_text()[-2000:]
        time.sleep(0.05)
    assert events(cache.log_lines(), "blob.fetched", digest=digest) == []
    assert published(cache, digest) == [], "a blob that did not fit was published"
    failure = wait_for_event(cache, "storage.error", digest=digest)[0]
    assert failure.get("errno") == errno.ENOSPC and failure.get("code") == "ENOSPC"
    assert uploads(cache) == [], "the failed fill's temp file was left behind"

    # The next request is served the same way, never a HIT.
    second = fetch(pki, url)
    assert second is not None and second.status_code == 200
    assert verify_digest(second.content, digest) and second.headers["x-cache"] == "MISS"
    assert events(cache.log_lines(), "blob.hit", digest=digest) == []
    assert published(cache, digest) == []

    # /health: 503 naming the problem, in every process; the detail names the write error
    # (errno and time).
    body = unhealthy(pki, cache, "storage write failed")
    error = body["storage"]["last_write_error"]
    assert (error["errno"], error["code"]) == (errno.ENOSPC, "ENOSPC")
    assert abs(error["at"] - time.time()) < 60 and error["time"].endswith("Z")
    assert any("ENOSPC" in problem for problem in body["problems"])
    assert body["upstreams"] == [registry.url]  # the fields it always had are still there

    # A blob that fits is written whole: storage works again, /health says so (and still
    # reports the last error, now cleared).
    small, small_data = push(registry, size=64 * 1024)
    ok = client(cache).get_blob("team/app", small)
    assert ok.status_code == 200 and verify_digest(ok.content, small)
    wait_for_event(cache, "blob.fetched", digest=small)
    assert health(pki, cache).json() == {"status": "ok"}
    well = detail(cache)
    assert well.status_code == 200, well.text
    assert well.json()["status"] == "ok"
    assert well.json()["storage"]["last_write_error"]["errno"] == errno.ENOSPC
    assert well.json()["storage"]["last_write_error"]["cleared_at"] is not None
    assert published(cache, small)[0].read_bytes() == small_data


def test_health_reports_low_free_space(small_disk, registry, make_cache, pki, processes):
    cache = make_cache([registry.url], processes=processes, storage=small_disk / "cache",
                       debug=True)
    well = detail(cache)
    assert well.status_code == 200, well.text
    storage = well.json()["storage"]
    assert storage["total_bytes"] == DISK_SIZE
    assert storage["min_free_bytes"] == MIN_FREE
    assert storage["free_bytes"] > MIN_FREE and storage["last_write_error"] is None

    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (free_bytes(small_disk) - MIN_FREE + 4096))
    try:
        body = unhealthy(pki, cache, "storage low on free space")
        assert body["storage"]["free_bytes"] < MIN_FREE
        assert any("free" in problem for problem in body["problems"])
    finally:
        filler.unlink()
    again = health(pki, cache)
    assert again.status_code == 200 and again.json() == {"status": "ok"}, again.text


# -- the write path itself, without a tmpfs: short writes and writes that take nothing -------

class _Content:
    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks

    async def iter_any(self):
        for chunk in self.chunks:
            yield chunk


class _Response:
    """An upstream 200 as the fill reads it."""

    status = 200

    def __init__(self, data: bytes):
        self.headers = {"Content-Length": str(len(data))}
        self.content = _Content([data[i:i + 65536] for i in range(0, len(data), 65536)])

    def release(self) -> None:
        pass


def _fill(store, data: bytes):
    from cache_under_test.fill import FillRegistry
    from cache_under_test.upstream import UpstreamResponse

    async def run():
        async def fetch():
            return UpstreamResponse("https://upstream.test", _Response(data))

        fill = FillRegistry(store).begin(_digest(data), "team/app", fetch)
        await fill.task
        return fill

    return asyncio.run(run())


def _digest(data: bytes):
    from cache_under_test.names import parse_digest

    return parse_digest("sha256:" + hashlib.sha256(data).hexdigest())


@pytest.fixture
def store(tmp_path):
    from cache_under_test.storage import BlobStore

    made = BlobStore(tmp_path / "root")
    made.prepare()
    return made


def test_short_writes_are_continued_until_the_whole_chunk_is_written(store, monkeypatch):
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:777])))
    data = os.urandom(300_000)
    fill = _fill(store, data)
    monkeypatch.undo()
    assert fill.done and fill.error is None
    assert store.path(_digest(data)).read_bytes() == data
    assert store.health()["status"] == "ok"


def test_a_write_that_takes_nothing_fails_the_fill_and_publishes_nothing(store, monkeypatch):
    real_write = os.write
    budget = [100_000]

    def write(fd, data):  # a disk that fills up: short, then nothing (and no errno)
        taken = min(len(data), budget[0])
        budget[0] -= taken
        return real_write(fd, bytes(data[:taken])) if taken else 0

    monkeypatch.setattr(os, "write", write)
    data = os.urandom(300_000)
    fill = _fill(store, data)
    monkeypatch.undo()
    assert not fill.done and fill.error is not None and "ENOSPC" in str(fill.error)
    assert store.lookup(_digest(data)) is None
    assert list(store.uploads.iterdir()) == []
    report = store.health()
    assert report["status"] == "storage write failed"
    assert report["storage"]["last_write_error"]["errno"] == errno.ENOSPC


def test_a_write_error_stops_counting_once_cleared_or_old(store):
    from cache_under_test.storage import WRITE_ERROR_HOLD

    now = time.time()
    store.record_write_error("write", OSError(errno.EDQUOT, "Disk quota exceeded"),
                             "sha256:" + "a" * 64, now=now)
    assert store.health(now=now)["status"] == "storage write failed"
    assert store.health(now=now + WRITE_ERROR_HOLD + 1)["status"] == "ok"
    store.record_write_ok(now=now + 1)
    report = store.health(now=now + 2)
    assert report["status"] == "ok"
    assert report["storage"]["last_write_error"]["code"] == "EDQUOT"
    assert report["storage"]["last_write_error"]["cleared_at"] == round(now + 1, 3)
