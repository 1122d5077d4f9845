"""A Docker log source gives a run the lines written since it began, to the fraction of a
second: a line the previous run made the cache write a moment before (a client refusing its
certificate, seen in CI between two fault runs) is not this run's."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from dtr_cache_check.probes.logs import LogSource
from dtr_cache_check.reference.images import BASE_IMAGE, ensure_base_image

pytestmark = [pytest.mark.docker]


def test_lines_written_just_before_since_are_not_returned(engine):
    ensure_base_image(engine)
    name = f"dtrcheck-logwindow-{uuid.uuid4().hex[:8]}"
    script = "echo before; sleep 1.2; echo after; sleep 30"
    container = engine.containers.run(BASE_IMAGE, ["sh", "-c", script],
                                      name=name, detach=True)
    try:
        deadline = time.monotonic() + 10
        while b"before" not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        since = datetime.now(UTC)   # well within the second "before" was written in
        deadline = time.monotonic() + 10
        while b"after" not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        lines = [line.raw for line in LogSource(f"docker:{name}").lines(since)]
    finally:
        container.remove(force=True)
    assert lines == ["after"], lines
