"""DuckDB's statements for what the store does most (``store/database.py``, ``store/cubes.py``): ``insert_table``
stores the same rows whether it binds them as parameters (a few rows) or scans them as an Arrow table (more), over
every column type of the cube tables; a read by name, and an update's changes to the live and version rows, go
through an index."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.cubes import LIVE_ROW_DUCKDB, VERSION_ROW_DUCKDB, one_cube
from memos_grpc.store.cursor import KeyTaken
from memos_grpc.store.database import BOUND_ROWS_MAX, Connection, DuckCursor, DuckDatabase
from memos_grpc.store.rows import CubeRow, insert_rows, next_version

NOW = datetime(2026, 12, 3, 12, 30, 15, 123456, tzinfo=UTC)


def _row(i: int) -> CubeRow:
    cube = cube_pb2.MemCube(
        name=f"spaces/s/cubes/c{i}", tags=["a", "b"][: i % 3], labels={"k": f"v{i}"} if i % 2 else {}
    )
    cube.plaintext.text = f"text {i}"
    cube.sensitivity_labels.extend(["pii"] if i % 4 == 0 else [])
    cube.access.principals.extend([f"p{i}"] if i % 3 == 0 else [])
    next_version(cube, 0, NOW)
    cube.create_time.CopyFrom(cube.update_time)
    if i % 5 == 0:
        cube.expire_time.FromDatetime(datetime(2027, 1, 1, tzinfo=UTC))
    vector = np.random.default_rng(i).standard_normal(8).astype(np.float32) if i % 2 == 0 else None
    return CubeRow("s", f"c{i}", cube, i if vector is not None else None, vector)


def _stored(database: DuckDatabase, table: str, ids: list[str]) -> list[tuple[object, ...]]:
    with database.read() as cursor:
        marks = ", ".join("?" for _ in ids)
        query = f"SELECT * EXCLUDE (cube_id) FROM {table} WHERE cube_id IN ({marks}) ORDER BY cube_id"
        return cursor.execute(query, ids).fetchall()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[DuckDatabase]:
    opened = DuckDatabase(tmp_path / "vault.duckdb", group_max=8)
    yield opened
    opened.close()


def test_bound_and_scanned_rows_are_stored_alike(database: DuckDatabase) -> None:
    bound = [_row(i) for i in range(BOUND_ROWS_MAX)]
    scanned = [_row(i) for i in range(BOUND_ROWS_MAX)]
    for row in scanned:
        row.cube_id = f"x{row.cube_id}"
    database.write(lambda cursor: insert_rows(cursor, bound))
    # Past the bound, one Arrow table: the same rows, with one more to take them over it.
    database.write(lambda cursor: insert_rows(cursor, [*scanned, _row(99)]))
    for table in ("cubes", "cube_versions"):
        assert _stored(database, table, [r.cube_id for r in bound]) == _stored(
            database, table, [r.cube_id for r in scanned]
        )
    with database.read() as cursor:
        stored = cursor.execute("SELECT labels, tags, expire_time FROM cubes WHERE cube_id = 'c0'").fetchone()
        assert stored == ({}, [], datetime(2027, 1, 1, tzinfo=UTC))
        assert cursor.execute("SELECT labels FROM cubes WHERE cube_id = 'c1'").fetchone() == ({"k": "v1"},)


def test_a_taken_key_raises_key_taken_on_either_path(database: DuckDatabase) -> None:
    database.write(lambda cursor: insert_rows(cursor, [_row(1)]))
    raised: list[bool] = []

    def insert_again(rows: list[CubeRow]) -> Callable[[Connection], None]:
        def apply(cursor: Connection) -> None:
            try:
                insert_rows(cursor, rows)
            except KeyTaken:
                raised.append(True)
            raise _RolledBack

        return apply

    for rows in ([_row(1)], [_row(1), *(_row(i) for i in range(10, 10 + BOUND_ROWS_MAX))]):
        with pytest.raises(_RolledBack):
            database.write(insert_again(rows))
    assert raised == [True, True]


class _RolledBack(Exception):
    """Ends a test's write after it looked at what the insert raised."""


