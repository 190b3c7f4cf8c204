"""The change log on a real PostgreSQL: what each committed write changed for other servers, in commit order.

Writes go through the store as components make them (spaces, the cube vocabulary), and the log is read back with
the functions a following server uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc.errors import NotFoundError
from memos_grpc.settings import Settings
from memos_grpc.store.cubes import EmbeddedCubeStore
from memos_grpc.store.cursor import CUBES, SPACE, SPACE_REMOVED
from memos_grpc.store.interface import CubeWrite
from memos_grpc.store.opening import open_store
from memos_grpc.store.postgres.changes import CHANNEL, Change, changes_after, last_number
from memos_grpc.store.postgres.database import connection_options
from memos_grpc.store.rows import CubeRow, next_version
from memos_grpc.store.spaces import insert_space
from memos_grpc.store.store import Store
from memos_grpc.store.vectors import IndexParams

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DIMENSION = 8


@pytest.fixture
def store(tmp_path: Path, url: str) -> Iterator[Store]:
    params = IndexParams(dimension=DIMENSION, m=8, ef_construction=32, ef_search=32)
    opened = open_store(Settings(data_dir=tmp_path, postgres_url=url), params)[0]
    yield opened
    opened.close()


def _row(cubes: EmbeddedCubeStore, space_id: str, cube_id: str, seed: int) -> CubeRow:
    cube = cube_pb2.MemCube(name=f"spaces/{space_id}/cubes/{cube_id}", type=cube_pb2.MEMORY_TYPE_PLAINTEXT)
    cube.plaintext.text = f"cube {cube_id}"
    cube.create_time.FromDatetime(NOW)
    next_version(cube, 0, NOW)
    vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
    return CubeRow(space_id, cube_id, cube, cubes.new_labels(1)[0], vector / np.linalg.norm(vector))


def _log(store: Store) -> list[Change]:
    with store.database.read() as cursor:
        return changes_after(cursor, 0, 100)


def _space(store: Store, space_id: str) -> None:
    space = space_pb2.Space(name=f"spaces/{space_id}")
    store.database.write(lambda cursor: insert_space(cursor, space_id, space, NOW, "principals/ada"))


def test_each_write_logs_what_it_changed_numbered_in_commit_order(store: Store) -> None:
    cubes = EmbeddedCubeStore(store)
    _space(store, "notes")
    a, b = _row(cubes, "notes", "a", 1), _row(cubes, "notes", "b", 2)
    cubes.write(lambda write: write.create([a, b]), NOW)
    moved = _row(cubes, "notes", "a", 3)  # a new vector: a new label, the old one leaves
    next_version(moved.cube, 1, NOW)
    cubes.write(lambda write: write.replace(moved, a.vec_id), NOW)
    cubes.write(lambda write: write.remove("notes", ["b"]), NOW)
    cubes.write(lambda write: write.remove_space("notes"), NOW)

    log = _log(store)
    assert [change.number for change in log] == list(range(1, len(log) + 1))
    assert [(c.kind, c.space_id, c.put, c.removed) for c in log] == [
        (SPACE, "notes", (), ()),
        (CUBES, "notes", (a.vec_id, b.vec_id), ()),
        (CUBES, "notes", (moved.vec_id,), (a.vec_id,)),
        (CUBES, "notes", (), (b.vec_id,)),
        (SPACE_REMOVED, "notes", (), ()),
    ]
    assert {change.origin for change in log} == {store.database.origin}  # type: ignore[attr-defined]
    with store.database.read() as cursor:
        assert last_number(cursor) == len(log)


def test_a_write_that_fails_logs_nothing(store: Store) -> None:
    cubes = EmbeddedCubeStore(store)
    _space(store, "notes")
    before = _log(store)

    def fail(write: CubeWrite) -> None:
        write.create([_row(cubes, "notes", "a", 1)])
        write.space("no-such-space")

    with pytest.raises(NotFoundError):
        cubes.write(fail, NOW)
    assert _log(store) == before


def test_a_commit_notifies_its_last_number(store: Store, url: str) -> None:
    with psycopg.connect(**connection_options(url)) as listener:
        listener.execute(f"LISTEN {CHANNEL}".encode())
        _space(store, "first")
        _space(store, "second")
        payloads = [note.payload for note in listener.notifies(timeout=30, stop_after=2)]
    assert payloads == ["1", "2"]
