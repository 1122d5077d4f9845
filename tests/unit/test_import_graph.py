"""Layers point one way and no module is part of an import circle: in the reference cache, and
in the harness package, where the folders are layers

    testkit -> harness -> steps -> probes -> dtr_cache_formats
               harness -> reference (it starts the reference deployment)

(probes import no pytest; reference and probes never import testkit, harness or steps).
Deferred (function-level) imports count: a circle closed inside a function is a circle."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from dtr_cache_check.testkit.local import REPO_ROOT

CACHE = REPO_ROOT / "cache_under_test"
HARNESS = REPO_ROOT / "fixtures" / "dtr_cache_check"
# folder -> the folders of dtr_cache_check it may import ("" = the package's own top modules)
ALLOWED = {
    "probes": {"probes", ""},
    "steps": {"steps", "probes", ""},
    "harness": {"harness", "steps", "probes", "reference", ""},
    "reference": {"reference", "probes", ""},
    "testkit": {"testkit", "harness", "steps", "probes", "reference", ""},
    "": {""},
    "checks": {"harness", "steps", "probes", ""},
}


def _imports(path: Path) -> set[str]:
    """Absolute module names ``path`` imports (relative imports resolved), anywhere in it."""
    package = path.parent
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.parent
                prefix = _module_name(base / "__init__.py").removesuffix(".__init__")
                module = f"{prefix}.{node.module}" if node.module else prefix
                found |= {f"{module}.{a.name}" for a in node.names} | {module}
            elif node.module:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _module_name(path: Path) -> str:
    for root in (REPO_ROOT / "fixtures", REPO_ROOT):
        if root in path.parents:
            return ".".join(path.relative_to(root).with_suffix("").parts)
    raise ValueError(path)


def graph(folder: Path) -> dict[str, set[str]]:
    """module -> the modules of the same tree it imports (a package: its __init__). ``from
    pkg import submodule`` is an edge to the submodule: the package's __init__ is on the path
    Python walks, but its names are not what the module uses."""
    modules = {_module_name(p).removesuffix(".__init__"): p for p in folder.rglob("*.py")}
    found = {}
    for name, path in modules.items():
        imported = {m for m in _imports(path) if m in modules and m != name}
        packages = {m.rsplit(".", 1)[0] for m in imported}
        used = {p for p in packages if p in imported and _uses_names_of(path, p, modules)}
        found[name] = (imported - packages) | used
    return found


def _uses_names_of(path: Path, package: str, modules: dict) -> bool:
    """True when ``path`` imports a name from ``package`` that is not one of its modules."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == package and any(
                f"{package}.{a.name}" not in modules for a in node.names):
            return True
    return False


def circles(edges: dict[str, set[str]]) -> list[str]:
    found = []

    def visit(node: str, trail: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in trail:
                found.append(" -> ".join([*trail[trail.index(nxt):], nxt]))
            elif nxt in edges and len(trail) < 40:
                visit(nxt, [*trail, nxt])

    for start in edges:
        visit(start, [start])
    return sorted(set(found))


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else ""


def test_the_cache_has_no_import_circle():
    found = circles(graph(CACHE))
    assert not found, "import circles:\n" + "\n".join(found[:10])


def test_the_harness_has_no_import_circle():
    found = circles(graph(HARNESS))
    assert not found, "import circles:\n" + "\n".join(found[:10])


def test_the_harness_layers_point_one_way():
    wrong = []
    for module, targets in graph(HARNESS).items():
        mine = layer_of(module)
        for target in targets:
            if layer_of(target) not in ALLOWED[mine]:
                wrong.append(f"{module} ({mine or 'top'}) imports {target}")
    for path in sorted((REPO_ROOT / "checks").glob("*.py")):
        for target in _imports(path):
            if target.startswith("dtr_cache_check.") and layer_of(target) not in ALLOWED[
                    "checks"]:
                wrong.append(f"checks/{path.name} imports {target}")
    assert not wrong, "\n".join(sorted(set(wrong)))


@pytest.mark.parametrize("folder", ["probes"])
def test_probes_are_pure(folder):
    """Probes observe: no pytest (a check's outcome is the steps' and the harness's call)."""
    users = [p.name for p in (HARNESS / folder).glob("*.py") if "pytest" in {
        m.split(".")[0] for m in _imports(p)}]
    assert not users, users


def test_every_package_folder_is_in_the_wheel():
    """pyproject.toml lists the installed packages by hand (the checks install inside the
    harness package): a folder added under fixtures/ must be listed, or the installed tool
    breaks."""
    with open(REPO_ROOT / "pyproject.toml", "rb") as fh:
        listed = set(tomllib.load(fh)["tool"]["setuptools"]["packages"])
    folders = {".".join(init.parent.relative_to(REPO_ROOT / "fixtures").parts)
               for init in (REPO_ROOT / "fixtures").rglob("__init__.py")}
    assert folders <= listed, sorted(folders - listed)


def test_a_circle_is_found_and_a_chain_is_not():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}})[0] == "a -> b -> c -> a"
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
