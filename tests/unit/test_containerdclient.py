"""The containerd probe's reading of ctr's output (lines as containerd 1.6 prints them), its
redaction, and the hosts directory it writes."""

from __future__ import annotations

import tomllib

import pytest

from dtr_cache_check.probes import containerdclient as cc

DTR, CACHE = "127.0.0.1:41849", "127.0.0.1:59433"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
BLOB = (f'ctr: failed to copy: httpReadSeeker: failed open: failed to do request: Get '
        f'"https://{CACHE}/v2/alice/app/blobs/sha256:b181e82e?dtr_cache_token={TOKEN}": ')
MANIFEST = (f'ctr: failed to resolve reference "{DTR}/alice/app:v1": failed to do request: '
            f'Head "https://{DTR}/v2/alice/app/manifests/v1": ')
NOISE = (f'time="2026-11-30T13:45:29Z" level=info msg="trying next host" error="failed to do '
         f'request: Head \\"https://{DTR}/v2/alice/app/manifests/v1\\": x509: certificate '
         f'signed by unknown authority" host="{DTR}"\n')


@pytest.mark.parametrize(("output", "what", "hop", "host", "kind"), [
    (BLOB + "x509: certificate signed by unknown authority",
     "blob", "client->cache", CACHE, cc.UNKNOWN_AUTHORITY),
    (BLOB + "x509: certificate is valid for cache.example, not 127.0.0.1",
     "blob", "client->cache", CACHE, cc.NAME_MISMATCH),
    (BLOB + "dial tcp 127.0.0.1:59433: connect: connection refused",
     "blob", "client->cache", CACHE, cc.REFUSED),
    (BLOB.replace(CACHE, DTR) + "x509: certificate has expired or is not yet valid: now",
     "blob", "client->DTR", DTR, cc.EXPIRED),
    (NOISE + MANIFEST + "x509: certificate signed by unknown authority",
     "manifest", "client->DTR", DTR, cc.UNKNOWN_AUTHORITY),
    (MANIFEST + "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain "
     "any IP SANs", "manifest", "client->DTR", DTR, cc.NAME_MISMATCH),
    (f'ctr: failed to resolve reference "{DTR}/alice/app:v1": failed to authorize: failed to '
     "fetch oauth token: unexpected status: 401 Unauthorized",
     "manifest", "client->DTR", DTR, cc.UNAUTHORIZED),
    (f'ctr: failed to resolve reference "{DTR}/alice/app:v1": pulling from host {DTR} failed '
     "with status code [manifests v1]: 401 Unauthorized",
     "manifest", "client->DTR", DTR, cc.UNAUTHORIZED),
    (MANIFEST.replace("https", "http") + "EOF", "manifest", "client->DTR", DTR, cc.OTHER),
])
def test_classify_names_the_request_the_hop_and_the_kind(output, what, hop, host, kind):
    found = cc.classify(output, DTR, CACHE)
    assert (found.what, found.hop, found.host, found.kind) == (what, hop, host, kind)
    assert found.line.startswith("ctr: ")
    assert TOKEN not in found.line


def test_classify_without_a_known_cache_blames_dtr():
    assert cc.classify(BLOB + "EOF", DTR, None).hop == "client->DTR"


def test_redact_drops_url_queries_and_the_password():
    text = cc.redact(BLOB + "hunter2-Secret: x509", "hunter2-Secret")
    assert TOKEN not in text and "hunter2-Secret" not in text
    assert f"https://{CACHE}/v2/alice/app/blobs/sha256:b181e82e?<redacted>" in text


def test_hosts_dir_trusts_the_ca_for_the_server_and_its_host_entry(tmp_path):
    cc.write_hosts_dir(tmp_path, {DTR: b"PEM-A", CACHE: b""})
    parsed = tomllib.loads((tmp_path / DTR / "hosts.toml").read_text())
    ca = str(tmp_path / DTR / "ca.crt")
    assert parsed["server"] == f"https://{DTR}" and parsed["ca"] == [ca]
    assert parsed["host"][f"https://{DTR}"]["ca"] == [ca]
    assert (tmp_path / DTR / "ca.crt").read_bytes() == b"PEM-A"
    bare = tomllib.loads((tmp_path / CACHE / "hosts.toml").read_text())
    assert "ca" not in bare and f"https://{CACHE}" in bare["host"]
