"""memos_grpc.store.usage on a real database: the rows recall uses are counted in, written in place, and the
catalog's copy of them after the commit."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.catalog import SearchCatalog
from memos_grpc.store.database import Connection, Database
from memos_grpc.store.rows import CubeRow, insert_rows, set_timestamp
from memos_grpc.store.usage import countable_cubes, overwrite_cubes, uses_committed

T0 = datetime(2030, 1, 1, tzinfo=UTC)
T1 = datetime(2030, 1, 2, tzinfo=UTC)


def _row(space_id: str, cube_id: str, vec_id: int | None, state: int = cube_pb2.LIFECYCLE_STATE_ACTIVATED) -> CubeRow:
    cube = cube_pb2.MemCube(
        name=f"spaces/{space_id}/cubes/{cube_id}", version=1, etag=f"etag-{cube_id}", state=state, usage_count=2
    )
    cube.plaintext.text = f"the text of {cube_id}"
    set_timestamp(cube.create_time, T0)
    set_timestamp(cube.update_time, T0)
    embedding = None if vec_id is None else np.ones(4, dtype=np.float32)
    return CubeRow(space_id, cube_id, cube, vec_id, embedding)


def _insert(database: Database, rows: list[CubeRow]) -> None:
    database.write(lambda cursor: insert_rows(cursor, rows))


def _countable(database: Database, space_id: str, cube_ids: list[str]) -> list[CubeRow]:
    with database.read() as cursor:
        return sorted(countable_cubes(cursor, space_id, cube_ids), key=lambda row: row.cube_id)


def test_countable_cubes_are_the_named_ones_there_and_not_expired(database: Database) -> None:
    _insert(
        database,
        [
            _row("s1", "a", 1),
            _row("s1", "b", None),
            _row("s1", "gone", 3, state=cube_pb2.LIFECYCLE_STATE_EXPIRED),
            _row("s1", "unnamed", 4),
            _row("s2", "a", 5),
        ],
    )
    found = _countable(database, "s1", ["a", "b", "gone", "missing"])
    assert [(row.space_id, row.cube_id, row.vec_id, row.embedding) for row in found] == [
        ("s1", "a", 1, None),
        ("s1", "b", None, None),
    ]
    assert found[0].cube == _row("s1", "a", 1).cube


def test_overwrite_replaces_the_messages_in_place_without_a_version(database: Database) -> None:
    _insert(database, [_row("s1", "a", 1), _row("s1", "b", 2), _row("s2", "a", 3)])
    changed = _countable(database, "s1", ["a", "b"])
    for row in changed:
        row.cube.usage_count += 5
        set_timestamp(row.cube.last_use_time, T1)

    def apply(cursor: Connection) -> None:
        overwrite_cubes(cursor, "s1", changed)
        overwrite_cubes(cursor, "s1", [])  # nothing to write: no statement

    database.write(apply)

    assert [row.cube for row in _countable(database, "s1", ["a", "b"])] == [row.cube for row in changed]
    assert [row.cube.usage_count for row in _countable(database, "s2", ["a"])] == [2]  # another space's "a"
    with database.read() as cursor:
        versions = cursor.execute("SELECT count(*) FROM cube_versions WHERE space_id = 's1'").fetchone()
    assert versions == (2,)  # as inserted: use is no new version


def test_the_catalog_takes_the_new_messages_of_rows_with_a_vector(database: Database) -> None:
    catalog = SearchCatalog()
    counted, unindexed = _row("s1", "a", 7), _row("s1", "b", None)
    counted.cube.usage_count = 9

    uses_committed(catalog, "s1", [counted, unindexed])

    live = catalog.live("s1", [7], T1.timestamp(), lambda access: True)
    assert cube_pb2.MemCube.FromString(live[7]).usage_count == 9
    assert catalog.size("s1") == 1
