"""The registry client: bearer flow, no silent redirects, and a transcript without secrets."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from cache_under_test.blobtoken import TOKEN_PARAM
from dtr_cache_check.probes.oci import synthesize

from .serverkit import Stack

pytestmark = pytest.mark.integration


def test_transcript_records_every_exchange_and_no_secret(stack: Stack, registered):
    image = synthesize(layers=1, layer_size=4096)
    with stack.client("alice") as alice:
        image.push(alice, "alice/transcript", "v1")
        redirect = alice.get_blob("alice/transcript", image.layers[0].digest)
        assert redirect.status_code == 307  # never followed silently
        served = alice.follow(redirect)
        assert served.status_code == 200
        text = alice.transcript.text()
        bearer = redirect.request.headers["authorization"].split(" ", 1)[1]
    signed = parse_qs(urlsplit(redirect.headers["location"]).query)[TOKEN_PARAM][0]
    assert stack.password("alice") not in text
    assert bearer not in text and signed not in text
    assert f"{TOKEN_PARAM}=REDACTED" in text
    assert " -> 307 " in text and " -> 401 " in text and " -> 201 " in text
    lines = [ex.line() for ex in alice.transcript.exchanges]
    assert any("/auth/token" in line for line in lines)


def test_delete_needs_the_right_and_removes_the_blob(stack: Stack):
    image = synthesize(layers=1, layer_size=2048)
    digest = image.layers[0].digest
    with stack.client("alice") as alice:
        image.push(alice, "alice/deleted", "v1")
        assert alice.delete_blob("alice/deleted", digest).status_code in (401, 403)
    with stack.client("admin") as admin:
        assert admin.delete_blob("alice/deleted", digest).status_code == 202
        assert admin.get_blob("alice/deleted", digest, method="HEAD").status_code == 404
