"""The store's cube writes, without the wire: what each change leaves in DuckDB, the vector index, the search
catalog, the BM25 index and the blob files, on a real store opened from a directory."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from postgres_support import drop_database, fresh_database

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc.errors import AlreadyExistsError, NotFoundError
from memos_grpc.settings import Settings
from memos_grpc.store.cubes import EmbeddedCubeStore
from memos_grpc.store.interface import CubeWrite
from memos_grpc.store.opening import open_store
from memos_grpc.store.rows import CubeRow, next_version
from memos_grpc.store.spaces import insert_space, space_created
from memos_grpc.store.store import Store
from memos_grpc.store.vectors import IndexParams

DIMENSION = 8
SPACE = "notes"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _open(data_dir: Path, postgres_url: str = "") -> Store:
    settings = Settings(data_dir=data_dir, postgres_url=postgres_url)
    params = IndexParams(dimension=DIMENSION, m=8, ef_construction=32, ef_search=32)
    return open_store(settings, params)[0]


@pytest.fixture(params=["duckdb", "postgres"])
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Empty for the embedded backend; a fresh database's URL for PostgreSQL."""
    if request.param == "duckdb":
        yield ""
        return
    url = fresh_database()
    yield url
    drop_database(url)


def _open_with_space(data_dir: Path, postgres_url: str) -> Store:
    opened = _open(data_dir, postgres_url)
    space = space_pb2.Space(name=f"spaces/{SPACE}")
    opened.database.write(lambda cursor: insert_space(cursor, SPACE, space, NOW, "principals/ada"))
    space_created(opened.catalog, SPACE, "principals/ada", space)
    return opened


def _label_after_reopening(data_dir: Path, postgres_url: str) -> int:
    """The next label a store reopened on ``data_dir`` issues."""
    reopened = _open(data_dir, postgres_url)
    try:
        return EmbeddedCubeStore(reopened).new_labels(1)[0]
    finally:
        reopened.close()


@pytest.fixture
def store(tmp_path: Path, postgres_url: str) -> Iterator[Store]:
    opened = _open_with_space(tmp_path, postgres_url)
    yield opened
    opened.close()


def _vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _row(cubes: EmbeddedCubeStore, cube_id: str, text: str, seed: int, blob: str = "") -> CubeRow:
    cube = cube_pb2.MemCube(name=f"spaces/{SPACE}/cubes/{cube_id}", type=cube_pb2.MEMORY_TYPE_PLAINTEXT)
    cube.plaintext.text = text
    cube.create_time.FromDatetime(NOW)
    next_version(cube, 0, NOW)
    if blob:
        cube.ClearField("plaintext")
        cube.type = cube_pb2.MEMORY_TYPE_ACTIVATION
        cube.activation.blob.digest = blob
    return CubeRow(SPACE, cube_id, cube, cubes.new_labels(1)[0], _vector(seed))


def _stored(store: Store, sql: str, *params: object) -> list[tuple[object, ...]]:
    with store.database.read() as cursor:
        return cursor.execute(sql, list(params)).fetchall()


def _indexed(store: Store, row: CubeRow) -> bool:
    """Whether the space's index answers a search for the row's vector with the row's label."""
    assert row.embedding is not None
    return row.vec_id in {label for label, _ in store.indexes.get(SPACE).search(row.embedding, 10)}


def test_create_writes_the_row_a_version_the_vector_the_catalog_and_the_words(store: Store) -> None:
    cubes = EmbeddedCubeStore(store)
    row = _row(cubes, "a", "the heron stands in the shallows", 1)
    cubes.write(lambda write: write.create([row]), NOW)

    assert _stored(store, "SELECT cube_id, version FROM cubes") == [("a", 1)]
    assert _stored(store, "SELECT cube_id, version FROM cube_versions") == [("a", 1)]
    index = store.indexes.get(SPACE)
    assert row.vec_id is not None
    assert index.search(row.embedding, 1)[0][0] == row.vec_id  # type: ignore[arg-type]
    assert store.catalog.size(SPACE) == 1
    assert store.catalog.lexical is not None
    store.catalog.lexical.refresh()
    assert [label for label, _ in store.catalog.lexical.search(SPACE, "heron", 5)] == [row.vec_id]


def test_a_taken_id_writes_nothing(store: Store) -> None:
    cubes = EmbeddedCubeStore(store)
    cubes.write(lambda write: write.create([_row(cubes, "a", "first", 1)]), NOW)
    again = _row(cubes, "a", "second", 2)
    with pytest.raises(AlreadyExistsError):
        cubes.write(lambda write: write.create([again]), NOW)
    assert _stored(store, "SELECT count(*) FROM cubes") == [(1,)]
    assert store.catalog.size(SPACE) == 1


