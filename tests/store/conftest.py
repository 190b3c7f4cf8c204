"""Fixtures of the store's tests: a real database of each backend, fresh for each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_support import drop_database, fresh_database

from memos_grpc.store.blobs import Blobs, BlobStore
from memos_grpc.store.database import DuckDatabase
from memos_grpc.store.group_commit import Database
from memos_grpc.store.postgres.blobs import PgBlobStore
from memos_grpc.store.postgres.database import PostgresDatabase


@pytest.fixture(params=["duckdb", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An open database with the schema, closed (and, on PostgreSQL, dropped) after the test."""
    if request.param == "duckdb":
        opened: Database = DuckDatabase(tmp_path / "vault.duckdb", group_max=8)
        yield opened
        opened.close()
        return
    url = fresh_database()
    opened = PostgresDatabase(url, group_max=8)
    try:
        yield opened
    finally:
        opened.close()
        drop_database(url)


@pytest.fixture
def blob_store(database: Database, tmp_path: Path) -> Blobs:
    """The blob store of ``database``'s backend: files in a directory beside DuckDB, chunks in PostgreSQL."""
    if isinstance(database, PostgresDatabase):
        return PgBlobStore(database, tmp_path / "blobs" / "tmp")
    return BlobStore(tmp_path / "blobs")