def test_an_empty_table_inserts_nothing(database: DuckDatabase) -> None:
    empty = pa.table({"key": pa.array([], pa.string()), "value": pa.array([], pa.string())})

    def insert(cursor: object) -> None:
        assert isinstance(cursor, DuckCursor)
        cursor.insert_table("meta", empty)

    database.write(insert)
    with database.read() as cursor:
        assert cursor.execute("SELECT count(*) FROM meta WHERE value = ''").fetchone() == (0,)


def test_a_cube_read_by_name_goes_through_an_index(database: DuckDatabase) -> None:
    """The two-column key is no index DuckDB scans; ``one_cube`` reads the id through ``cubes_cube_id``."""
    rows = [_row(i) for i in range(300)]
    other = [_row(i) for i in range(5)]
    for row in other:
        row.space_id = "t"
    database.write(lambda cursor: insert_rows(cursor, [*rows, *other]))
    with database.read() as cursor:
        query = f"SELECT cube_id, space_id FROM {one_cube(cursor)}"
        assert cursor.execute(query, ["c3", "s"]).fetchall() == [("c3", "s")]
        assert cursor.execute(query, ["c3", "t"]).fetchall() == [("c3", "t")]
        assert cursor.execute(query, ["c7", "t"]).fetchall() == []
        plan = "\n".join(str(line) for _, line in cursor.execute("EXPLAIN ANALYZE " + query, ["c3", "s"]).fetchall())
    assert "Index Scan" in plan and "Sequential Scan" not in plan, plan


def _plan(cursor: Connection, statement: str, params: list[object]) -> str:
    return "\n".join(str(line) for _, line in cursor.execute("EXPLAIN ANALYZE " + statement, params).fetchall())


def test_an_update_finds_the_live_and_version_rows_through_indexes(database: DuckDatabase) -> None:
    """``replace`` on DuckDB: the live row by ``cubes_cube_id``, its version row by ``cube_versions_cube_id``, each
    changed by rowid; without the indexes either statement scans its table."""
    rows = [_row(i) for i in range(300)]
    other = [_row(i) for i in range(5)]
    for row in other:
        row.space_id = "t"
    database.write(lambda cursor: insert_rows(cursor, [*rows, *other]))
    with database.read() as cursor:
        live = cursor.execute(LIVE_ROW_DUCKDB, ["c2", "t"]).fetchall()
        assert [(version, embedding is not None) for _, version, embedding in live] == [(1, True)]
        assert cursor.execute(LIVE_ROW_DUCKDB, ["c7", "t"]).fetchall() == []
        assert cursor.execute(VERSION_ROW_DUCKDB, ["c2", "t", 1]).fetchall() != []
        assert cursor.execute(VERSION_ROW_DUCKDB, ["c2", "t", 2]).fetchall() == []
        for statement, params in [(LIVE_ROW_DUCKDB, ["c2", "s"]), (VERSION_ROW_DUCKDB, ["c2", "s", 1])]:
            plan = _plan(cursor, statement, params)
            assert "Index Scan" in plan and "Sequential Scan" not in plan, plan

    def keep(cursor: Connection) -> None:
        found = cursor.execute(VERSION_ROW_DUCKDB, ["c2", "t", 1]).fetchone()
        assert found is not None
        cursor.execute("UPDATE cube_versions SET embedding = ? WHERE rowid = ?", [b"\x01" * 32, found[0]])

    database.write(keep)
    with database.read() as cursor:
        kept = "SELECT space_id FROM cube_versions WHERE cube_id = 'c2' AND embedding IS NOT NULL"
        assert cursor.execute(kept).fetchall() == [("t",)]  # space s's version row of c2 is untouched
