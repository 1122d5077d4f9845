"""What the rule tests share: the seed's files in memory and on disk, and how a failed
finding is asserted (tests/unit/test_configrules.py, test_stackrules.py)."""

from __future__ import annotations

from dtr_cache_check.probes.deployed_files import CacheFiles
from dtr_cache_check.probes.findings import ERROR, Finding
from dtr_cache_check.reference.seed_templates import cache_config, stack_file

IMAGE = "docker/dtr-content-cache:2.7.5"
OPTS = "middleware.registry[downstream].options"
LABELLED = [{"dtr.cache": "true"}]


def config(**kw) -> dict:
    return cache_config(upstreams=["https://dtr.example.com:443"], **kw)


def stack(**kw) -> dict:
    return stack_file(image=IMAGE, port=443, **kw)


def files(cfg: dict | None = None, stk: dict | None = None, **kw) -> CacheFiles:
    return CacheFiles(cfg or config(), stk or stack(), None, **kw)


def service(stk: dict) -> dict:
    return stk["services"]["cache"]


def fails(finding: Finding, key: str, fix: str, severity: str = ERROR) -> Finding:
    """A failed finding about ``key`` whose fix says ``fix``."""
    assert not finding.ok, finding
    assert finding.severity == severity, finding
    assert key in finding.subject, finding
    assert finding.cause and fix in finding.fix, finding
    return finding
