"""Blob storage: distribution's layout, atomic publish, crash leftovers, TTL bookkeeping."""

import hashlib
import os
import time

from cache_under_test.names import parse_digest
from cache_under_test.storage import BlobStore


def digest_of(data: bytes):
    return parse_digest("sha256:" + hashlib.sha256(data).hexdigest())


def test_layout_and_publish(tmp_path):
    store = BlobStore(tmp_path, ttl=None)
    store.prepare()
    d = digest_of(b"hello")
    upload = store.new_upload()
    upload.write_bytes(b"hello")
    assert store.lookup(d) is None
    final = store.publish(upload, d, fetched_at=1000.0)
    rel = final.relative_to(tmp_path)
    assert str(rel) == f"docker/registry/v2/blobs/sha256/{d.hex[:2]}/{d.hex}/data"
    assert not upload.exists()
    blob = store.lookup(d)
    assert blob.size == 5 and blob.fetched_at == 1000.0
    fd, st = store.open(d)  # the very file ``path`` names
    try:
        assert os.pread(fd, 10, 0) == b"hello" and st.st_ino == os.stat(final).st_ino
    finally:
        os.close(fd)
    assert store.open(digest_of(b"other")) is None


def test_prepare_removes_crash_leftovers_but_keeps_blobs(tmp_path):
    store = BlobStore(tmp_path)
    store.prepare()
    d = digest_of(b"kept")
    up = store.new_upload()
    up.write_bytes(b"kept")
    store.publish(up, d)
    leftover = store.new_upload()
    leftover.write_bytes(b"half a bl")
    assert BlobStore(tmp_path).prepare() == 1
    assert not leftover.exists()
    assert store.lookup(d) is not None


def test_ttl_counts_from_fetch_and_survives_a_new_store(tmp_path):
    store = BlobStore(tmp_path, ttl=60)
    store.prepare()
    d = digest_of(b"x")
    up = store.new_upload()
    up.write_bytes(b"x")
    store.publish(up, d, fetched_at=time.time() - 61)
    fresh = digest_of(b"y")
    up = store.new_upload()
    up.write_bytes(b"y")
    store.publish(up, fresh)
    # A hit reads the file: it must not refresh the TTL.
    with open(store.path(fresh), "rb") as f:
        f.read()
    reopened = BlobStore(tmp_path, ttl=60)
    assert [b.digest for b in reopened.expired()] == [d]
    assert not reopened.is_expired(reopened.lookup(fresh))
    assert reopened.remove(d) and reopened.lookup(d) is None
    assert not store.path(d).parent.exists()


def test_no_ttl_never_expires(tmp_path):
    store = BlobStore(tmp_path, ttl=None)
    store.prepare()
    d = digest_of(b"z")
    up = store.new_upload()
    up.write_bytes(b"z")
    store.publish(up, d, fetched_at=0)
    assert store.expired() == [] and not store.is_expired(store.lookup(d))


def test_foreign_files_in_blobs_are_ignored(tmp_path):
    store = BlobStore(tmp_path, ttl=1)
    store.prepare()
    odd = store.blobs / "sha256" / "zz" / "nothex" / "data"
    odd.parent.mkdir(parents=True)
    odd.write_bytes(b"?")
    os.utime(odd, (0, 0))
    assert store.expired() == []
