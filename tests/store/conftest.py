"""Fixtures of the store's tests: a real database on a fresh directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memos_grpc.store.database import Database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """An open DuckDB database with the schema, closed after the test."""
    opened = Database(tmp_path / "vault.duckdb", group_max=8)
    yield opened
    opened.close()