def test_a_failed_preindexed_write_takes_its_vectors_out_again(store: Store) -> None:
    cubes = EmbeddedCubeStore(store)
    rows = [_row(cubes, "a", "first", 1), _row(cubes, "b", "second", 2)]
    labels = [r.vec_id for r in rows if r.vec_id is not None]

    def fail(write: CubeWrite) -> None:
        write.create(rows)
        write.space("no-such-space")  # raises inside the transaction: nothing commits

    with pytest.raises(NotFoundError):
        cubes.write(fail, NOW, preindexed=cubes.preindex(SPACE, labels, np.stack([r.embedding for r in rows])))
    assert _stored(store, "SELECT count(*) FROM cubes") == [(0,)]
    assert not any(_indexed(store, r) for r in rows)
    assert store.catalog.size(SPACE) == 0


def test_replace_with_a_new_vector_moves_the_label_and_keeps_both_versions(store: Store) -> None:
    cubes = EmbeddedCubeStore(store)
    first = _row(cubes, "a", "the heron", 1)
    cubes.write(lambda write: write.create([first]), NOW)
    old_label = first.vec_id
    assert _indexed(store, first)
    later = NOW + timedelta(minutes=1)

    def change(write: CubeWrite) -> CubeRow:
        current = write.row(SPACE, "a")
        assert current is not None
        current.cube.plaintext.text = "the kingfisher"
        next_version(current.cube, current.cube.version, write.now)
        current.vec_id, current.embedding = cubes.new_labels(1)[0], _vector(3)
        write.replace(current, old_label)
        return current

    updated = cubes.write(change, later)
    assert updated.cube.version == 2 and updated.vec_id != old_label
    assert _stored(store, "SELECT version FROM cube_versions ORDER BY version") == [(1,), (2,)]
    assert _stored(store, "SELECT vec_id FROM cubes") == [(updated.vec_id,)]
    assert not _indexed(store, first) and _indexed(store, updated)
    assert store.catalog.size(SPACE) == 1
    assert store.catalog.lexical is not None
    store.catalog.lexical.refresh()
    assert store.catalog.lexical.search(SPACE, "heron", 5) == []
    assert [label for label, _ in store.catalog.lexical.search(SPACE, "kingfisher", 5)] == [updated.vec_id]

    # Each version keeps the vector it had; the live version's is stored once, in the live row.
    def versions(write: CubeWrite) -> list[object]:
        return [found.embedding if (found := write.version(SPACE, "a", n)) else None for n in (1, 2)]

    kept = cubes.write(versions, later)
    np.testing.assert_array_equal(kept[0], first.embedding)
    np.testing.assert_array_equal(kept[1], _vector(3))
    assert _stored(store, "SELECT version, embedding IS NULL FROM cube_versions ORDER BY version") == [
        (1, False),
        (2, True),
    ]


def test_two_replaces_in_one_write_keep_every_version_and_leave_the_same_id_elsewhere_alone(store: Store) -> None:
    """The second replace finds the live row the first one wrote in the same transaction (on DuckDB by rowid)."""
    cubes = EmbeddedCubeStore(store)
    store.database.write(lambda cursor: insert_space(cursor, "other", space_pb2.Space(name="spaces/other"), NOW, ""))
    first, twin = _row(cubes, "a", "the heron", 1), _row(cubes, "a", "the heron", 2)
    twin.space_id, twin.cube.name = "other", "spaces/other/cubes/a"
    cubes.write(lambda write: write.create([first, twin]), NOW)

    def change(write: CubeWrite) -> None:
        for seed in (3, 4):
            current = write.row(SPACE, "a")
            assert current is not None
            current.cube.plaintext.text = f"the kingfisher {seed}"
            next_version(current.cube, current.cube.version, write.now)
            previous, (current.vec_id,), current.embedding = current.vec_id, cubes.new_labels(1), _vector(seed)
            write.replace(current, previous)

    cubes.write(change, NOW + timedelta(minutes=1))

    def versions(write: CubeWrite, space_id: str, count: int) -> list[object]:
        return [found.embedding if (found := write.version(space_id, "a", n)) else None for n in range(1, count + 1)]

    kept = cubes.write(lambda write: versions(write, SPACE, 3), NOW)
    for vector, expected in zip(kept, [first.embedding, _vector(3), _vector(4)], strict=True):
        np.testing.assert_array_equal(vector, expected)
    assert _stored(store, "SELECT count(*) FROM cubes WHERE space_id = ?", SPACE) == [(1,)]
    np.testing.assert_array_equal(cubes.write(lambda write: versions(write, "other", 1), NOW)[0], twin.embedding)
    assert _stored(store, "SELECT version, embedding IS NULL FROM cube_versions WHERE space_id = 'other'") == [
        (1, True)
    ]


