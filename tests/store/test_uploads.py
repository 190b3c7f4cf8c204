"""memos_grpc.store.uploads on a real database and blob directory: blob writes, blob and upload rows, the reads
that decide who may name a blob."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _stored_cubes import cube_row, insert_cubes

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, space_pb2
from memos_grpc.errors import InvalidArgumentError, ResourceExhaustedError
from memos_grpc.store.blobs import BlobStore
from memos_grpc.store.catalog import SearchCatalog
from memos_grpc.store.database import Connection, Database
from memos_grpc.store.uploads import (
    StoredBlob,
    named_by_readable_cube,
    record_upload,
    register_blob,
    store_blob,
    uploaded_since,
)
from memos_grpc.store.visibility import Caller, CubeVisibility

T0 = datetime(2030, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
ALICE, BOB = "principals/alice", "principals/bob"


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _stored_files(blobs: BlobStore) -> list[Path]:
    return sorted(path for path in blobs.root.rglob("*") if path.is_file())


def test_chunks_become_one_blob_under_their_digest(blobs: BlobStore) -> None:
    stored = store_blob(blobs, [b"hello, ", b"", b"world"], 64)
    assert stored == StoredBlob(_digest(b"hello, world"), 12)
    assert blobs.path_for(stored.digest).read_bytes() == b"hello, world"
    assert store_blob(blobs, [b"hello, world"], 64) == stored  # identical bytes: one file
    assert _stored_files(blobs) == [blobs.path_for(stored.digest)]


def test_the_acceptance_check_sees_every_byte_and_a_refusal_leaves_nothing(blobs: BlobStore) -> None:
    seen: list[tuple[int, str]] = []

    def refuse(size: int, digest: str) -> None:
        seen.append((size, digest))
        raise InvalidArgumentError("not what was announced", reason="PAYLOAD_DIGEST_MISMATCH")

    with pytest.raises(InvalidArgumentError):
        store_blob(blobs, [b"abc", b"def"], 64, refuse)
    assert seen == [(6, _digest(b"abcdef"))]
    assert not blobs.exists(_digest(b"abcdef"))
    assert _stored_files(blobs) == []  # no temporary file either


def test_a_stream_that_fails_midway_leaves_nothing(blobs: BlobStore) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"first part"
        raise InvalidArgumentError("message 1 sets a header field", reason="INVALID_STREAM")

    with pytest.raises(InvalidArgumentError):
        store_blob(blobs, chunks(), 64)
    assert _stored_files(blobs) == []


def test_more_bytes_than_allowed_are_refused_and_leave_nothing(blobs: BlobStore) -> None:
    with pytest.raises(ResourceExhaustedError) as refused:
        store_blob(blobs, [b"12345", b"6"], 5)
    assert refused.value.reason == "PAYLOAD_TOO_LARGE"
    assert _stored_files(blobs) == []


def test_a_known_blob_keeps_its_first_row(database: Database) -> None:
    digest = _digest(b"x")
    database.write(lambda cursor: register_blob(cursor, digest, 1, "text/plain", T0))
    database.write(lambda cursor: register_blob(cursor, digest, 1, "application/octet-stream", T0 + MINUTE))
    with database.read() as cursor:
        rows = cursor.execute("SELECT digest, size_bytes, media_type, create_time FROM blobs").fetchall()
    assert rows == [(digest, 1, "text/plain", T0)]


def test_an_upload_counts_from_its_latest_time_and_only_for_its_space_and_principal(database: Database) -> None:
    digest = _digest(b"payload")

    def apply(cursor: Connection) -> None:
        register_blob(cursor, digest, 7, "text/plain", T0)
        record_upload(cursor, "s", ALICE, digest, T0 + 2 * MINUTE)
        record_upload(cursor, "s", ALICE, digest, T0)  # an older record does not move it back

    database.write(apply)
    with database.read() as cursor:
        assert uploaded_since(cursor, "s", ALICE, digest, T0 + 2 * MINUTE)
        assert not uploaded_since(cursor, "s", ALICE, digest, T0 + 3 * MINUTE)
        assert not uploaded_since(cursor, "other", ALICE, digest, T0)
        assert not uploaded_since(cursor, "s", BOB, digest, T0)
    database.write(lambda cursor: record_upload(cursor, "s", ALICE, digest, T0 + 5 * MINUTE))
    with database.read() as cursor:
        assert uploaded_since(cursor, "s", ALICE, digest, T0 + 5 * MINUTE)


def test_an_upload_of_a_blob_that_is_gone_does_not_count(database: Database) -> None:
    digest = _digest(b"released")
    database.write(lambda cursor: record_upload(cursor, "s", ALICE, digest, T0))
    with database.read() as cursor:
        assert not uploaded_since(cursor, "s", ALICE, digest, T0 - MINUTE)


def test_a_blob_is_named_by_a_cube_only_for_those_who_may_read_that_cube_in_full(database: Database) -> None:
    private, labelled, stale = _digest(b"private"), _digest(b"labelled"), _digest(b"stale")
    insert_cubes(
        database,
        [
            cube_row("s", "mine", created=T0, owner=ALICE, scope=cube_pb2.CubeAccess.SCOPE_OWNER, blob=private),
            cube_row("s", "labelled", created=T0, owner=ALICE, blob=labelled, labels=("pii",)),
            cube_row("s", "expired", created=T0, expires=T0 + MINUTE, owner=ALICE, blob=stale),
        ],
    )
    catalog = SearchCatalog()
    catalog.add_space(
        "s",
        {ALICE: access_pb2.ROLE_OWNER, BOB: access_pb2.ROLE_VIEWER},
        {"pii": space_pb2.RedactionRule.ACTION_REDACT_TEXT},
    )

    def names(principal: str, digest: str, now: datetime, *, admin: bool = False) -> bool:
        visibility = CubeVisibility(Caller(principal, admin, "token"), catalog, "s")
        with database.read() as cursor:
            return named_by_readable_cube(cursor, "s", digest, now, visibility)

    assert names(ALICE, private, T0) and names(ALICE, labelled, T0)
    assert not names(BOB, private, T0)  # a cube only its owner sees
    assert not names(BOB, labelled, T0)  # redacted for viewers: not readable in full
    assert names(BOB, labelled, T0, admin=True)
    assert names(ALICE, stale, T0) and not names(ALICE, stale, T0 + MINUTE)  # an expired cube names nothing
    assert not names(ALICE, _digest(b"unknown"), T0)
    with database.read() as cursor:
        visibility = CubeVisibility(Caller(ALICE, False, "token"), catalog, "s")
        assert not named_by_readable_cube(cursor, "other", private, T0, visibility)
