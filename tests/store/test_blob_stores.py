"""Both blob stores against one contract: the files of the embedded backend and PostgreSQL's chunks.

Writes (committed, refused, aborted), adopted files, sizes, ranged reads across PostgreSQL's 1 MiB chunk
boundaries, what a missing blob or an offset past the end raises, deletion (also from the applier thread, where
the store's removals call it), and the same bytes stored twice. Then what only PostgreSQL does: a blob's chunks
go in the transaction that deletes its ``blobs`` row.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError, NotFoundError, ResourceExhaustedError
from memos_grpc.store.blobs import Blobs, BlobStore
from memos_grpc.store.group_commit import Database
from memos_grpc.store.postgres.blobs import CHUNK_BYTES, PgBlobStore
from memos_grpc.store.postgres.database import PostgresDatabase
from memos_grpc.store.removal import release_orphan_blobs
from memos_grpc.store.uploads import register_blob

#: Two full PostgreSQL chunks and a part of a third.
SIZE = 2 * CHUNK_BYTES + 12_345
DATA = random.Random(7).randbytes(SIZE)
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _commit(store: Blobs, data: bytes, piece: int = 300_001) -> str:
    writer = store.writer(max_bytes=max(len(data), 1))
    for start in range(0, len(data), piece):
        writer.write(data[start : start + piece])
    assert (writer.size, writer.digest) == (len(data), _digest(data))
    return writer.commit()


def _read(store: Blobs, digest: str, offset: int = 0, limit: int = 0, chunk_bytes: int = 65_537) -> bytes:
    pieces = list(store.read(digest, offset=offset, limit=limit, chunk_bytes=chunk_bytes))
    assert all(0 < len(piece) <= chunk_bytes for piece in pieces)
    return b"".join(pieces)


def _temp_files(store: Blobs) -> list[str]:
    return sorted(path.name for path in store.temp_dir.iterdir())


def test_a_committed_blob_is_stored_under_its_digest(blob_store: Blobs) -> None:
    digest = _commit(blob_store, DATA)
    assert digest == _digest(DATA)
    assert blob_store.exists(digest)
    assert blob_store.size(digest) == SIZE
    assert _read(blob_store, digest) == DATA
    assert _temp_files(blob_store) == []


@dataclass(frozen=True)
class Range:
    name: str
    offset: int
    limit: int


RANGES = [
    Range("the whole blob", 0, 0),
    Range("a few bytes of the first chunk", 0, 8),
    Range("across the first chunk boundary", CHUNK_BYTES - 3, 6),
    Range("exactly the second chunk", CHUNK_BYTES, CHUNK_BYTES),
    Range("over three chunks", CHUNK_BYTES - 1, CHUNK_BYTES + 2),
    Range("from a chunk boundary to the end", 2 * CHUNK_BYTES, 0),
    Range("a limit past the end", SIZE - 10, 100),
    Range("the last byte", SIZE - 1, 0),
    Range("at the end: nothing", SIZE, 0),
]


@pytest.mark.parametrize("case", RANGES, ids=[case.name for case in RANGES])
def test_a_ranged_read_returns_those_bytes_only(blob_store: Blobs, case: Range) -> None:
    digest = _commit(blob_store, DATA)
    end = SIZE if case.limit == 0 else case.offset + case.limit
    assert _read(blob_store, digest, case.offset, case.limit) == DATA[case.offset : end]


def test_blobs_of_no_bytes_and_of_whole_chunks(blob_store: Blobs) -> None:
    for data in (b"", DATA[: 2 * CHUNK_BYTES]):
        digest = _commit(blob_store, data)
        assert blob_store.exists(digest)
        assert blob_store.size(digest) == len(data)
        assert _read(blob_store, digest) == data
        assert _read(blob_store, digest, offset=len(data)) == b""


def test_a_missing_blob_is_not_found(blob_store: Blobs) -> None:
    digest = _digest(b"never stored")
    assert not blob_store.exists(digest)
    with pytest.raises(NotFoundError) as unread:
        _read(blob_store, digest)
    with pytest.raises(NotFoundError) as unsized:
        blob_store.size(digest)
    assert unread.value.reason == unsized.value.reason == reasons.BLOB_NOT_FOUND


def test_an_offset_past_the_end_is_refused(blob_store: Blobs) -> None:
    digest = _commit(blob_store, DATA)
    with pytest.raises(InvalidArgumentError) as refused:
        _read(blob_store, digest, offset=SIZE + 1)
    assert refused.value.reason == reasons.OFFSET_OUT_OF_RANGE


def test_a_malformed_digest_is_refused(blob_store: Blobs) -> None:
    for call in (blob_store.exists, blob_store.size, blob_store.delete):
        with pytest.raises(InvalidArgumentError) as refused:
            call("sha256:NOT-HEX")
        assert refused.value.reason == reasons.INVALID_DIGEST


def test_too_large_a_blob_is_refused_and_leaves_nothing(blob_store: Blobs) -> None:
    writer = blob_store.writer(max_bytes=10)
    writer.write(b"123456")
    with pytest.raises(ResourceExhaustedError) as refused:
        writer.write(b"789012")
    assert refused.value.reason == reasons.PAYLOAD_TOO_LARGE
    writer.abort()
    assert not blob_store.exists(_digest(b"123456789012"))
    assert not blob_store.exists(_digest(b"123456"))
    assert _temp_files(blob_store) == []


def test_an_adopted_file_becomes_the_blob_and_is_consumed(blob_store: Blobs) -> None:
    staged = blob_store.staging_path()
    staged.write_bytes(DATA)
    blob_store.adopt(staged, _digest(DATA))
    assert not staged.exists()
    assert blob_store.size(_digest(DATA)) == SIZE
    assert _read(blob_store, _digest(DATA), CHUNK_BYTES - 1, 2) == DATA[CHUNK_BYTES - 1 : CHUNK_BYTES + 1]


def test_the_same_bytes_stored_twice_are_one_blob(blob_store: Blobs) -> None:
    first = _commit(blob_store, DATA)
    assert _commit(blob_store, DATA, piece=CHUNK_BYTES) == first
    staged = blob_store.staging_path()
    staged.write_bytes(DATA)
    blob_store.adopt(staged, first)
    assert not staged.exists()
    assert blob_store.size(first) == SIZE
    assert _read(blob_store, first) == DATA
    assert _temp_files(blob_store) == []


def test_a_deleted_blob_is_gone_and_deleting_it_again_is_harmless(blob_store: Blobs) -> None:
    kept, dropped = _commit(blob_store, b"kept"), _commit(blob_store, DATA)
    blob_store.delete(dropped)
    assert not blob_store.exists(dropped)
    with pytest.raises(NotFoundError):
        blob_store.size(dropped)
    blob_store.delete(dropped)
    assert _read(blob_store, kept) == b"kept"


def test_a_blob_can_be_deleted_after_a_commit_on_the_applier_thread(blob_store: Blobs, database: Database) -> None:
    """Where ``removal.forget_removed`` deletes the blobs a removal released; a store that queued a write there
    would wait for the applier forever."""
    digest = _commit(blob_store, DATA)
    done = database.submit(lambda cursor: None, after_commit=lambda _: blob_store.delete(digest))
    done.result(timeout=60)
    assert not blob_store.exists(digest)


def test_temporary_files_left_by_a_crash_are_removed_when_the_store_opens(
    blob_store: Blobs, database: Database
) -> None:
    leftover = blob_store.staging_path()
    leftover.write_bytes(b"half an upload")
    if isinstance(blob_store, PgBlobStore):
        assert isinstance(database, PostgresDatabase)
        PgBlobStore(database, blob_store.temp_dir)
    else:
        assert isinstance(blob_store, BlobStore)
        BlobStore(blob_store.root)
    assert not leftover.exists()


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_on_postgres_a_blob_is_chunks_that_go_with_its_row(blob_store: Blobs, database: Database) -> None:
    """Stored once as 1 MiB chunks; the transaction that deletes the ``blobs`` row deletes the chunks, so no crash
    between that commit and the applier's clean-up leaves the bytes behind."""
    digest = _commit(blob_store, DATA)
    _commit(blob_store, DATA)
    with database.read() as cursor:
        chunks = cursor.execute(
            "SELECT chunk, length(data) FROM blob_chunks WHERE digest = ? ORDER BY chunk", [digest]
        ).fetchall()
    assert chunks == [(0, CHUNK_BYTES), (1, CHUNK_BYTES), (2, SIZE - 2 * CHUNK_BYTES)]

    unnamed = _commit(blob_store, b"bytes stored before their row")
    database.write(lambda cursor: register_blob(cursor, digest, SIZE, "application/octet-stream", T0))
    released = database.write(lambda cursor: release_orphan_blobs(cursor, T0 + timedelta(days=1)))
    assert released.blobs == [digest]
    with database.read() as cursor:
        left = cursor.execute("SELECT DISTINCT digest FROM blob_chunks").fetchall()
    assert left == [(unnamed,)], "the released blob's chunks went in its commit; bytes with no row yet stay"
