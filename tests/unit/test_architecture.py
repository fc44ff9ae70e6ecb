"""The shape of the code, read from its imports: no cycles, and the engine seam kept.

Every `import` and `from ... import` of a roscoe module counts, wherever it is: at the top,
inside a function (lazy), or under `if TYPE_CHECKING:`. A lazy import hides a cycle from the
interpreter, not from the reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import roscoe

SRC = Path(roscoe.__file__).parent

# What engine/ may import from the rest of roscoe: the error family and the labels.
ENGINE_MAY_IMPORT = {"roscoe.errors", "roscoe.labels"}
# What the rest of roscoe may import from engine/: the protocols and the error mapper...
SEAM = {"roscoe.engine.protocols", "roscoe.engine.errors"}
# ...and the factory (connect), at the edges that create the one engine and hand it down.
FACTORY = {"roscoe.engine", "roscoe.engine.connect"}
FACTORY_USERS = ("roscoe.cli.", "roscoe.service.")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def imported_names(path: Path) -> Iterator[str]:
    """Every module name an import statement in the file names (`from a import b`: a, a.b)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


@cache
def roscoe_imports(name: str) -> frozenset[str]:
    """The roscoe modules (or packages) a module imports, by their closest module name."""
    found = set()
    for imported in imported_names(modules()[name]):
        closest = imported
        while closest and closest not in modules():
            closest = closest.rpartition(".")[0]
        if closest.startswith("roscoe") and closest != name:
            found.add(closest)
    return frozenset(found)


def test_the_source_tree_is_what_this_test_reads() -> None:
    assert {"roscoe.engine.protocols", "roscoe.runs.execute", "roscoe.cli.app"} <= set(modules())


def test_no_import_cycles() -> None:
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        path.append(name)
        for imported in sorted(roscoe_imports(name)):
            visit(imported)
        path.pop()
        done.add(name)

    for name in modules():
        visit(name)


def test_the_engine_imports_nothing_of_the_core() -> None:
    wrong = {
        f"{name} imports {imported}"
        for name in modules()
        if name.startswith("roscoe.engine")
        for imported in roscoe_imports(name)
        if not imported.startswith("roscoe.engine") and imported not in ENGINE_MAY_IMPORT
    }
    assert not wrong, sorted(wrong)


def test_the_core_reaches_the_engine_only_through_the_seam() -> None:
    wrong = set()
    for name in modules():
        if name.startswith("roscoe.engine"):
            continue
        for imported in roscoe_imports(name):
            if not imported.startswith("roscoe.engine") or imported in SEAM:
                continue
            if imported in FACTORY and name.startswith(FACTORY_USERS):
                continue
            wrong.add(f"{name} imports {imported}")
    assert not wrong, sorted(wrong)


def test_the_fake_is_for_tests_only() -> None:
    users = {
        name
        for name in modules()
        if "roscoe.engine.fake" in roscoe_imports(name) and name != "roscoe.engine.fake"
    }
    assert users == set()
