"""DuckDB's statements for what the store does most (``store/database.py``, ``store/cubes.py``): ``insert_table``
stores the same rows whether it binds them as parameters (a few rows) or scans them as an Arrow table (more), over
every column type of the cube tables; rows named by id are read through an index, and deleted by rowid."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.cursor import KeyTaken
from memos_grpc.store.database import BOUND_ROWS_MAX, Connection, DuckCursor, DuckDatabase
from memos_grpc.store.named import NAMED_MAX, delete_named, named_rows, newest_versions, one_row, through_index
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


def _two_spaces(database: DuckDatabase) -> None:
    """300 cubes in space s and five of the same ids in space t."""
    rows = [_row(i) for i in range(300)]
    other = [_row(i) for i in range(5)]
    for row in other:
        row.space_id = "t"
    database.write(lambda cursor: insert_rows(cursor, [*rows, *other]))


def _plan(cursor: Connection, statement: str, params: list[object]) -> str:
    return "\n".join(str(line) for _, line in cursor.execute("EXPLAIN ANALYZE " + statement, params).fetchall())


@pytest.mark.parametrize("table", ["cubes", "cube_versions"])
def test_rows_named_by_id_are_read_through_an_index(database: DuckDatabase, table: str) -> None:
    """The two-column key is no index DuckDB scans; ``one_row`` and ``named_rows`` read the ids through the
    ``cube_id`` index of each table, and check the space above it."""
    _two_spaces(database)
    with database.read() as cursor:
        one = f"SELECT cube_id, space_id, version FROM {one_row(cursor, table)}"
        assert cursor.execute(one, ["c3", "s"]).fetchall() == [("c3", "s", 1)]
        assert cursor.execute(one, ["c3", "t"]).fetchall() == [("c3", "t", 1)]
        assert cursor.execute(one, ["c7", "t"]).fetchall() == []
        where, params = named_rows(cursor, table, "t", ["c2", "c3", "c9"])
        many = f"SELECT cube_id, space_id FROM {where} ORDER BY cube_id"
        assert cursor.execute(many, params).fetchall() == [("c2", "t"), ("c3", "t")]
        where, params = named_rows(cursor, table, "s", ["c2"])  # one id: as one_row
        assert cursor.execute(f"SELECT cube_id, space_id FROM {where}", params).fetchall() == [("c2", "s")]
        for statement, params in [(one, ["c3", "s"]), (many, named_rows(cursor, table, "s", ["c2", "c9"])[1])]:
            plan = _plan(cursor, statement, params)
            assert "Index Scan" in plan and "Sequential Scan" not in plan, plan
        # Past NAMED_MAX ids, one scan.
        ids = [f"c{i}" for i in range(NAMED_MAX + 1)]
        assert not through_index(cursor, len(ids))
        where, params = named_rows(cursor, table, "t", ids)
        assert len(cursor.execute(f"SELECT cube_id FROM {where}", params).fetchall()) == 5


def test_a_cubes_newest_versions_are_read_through_an_index(database: DuckDatabase) -> None:
    """An ORDER BY ... LIMIT over the index scan is planned as a sequential scan unless the rows are gathered
    first."""
    _two_spaces(database)

    def more_versions(cursor: Connection) -> None:
        for version in (2, 3):
            cursor.execute(
                "INSERT INTO cube_versions SELECT space_id, cube_id, ?, cube_pb, embedding, blob_digest, update_time "
                "FROM cube_versions WHERE cube_id = 'c3' AND version = 1",
                [version],
            )

    database.write(more_versions)
    with database.read() as cursor:
        statement = newest_versions(cursor)
        assert [v for v, _ in cursor.execute(statement, ["c3", "s", None, None, 10]).fetchall()] == [3, 2, 1]
        assert [v for v, _ in cursor.execute(statement, ["c3", "t", 3, 3, 1]).fetchall()] == [2]
        assert cursor.execute(statement, ["c7", "t", None, None, 10]).fetchall() == []
        plan = _plan(cursor, statement, ["c3", "s", None, None, 10])
    assert "Index Scan" in plan and "Sequential Scan" not in plan, plan


@pytest.mark.parametrize("count", [2, NAMED_MAX + 1])
def test_delete_named_deletes_those_rows_of_the_space_only(database: DuckDatabase, count: int) -> None:
    """By rowid through the index up to NAMED_MAX ids, by one scan past it: the same rows go either way."""
    _two_spaces(database)
    ids = [f"c{i}" for i in range(count)]
    database.write(lambda cursor: delete_named(cursor, "cubes", "t", ids))
    database.write(lambda cursor: delete_named(cursor, "cube_versions", "s", ids))
    with database.read() as cursor:
        assert cursor.execute("SELECT count(*) FROM cubes WHERE space_id = 't'").fetchone() == (5 - min(count, 5),)
        assert cursor.execute("SELECT count(*) FROM cubes WHERE space_id = 's'").fetchone() == (300,)
        assert cursor.execute("SELECT count(*) FROM cube_versions WHERE space_id = 't'").fetchone() == (5,)
        assert cursor.execute("SELECT count(*) FROM cube_versions WHERE space_id = 's'").fetchone() == (300 - count,)
