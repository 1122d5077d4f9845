"""No import circle among the reference cache's modules (a circle makes import order matter:
metrics -> processes -> server -> app -> blobs -> forward -> metrics was one)."""

from __future__ import annotations

import ast

from dtr_cache_check.testkit.local import REPO_ROOT

PACKAGE = REPO_ROOT / "cache_under_test"


def module_imports() -> dict[str, set[str]]:
    """cache_under_test module -> the sibling modules it imports at module level."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):  # deferred imports count too
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found |= {alias.name for alias in node.names}
        graph[path.stem] = found
    return graph


def test_the_cache_has_no_import_circle():
    graph = module_imports()
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in trail:
                circles.append(" -> ".join([*trail[trail.index(nxt):], nxt]))
            elif nxt in graph:
                visit(nxt, [*trail, nxt])

    for start in graph:
        visit(start, [start])
    assert not circles, "import circles:\n" + "\n".join(sorted(set(circles))[:10])


def test_every_package_folder_is_in_the_wheel():
    """pyproject.toml lists the installed packages by hand (the checks install inside the
    harness package): a folder added under fixtures/ must be listed, or the installed tool
    breaks."""
    import tomllib

    with open(REPO_ROOT / "pyproject.toml", "rb") as fh:
        listed = set(tomllib.load(fh)["tool"]["setuptools"]["packages"])
    folders = {".".join(init.parent.relative_to(REPO_ROOT / "fixtures").parts)
               for init in (REPO_ROOT / "fixtures").rglob("__init__.py")}
    assert folders <= listed, sorted(folders - listed)
