"""The embedded database spares DuckDB's Python client its import of a missing pandas (``store/database.py``)."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memos_grpc.store import database as duck
from memos_grpc.store.database import DuckDatabase


class _Watcher:
    """Counts the imports of pandas that reach the path search (each one a walk of ``sys.path``)."""

    def __init__(self) -> None:
        self.searches = 0

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas":
            self.searches += 1
        return None


@pytest.fixture
def watcher() -> Iterator[_Watcher]:
    """A finder just before ``PathFinder``: it sees what the finders ahead of it let through."""
    watching = _Watcher()
    at = next(i for i, f in enumerate(sys.meta_path) if f is importlib.machinery.PathFinder)
    sys.meta_path.insert(at, watching)
    yield watching
    sys.meta_path.remove(watching)


def test_statements_with_parameters_search_no_path_for_pandas(tmp_path: Path, watcher: _Watcher) -> None:
    database = DuckDatabase(tmp_path / "vault.duckdb", group_max=8)
    opened = watcher.searches  # opening looks (is pandas installed?), and so does migrating on a bare connection
    try:
        database.write(lambda cursor: cursor.execute("INSERT INTO meta VALUES (?, ?)", ["k", "v"]))
        with database.read() as cursor:
            assert cursor.execute("SELECT value FROM meta WHERE key = ?", ["k"]).fetchone() == ("v",)
    finally:
        database.close()
    assert watcher.searches == opened
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("pandas")


def test_outside_a_cursor_call_the_binding_searches_for_pandas_on_every_statement(watcher: _Watcher) -> None:
    """What the finder saves: on a bare connection, DuckDB's client looks for pandas each time it binds."""
    import duckdb

    duck.remember_pandas_missing()
    connection = duckdb.connect()
    for n in range(3):
        connection.execute("SELECT ?", [n]).fetchone()
    connection.close()
    assert watcher.searches >= 3


def test_probing_for_pandas_elsewhere_still_finds_nothing(tmp_path: Path) -> None:
    """Libraries probe with ``find_spec`` (transformers does, at import) and expect None, not an exception."""
    database = DuckDatabase(tmp_path / "vault.duckdb", group_max=8)
    try:
        assert importlib.util.find_spec("pandas") is None
        with database.read() as cursor:
            assert cursor.execute("SELECT ?", [1]).fetchone() == (1,)
        assert importlib.util.find_spec("pandas") is None
    finally:
        database.close()


def test_it_is_installed_once() -> None:
    duck.remember_pandas_missing()
    duck.remember_pandas_missing()
    assert sum(isinstance(f, duck._PandasInDuckDB) for f in sys.meta_path) == 1
