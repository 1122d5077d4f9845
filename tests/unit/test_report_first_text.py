"""A failure's first text as the harness records it: pytest's own words left out, so that a
consequence of a consequence names its root once."""

from __future__ import annotations

from types import SimpleNamespace

from dtr_cache_check.harness import diagnosis, report

ROOT = "[client->cache] unknown authority. Fix: give the client the cache's CA."


def crashed(message: str) -> SimpleNamespace:
    """A report of a check whose fixture (a pull-cycle step) failed: pytest's crash repr."""
    longrepr = SimpleNamespace(reprcrash=SimpleNamespace(message=message))
    return SimpleNamespace(longrepr=longrepr)


def test_a_step_that_failed_as_a_consequence_keeps_its_root_first():
    step = diagnosis.consequence("test_client_trusts_the_server[client->cache]", ROOT)
    text = report.first_text(crashed(f"Failed: {step}"))
    assert text.splitlines()[0] == step
    chained = diagnosis.consequence("test_4_cache_serves_each_blob_without_authorization",
                                    text.splitlines()[0])
    assert chained == step   # the root named once, not "consequence of test_4...: Failed: ..."
    assert diagnosis.root_of(chained) == "test_client_trusts_the_server[client->cache]"


def test_an_unexpected_exception_keeps_its_type():
    assert report.first_text(crashed("ValueError: bad")).startswith("ValueError: bad")
