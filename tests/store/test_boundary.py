"""The store is the only code that holds SQL and writes the derived stores.

Outside ``memos_grpc/store`` no module imports ``duckdb``, runs a statement (``execute``, ``executemany``,
``fetchmany``), or calls a method that changes a vector index, the search catalog (and with it the BM25 index)
or the blob files. The check reads every call with ``ast``; a receiver is recognised by its name (``indexes``,
``index``, ``catalog``, ``lexical``, ``blobs``), which is how the code names them everywhere.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "memos_grpc"
STORE = PACKAGE / "store"

#: Statement-running methods of a DuckDB connection or cursor, and ``CubeVisibility.sql``'s kind of condition builder.
_SQL = frozenset({"execute", "executemany", "fetchmany", "sql"})
#: A string that is a statement, or a condition over the store's columns.
_STATEMENT = re.compile(
    r"^\s*\(?\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP)\s"
    r"|\b(IS NULL|IS NOT NULL|list_has_any|list_contains)\b"
)
#: Receivers by name, and the methods that change them.
_WRITES = {
    "index": frozenset({"add", "delete", "drop", "save", "flush"}),
    "catalog": frozenset(
        {"put", "remove", "drop_space", "add_space", "set_roles", "set_viewer_rules", "forget_principal"}
    ),
    "lexical": frozenset({"put", "remove", "drop_space", "refresh"}),
    "blobs": frozenset({"writer", "adopt", "delete", "write", "commit"}),
}
_RECEIVERS = {"indexes": "index", "index": "index", "catalog": "catalog", "lexical": "lexical", "blobs": "blobs"}


def _receiver_kind(node: ast.expr) -> str | None:
    """The kind of store a call's receiver names: ``context.indexes.get(space)`` and ``self._index`` are indexes."""
    if isinstance(node, ast.Call):
        node = node.func
        if isinstance(node, ast.Attribute) and node.attr == "get":
            node = node.value
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return _RECEIVERS.get(name.lstrip("_"))


def _imported_packages(node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.ImportFrom):
        return {(node.module or "").split(".")[0]}
    return {alias.name.split(".")[0] for alias in node.names}


def breaches(path: Path) -> set[str]:
    """The kinds of store access a module makes: ``duckdb``, ``sql``, ``index``, ``catalog``, ``lexical``, ``blobs``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import | ast.ImportFrom) and "duckdb" in _imported_packages(node):
            found.add("duckdb")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _STATEMENT.search(node.value):
            found.add("sql")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method in _SQL:
                found.add("sql")
            kind = _receiver_kind(node.func.value)
            if kind is not None and method in _WRITES[kind]:
                found.add(kind)
    return found


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def outside_the_store() -> dict[str, frozenset[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORE in path.parents or "_proto" in path.parts:
            continue
        if kinds := breaches(path):
            found[_module_name(path)] = frozenset(kinds)
    return found


def test_only_the_store_holds_sql_and_writes_indexes_and_blobs() -> None:
    found = {module: sorted(kinds) for module, kinds in outside_the_store().items()}
    assert not found, f"store access outside memos_grpc/store (move it into the store): {found}"


def test_the_check_sees_each_kind(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(
        "import duckdb\n"
        "def f(cursor, context, self):\n"
        "    cursor.execute('SELECT 1')\n"
        "    context.indexes.get('s').add([1], None)\n"
        "    self._catalog.put('s', [])\n"
        "    context.catalog.lexical.refresh()\n"
        "    context.blobs.delete('sha256:00')\n"
        "    context.catalog.role_of('s', 'p')\n"  # a read: not a breach
    )
    assert breaches(module) == {"duckdb", "sql", "index", "catalog", "lexical", "blobs"}
    module.write_text("LIVE = '(expire_time IS NULL OR expire_time > ?)'\nQ = 'SELECT 1 FROM cubes'\n")
    assert breaches(module) == {"sql"}
    module.write_text("MESSAGE = 'select a space first'\n")
    assert breaches(module) == set()
    module.write_text("import duckdb\n")
    assert breaches(module) == {"duckdb"}


def test_the_store_itself_is_seen(tmp_path: Path) -> None:
    """The check is not vacuous: the store's own modules do every kind of it."""
    kinds: set[str] = set()
    for path in STORE.rglob("*.py"):
        kinds |= breaches(path)
    assert {"duckdb", "sql", "index", "catalog", "blobs"} <= kinds
