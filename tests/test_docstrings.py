"""Every public module and every public class of ``memos_grpc`` says what it is, in a docstring.

The check reads the sources with ``ast`` (nothing is imported). The generated ``_proto`` package is left out. A
module is public when no part of its path starts with ``_`` (``__init__.py`` counts as its package); a class is
public when its name does not start with ``_``, wherever it is defined, except inside a function body, where it is
nobody else's to use.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "memos_grpc"
#: Generated code: its docstrings are protoc's business.
GENERATED = PACKAGE / "_proto"


def is_public_module(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).with_suffix("").parts
    return not any(part.startswith("_") and part != "__init__" for part in parts)


def public_classes(body: list[ast.stmt], prefix: str = "") -> Iterator[tuple[str, ast.ClassDef]]:
    """Module-level classes and the classes nested in them, by dotted name; private ones and their insides skipped."""
    for node in body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from public_classes(node.body, f"{name}.")


def undocumented(root: Path, generated: Path | None = None) -> list[str]:
    """``path`` for each public module without a docstring, ``path:line Class`` for each such class."""
    missing: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if generated is not None and path.is_relative_to(generated):
            continue
        shown = path.relative_to(root.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if is_public_module(path, root) and ast.get_docstring(tree) is None:
            missing.append(f"{shown} (module)")
        for name, node in public_classes(tree.body):
            if ast.get_docstring(node) is None:
                missing.append(f"{shown}:{node.lineno} {name}")
    return missing


def test_every_public_module_and_class_has_a_docstring() -> None:
    missing = undocumented(PACKAGE, GENERATED)
    assert not missing, "public modules and classes without a docstring:\n" + "\n".join(missing)


def test_the_check_finds_a_missing_docstring(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "_private").mkdir(parents=True)
    (package / "__init__.py").write_text('"""A package."""\n')
    (package / "bare.py").write_text("class Outer:\n    class Inner:\n        pass\n")
    (package / "documented.py").write_text(
        '"""A module."""\n\n\nclass Kept:\n    """A class."""\n\n\nclass _Hidden:\n    class Public:\n        pass\n'
    )
    (package / "_private" / "__init__.py").write_text(
        "class Seen:\n    pass\n\n\ndef make():\n    class Local:\n        pass\n"
    )

    assert undocumented(package) == [
        "pkg/_private/__init__.py:1 Seen",
        "pkg/bare.py (module)",
        "pkg/bare.py:1 Outer",
        "pkg/bare.py:2 Outer.Inner",
    ]
    assert undocumented(package, package / "_private") == [
        "pkg/bare.py (module)",
        "pkg/bare.py:1 Outer",
        "pkg/bare.py:2 Outer.Inner",
    ]