def test_a_retired_row_leaves_its_vector_with_its_version(store: Store) -> None:
    """An import's new version of a cube: ``retire`` then ``create`` in one write; version 1 keeps its vector."""
    cubes = EmbeddedCubeStore(store)
    first = _row(cubes, "a", "the heron", 1)
    cubes.write(lambda write: write.create([first]), NOW)
    second = _row(cubes, "a", "the kingfisher", 2)
    next_version(second.cube, 1, NOW)

    def change(write: CubeWrite) -> None:
        write.retire(SPACE, ["a"])
        write.forget_labels(SPACE, [first.vec_id] if first.vec_id is not None else [])
        write.create([second])

    cubes.write(change, NOW)
    old = cubes.write(lambda write: write.version(SPACE, "a", 1), NOW)
    assert old is not None
    np.testing.assert_array_equal(old.embedding, first.embedding)


def test_remove_takes_the_cube_from_every_store_and_releases_its_blob(store: Store, tmp_path: Path) -> None:
    cubes = EmbeddedCubeStore(store)
    payload = b"a cache of keys and values"
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    staged = store.blobs.staging_path()
    staged.write_bytes(payload)
    store.adopt_blob(staged, digest)
    row = _row(cubes, "a", "", 1, blob=digest)

    def create(write: CubeWrite) -> None:
        write.register_blobs([(digest, len(payload), "application/octet-stream", NOW)])
        write.create([row])

    cubes.write(create, NOW)
    assert store.blobs.exists(digest) and _indexed(store, row)
    removed = cubes.write(lambda write: write.remove(SPACE, ["a"]), NOW)

    assert (removed.cubes, removed.blobs) == (1, [digest])
    assert _stored(store, "SELECT count(*) FROM cubes") == [(0,)]
    assert _stored(store, "SELECT count(*) FROM cube_versions") == [(0,)]
    assert _stored(store, "SELECT count(*) FROM blobs") == [(0,)]
    assert not store.blobs.exists(digest)
    assert not _indexed(store, row)
    assert store.catalog.size(SPACE) == 0


def test_expire_leaves_a_tombstone_and_nothing_searchable(store: Store) -> None:
    cubes = EmbeddedCubeStore(store)
    row = _row(cubes, "a", "the heron", 1)
    row.cube.expire_time.FromDatetime(NOW + timedelta(hours=1))
    cubes.write(lambda write: write.create([row]), NOW)
    assert _indexed(store, row) and store.catalog.size(SPACE) == 1
    later = NOW + timedelta(hours=2)
    removed = cubes.write(lambda write: write.expire(SPACE, ["a"], timedelta(days=30)), later)

    assert removed.expired == 1
    assert _stored(store, "SELECT state, vec_id FROM cubes") == [(cube_pb2.LIFECYCLE_STATE_EXPIRED, None)]
    assert _stored(store, "SELECT count(*) FROM cube_versions") == [(0,)]
    assert not _indexed(store, row)
    assert store.catalog.size(SPACE) == 0


def test_labels_are_never_issued_twice_across_a_reopen(tmp_path: Path, postgres_url: str) -> None:
    opened = _open_with_space(tmp_path, postgres_url)
    cubes = EmbeddedCubeStore(opened)
    row = _row(cubes, "a", "kept", 1)
    cubes.write(lambda write: write.create([row]), NOW)
    cubes.write(lambda write: write.remove(SPACE, ["a"]), NOW)  # the highest label is no longer in any row
    opened.close()

    again = _label_after_reopening(tmp_path, postgres_url)
    # The removed cube's label is past every row, but its write made it durable: it is never issued again.
    assert row.vec_id is not None and again > row.vec_id


def test_labels_of_a_removed_space_are_never_issued_again(tmp_path: Path, postgres_url: str) -> None:
    """Creating cubes writes no label mark (their labels are in their rows); removing the space that holds the
    highest label, with its index file, records every label issued so far."""
    opened = _open_with_space(tmp_path, postgres_url)
    cubes = EmbeddedCubeStore(opened)
    rows = [_row(cubes, name, "kept", 1) for name in ("a", "b")]
    cubes.write(lambda write: write.create(rows), NOW)
    if opened.database.dialect == "duckdb":
        with opened.database.read() as cursor:
            mark = cursor.execute("SELECT value FROM meta WHERE key = 'last_vec_id'").fetchone()
        assert mark is None, "a create wrote the label mark"
    cubes.write(lambda write: write.remove_space(SPACE), NOW)
    opened.close()

    assert _label_after_reopening(tmp_path, postgres_url) > max(row.vec_id or 0 for row in rows)


def test_the_database_checkpoints_at_the_configured_log_size(tmp_path: Path) -> None:
    """``checkpoint_threshold_mb`` reaches DuckDB (its own 16 MB default checkpointed every few ingest batches)."""
    settings = Settings(data_dir=tmp_path, checkpoint_threshold_mb=64)
    opened = open_store(settings, IndexParams(dimension=DIMENSION, m=8, ef_construction=32, ef_search=32))[0]
    try:
        with opened.database.read() as cursor:
            found = cursor.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
    finally:
        opened.close()
    assert found is not None and found[0] == "61.0 MiB"  # 64 MB, as DuckDB prints it in MiB
