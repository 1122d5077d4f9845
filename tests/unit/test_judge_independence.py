"""The judge does not reuse the judged party's code: outside the DTR stand-in and the code that
builds the reference deployment (and breaks it for the fault matrix), neither checks/ nor the
harness imports cache_under_test."""

from __future__ import annotations

import ast

from dtr_cache_check.testkit.local import REPO_ROOT

# Code that builds the reference deployment (reference/) or breaks it for the fault
# matrix (testkit/) may use the reference cache's code; the harness and the probes not.
ALLOWED = ("fixtures/dtr_cache_check/reference/", "fixtures/dtr_cache_check/testkit/")


def imports_of(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_checks_and_harness_do_not_import_the_cache():
    offenders = []
    for folder in ("checks", "fixtures"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT).as_posix()
            if relative.startswith(ALLOWED):
                continue
            bad = sorted(m for m in imports_of(path) if m.split(".")[0] == "cache_under_test")
            if bad:
                offenders.append(f"{relative}: {', '.join(bad)}")
    assert not offenders, "the judge imports the judged party:\n" + "\n".join(offenders)


def test_the_neutral_module_imports_neither_side():
    for path in sorted((REPO_ROOT / "dtr_cache_formats").rglob("*.py")):
        roots = {m.split(".")[0] for m in imports_of(path)}
        assert not roots & {"cache_under_test", "fixtures", "checks"}, path
