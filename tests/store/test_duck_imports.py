"""The embedded database spares DuckDB's Python client its import of a missing pandas (``store/database.py``)."""

from __future__ import annotations

import importlib
import importlib.machinery
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
    opened = watcher.searches  # opening looks once, to learn whether pandas is installed
    try:
        database.write(lambda cursor: cursor.execute("INSERT INTO meta VALUES (?, ?)", ["k", "v"]))
        with database.read() as cursor:
            assert cursor.execute("SELECT value FROM meta WHERE key = ?", ["k"]).fetchone() == ("v",)
    finally:
        database.close()
    assert watcher.searches == opened <= 1
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("pandas")


def test_the_binding_would_search_for_pandas_on_every_statement(watcher: _Watcher) -> None:
    """What the finder saves: without it, DuckDB's client looks for pandas each time it binds parameters."""
    import duckdb

    missing = [f for f in sys.meta_path if isinstance(f, duck._Missing)]
    for finder in missing:
        sys.meta_path.remove(finder)
    try:
        connection = duckdb.connect()
        for n in range(3):
            connection.execute("SELECT ?", [n]).fetchone()
        connection.close()
    finally:
        sys.meta_path[0:0] = missing
    assert watcher.searches >= 3


def test_it_is_installed_once() -> None:
    duck.remember_pandas_missing()
    duck.remember_pandas_missing()
    assert sum(isinstance(f, duck._Missing) for f in sys.meta_path) == 1
