"""Imports point down the layers: entry points → server → components → store → libraries.

Every ``memos_grpc`` module belongs to the layer of its top-level package (below). A module may import its own
layer and the layers under it, never one above: the store does not know who calls it, and a library knows neither.
The check reads every import statement (function-level imports too) with ``ast``.

``UPWARD`` lists the imports that break the rule today. It may only shrink: a new upward import fails, and so does a
listed one that is gone (remove its line), so the list records the way to go rather than excusing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "memos_grpc"

#: Top to bottom. Within a layer, modules may import one another.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("entry points", frozenset({"cli", "conformance"})),
    ("server", frozenset({"server"})),
    ("composition root", frozenset({"node"})),
    (
        "components",
        frozenset({"vault", "governance", "scheduler", "interchange", "marketplace", "models", "witness"}),
    ),
    ("store", frozenset({"store"})),
    (
        "libraries",
        frozenset(
            {"embedding", "primitives", "transparency", "errors", "reasons", "settings", "files", "_proto", "__init__"}
        ),
    ),
)
RANK = {package: rank for rank, (_, packages) in enumerate(LAYERS) for package in packages}

#: Imports against the layering, ``importer -> imported``; the list may only shrink.
UPWARD: frozenset[str] = frozenset()


def _package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The ``memos_grpc`` modules a file imports, wherever in it the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.startswith("memos_grpc.")}


def upward_imports() -> set[str]:
    upward = set()
    for path in PACKAGE.rglob("*.py"):
        if "_proto" in path.parts:
            continue
        module = _module_name(path)
        here = RANK[_package_of(module)]
        for imported in imports_of(path):
            if RANK[_package_of(imported)] < here:
                upward.add(f"{module} -> {imported}")
    return upward


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages |= {p.stem for p in PACKAGE.glob("*.py")}
    assert packages - {"__main__"} <= set(RANK), f"packages with no layer: {sorted(packages - set(RANK))}"


def test_imports_point_down() -> None:
    found = upward_imports()
    new = sorted(found - UPWARD)
    assert not new, f"imports against the layering ({' > '.join(name for name, _ in LAYERS)}): {new}"
    gone = sorted(UPWARD - found)
    assert not gone, f"no longer imported upward: remove them from UPWARD: {gone}"


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(
        "def f():\n    from memos_grpc.server.app import MemosServer\n    import memos_grpc.vault.cubes\n"
    )
    assert imports_of(module) == {"memos_grpc.server.app", "memos_grpc.vault.cubes"}


def test_no_test_imports_conftest() -> None:
    """Fixtures come by name and helpers from modules (``memos_test_support``...); conftest is pytest's alone."""
    tests = PACKAGE.parent / "tests"
    importers = sorted(
        str(path.relative_to(tests))
        for path in tests.rglob("*.py")
        if any(name.split(".")[-1] == "conftest" or ".conftest." in f".{name}." for name in _imported_names(path))
    )
    assert not importers, f"these import conftest: {importers}"


def _imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names
