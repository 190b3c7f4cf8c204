"""Two stores on one PostgreSQL database: each follows the other's writes through the change log.

Each store has its own data directory and its own search catalog, as two servers sharing the database would (the
vectors and BM25 documents are the database's rows). What one writes, the other finds by vector, by word and in its
catalog once its follower has applied the change; removals and a removed space reach it too, and so do changes
made while its follower's connection was cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc.settings import Settings
from memos_grpc.store.cubes import EmbeddedCubeStore
from memos_grpc.store.opening import open_store
from memos_grpc.store.postgres.changes import last_number
from memos_grpc.store.postgres.database import connection_options
from memos_grpc.store.postgres.follower import APPLICATION_NAME
from memos_grpc.store.rows import CubeRow, next_version
from memos_grpc.store.spaces import insert_space, space_created
from memos_grpc.store.store import Store
from memos_grpc.store.vectors import IndexParams

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DIMENSION = 8
#: Seconds a follower may take to apply a change before the test gives up (it is woken at the commit).
APPLIED_WITHIN = 30.0


def _open(data_dir: Path, url: str) -> Store:
    params = IndexParams(dimension=DIMENSION, m=8, ef_construction=32, ef_search=32)
    store = open_store(Settings(data_dir=data_dir, postgres_url=url), params)[0]
    assert store.follower is not None
    store.follower.start()
    return store


@pytest.fixture
def pair(tmp_path: Path, url: str) -> Iterator[tuple[Store, Store]]:
    first, second = _open(tmp_path / "a", url), _open(tmp_path / "b", url)
    yield first, second
    second.close()
    first.close()


def _row(cubes: EmbeddedCubeStore, cube_id: str, text: str, seed: int) -> CubeRow:
    cube = cube_pb2.MemCube(name=f"spaces/notes/cubes/{cube_id}", type=cube_pb2.MEMORY_TYPE_PLAINTEXT)
    cube.plaintext.text = text
    cube.create_time.FromDatetime(NOW)
    next_version(cube, 0, NOW)
    vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
    return CubeRow("notes", cube_id, cube, cubes.new_labels(1)[0], vector / np.linalg.norm(vector))


def _caught_up(writer: Store, follower: Store) -> None:
    """Waits until ``follower`` has applied everything committed so far."""
    with writer.database.read() as cursor:
        number = last_number(cursor)
    assert follower.follower is not None
    assert follower.follower.wait_for(number, APPLIED_WITHIN), f"change {number} not applied"


def _found_by_vector(store: Store, row: CubeRow) -> bool:
    assert row.embedding is not None
    return row.vec_id in {label for label, _ in store.indexes.get("notes").search(row.embedding, 10)}


def _found_by_word(store: Store, word: str) -> list[int]:
    assert store.catalog.lexical is not None
    store.catalog.lexical.refresh()
    return [label for label, _ in store.catalog.lexical.search("notes", word, 10)]


def _create_space(store: Store) -> None:
    space = space_pb2.Space(name="spaces/notes")
    store.database.write(lambda cursor: insert_space(cursor, "notes", space, NOW, "principals/ada"))
    space_created(store.catalog, "notes", "principals/ada", space)


def test_what_one_store_writes_the_other_finds_after_following(pair: tuple[Store, Store]) -> None:
    first, second = pair
    _create_space(first)
    cubes = EmbeddedCubeStore(first)
    heron, otter = _row(cubes, "heron", "the heron waits", 1), _row(cubes, "otter", "the otter dives", 2)
    cubes.write(lambda write: write.create([heron, otter]), NOW)
    _caught_up(first, second)

    assert second.catalog.role_of("notes", "principals/ada") == 3  # OWNER
    assert second.catalog.size("notes") == 2
    assert _found_by_vector(second, heron) and _found_by_vector(second, otter)
    assert _found_by_word(second, "heron") == [heron.vec_id]

    moved = _row(cubes, "heron", "the heron flies off", 3)  # a new version with a new vector and label
    next_version(moved.cube, 1, NOW)
    cubes.write(lambda write: write.replace(moved, heron.vec_id), NOW)
    cubes.write(lambda write: write.remove("notes", ["otter"]), NOW)
    _caught_up(first, second)

    assert second.catalog.size("notes") == 1
    assert _found_by_vector(second, moved) and not _found_by_vector(second, otter)
    assert not _found_by_vector(second, heron)
    assert _found_by_word(second, "flies") == [moved.vec_id]
    assert _found_by_word(second, "otter") == []

    cubes.write(lambda write: write.remove_space("notes"), NOW)
    _caught_up(first, second)
    assert not second.catalog.has_space("notes")


def test_changes_made_while_the_followers_connection_was_down_are_applied_after(pair: tuple[Store, Store]) -> None:
    first, second = pair
    _create_space(first)
    _caught_up(first, second)
    with psycopg.connect(**connection_options(first.database.url)) as admin:  # type: ignore[attr-defined]
        # Cut every follower's session, as a network failure or a restart would.
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION_NAME]
        )
    cubes = EmbeddedCubeStore(first)
    kingfisher = _row(cubes, "kingfisher", "the kingfisher", 4)
    cubes.write(lambda write: write.create([kingfisher]), NOW)
    _caught_up(first, second)
    assert _found_by_vector(second, kingfisher)
