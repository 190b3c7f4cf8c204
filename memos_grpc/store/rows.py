"""Cube rows: from ``MemCube`` messages to the Arrow tables DuckDB bulk-inserts, and back."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
from google.protobuf import timestamp_pb2

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.embedding.embedder import FloatArray
from memos_grpc.store.cursor import Cursor

#: Columns of the cubes table written on insert, in this order.
CUBE_COLUMNS = (
    "space_id",
    "cube_id",
    "cube_pb",
    "vec_id",
    "embedding",
    "type",
    "state",
    "source",
    "semantic_type",
    "priority",
    "model",
    "origin",
    "tags",
    "sensitivity_labels",
    "labels",
    "create_time",
    "update_time",
    "expire_time",
    "version",
    "etag",
    "provenance_id",
    "blob_digest",
    "access_scope",
    "access_owner",
    "access_principals",
)
#: The columns a version row copies from its cube row.
VERSION_COLUMNS = ("space_id", "cube_id", "version", "cube_pb", "embedding", "blob_digest", "update_time")


def insert_rows(cursor: Cursor, rows: list[CubeRow], *, versions: bool = True) -> None:
    """Inserts cube rows and records each as a version, in the caller's transaction.

    The version row of a live version stores no vector: the live row holds it, and the vector is most of a row's
    bytes (a copy in each made a third of ingest's inserts, log and checkpoints). ``CubeWrite`` gives the version
    row its own copy before the live row is replaced or retired. ``versions=False`` for the one row
    that is not a version: an expired cube's tombstone.
    """
    table = rows_table(rows)
    cursor.insert_table("cubes", table)
    if versions:
        version_rows = table.select(list(VERSION_COLUMNS))
        at = VERSION_COLUMNS.index("embedding")
        cursor.insert_table("cube_versions", version_rows.set_column(at, "embedding", pa.nulls(len(rows), pa.binary())))


def version_vector(stored: bytes | None, is_live: bool, live: bytes | None) -> FloatArray | None:
    """The vector of a version row: its own, or the live row's when it is the live version (``insert_rows``)."""
    data = stored if stored is not None else (live if is_live else None)
    return None if data is None else vector_from_bytes(data)


@dataclass
class CubeRow:
    """A cube as stored: the message plus what the indexes need."""

    space_id: str
    cube_id: str
    cube: cube_pb2.MemCube
    vec_id: int | None
    embedding: FloatArray | None
    _serialized: bytes | None = None

    def serialized(self) -> bytes:
        """The cube's bytes, serialized once for DuckDB and the search catalog alike."""
        if self._serialized is None:
            self._serialized = self.cube.SerializeToString()
        return self._serialized


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_datetime(stamp: timestamp_pb2.Timestamp) -> datetime | None:
    """The time a timestamp holds (UTC, to the microsecond), or None when it is unset.

    As ``Timestamp.ToDatetime`` but by arithmetic: every stored row converts three of them, and protobuf's
    conversion was a third of building a batch's rows.
    """
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def set_timestamp(stamp: timestamp_pb2.Timestamp, when: datetime) -> None:
    """Sets ``stamp`` to ``when`` (a naive time read as UTC), as ``Timestamp.FromDatetime`` but by arithmetic:
    protobuf's conversion was a twelfth of a batch's checks, two a cube."""
    delta = (when if when.tzinfo is not None else when.replace(tzinfo=UTC)) - _EPOCH
    stamp.seconds = delta.days * 86_400 + delta.seconds
    stamp.nanos = delta.microseconds * 1_000


def next_version(cube: cube_pb2.MemCube, previous: int, now: datetime) -> None:
    """Numbers ``cube`` as the version after ``previous``, changed at ``now``: the one place a version is made."""
    cube.version = previous + 1
    set_timestamp(cube.update_time, now)
    cube.etag = make_etag(cube.name, cube.version, now)


def make_etag(name: str, version: int, update_time: datetime) -> str:
    raw = f"{name}\0{version}\0{update_time.isoformat()}".encode()
    return hashlib.sha256(raw).hexdigest()[:20]


def memory_text(cube: cube_pb2.MemCube) -> str:
    """The text a cube stands for: a plaintext's text, or the source text of a cache or an adapter ("" if none).

    It is what the vault embeds and searches, whatever the memory type.
    """
    payload = cube.WhichOneof("payload")
    if payload == "plaintext":
        return cube.plaintext.text
    if payload == "activation":
        return cube.activation.source_text
    if payload == "parametric":
        return cube.parametric.source_text
    return ""


def blob_digest(cube: cube_pb2.MemCube) -> str | None:
    payload = cube.WhichOneof("payload")
    if payload == "activation":
        return cube.activation.blob.digest
    if payload == "parametric":
        return cube.parametric.blob.digest
    return None


def vector_bytes(vector: FloatArray) -> bytes:
    """A vector as stored in DuckDB: little-endian float32."""
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes) -> FloatArray:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def rows_table(rows: list[CubeRow]) -> pa.Table:
    """The Arrow table of ``rows``, in CUBE_COLUMNS order."""
    cubes = [r.cube for r in rows]
    timestamp = pa.timestamp("us", tz="UTC")
    columns: dict[str, pa.Array] = {
        "space_id": pa.array([r.space_id for r in rows], pa.string()),
        "cube_id": pa.array([r.cube_id for r in rows], pa.string()),
        "cube_pb": pa.array([r.serialized() for r in rows], pa.binary()),
        "vec_id": pa.array([r.vec_id for r in rows], pa.int64()),
        "embedding": pa.array([None if r.embedding is None else vector_bytes(r.embedding) for r in rows], pa.binary()),
        "type": pa.array([c.type for c in cubes], pa.int16()),
        "state": pa.array([c.state for c in cubes], pa.int16()),
        "source": pa.array([c.source for c in cubes], pa.int16()),
        "semantic_type": pa.array([c.semantic_type for c in cubes], pa.int16()),
        "priority": pa.array([c.priority for c in cubes], pa.int32()),
        "model": pa.array([c.model for c in cubes], pa.string()),
        "origin": pa.array([c.origin for c in cubes], pa.string()),
        "tags": pa.array([list(c.tags) for c in cubes], pa.list_(pa.string())),
        "sensitivity_labels": pa.array([list(c.sensitivity_labels) for c in cubes], pa.list_(pa.string())),
        "labels": pa.array([sorted(c.labels.items()) for c in cubes], pa.map_(pa.string(), pa.string())),
        "create_time": pa.array([to_datetime(c.create_time) for c in cubes], timestamp),
        "update_time": pa.array([to_datetime(c.update_time) for c in cubes], timestamp),
        "expire_time": pa.array([to_datetime(c.expire_time) for c in cubes], timestamp),
        "version": pa.array([c.version for c in cubes], pa.int64()),
        "etag": pa.array([c.etag for c in cubes], pa.string()),
        "provenance_id": pa.array([c.provenance_id for c in cubes], pa.string()),
        "blob_digest": pa.array([blob_digest(c) for c in cubes], pa.string()),
        "access_scope": pa.array([c.access.scope for c in cubes], pa.int16()),
        "access_owner": pa.array([c.access.owner for c in cubes], pa.string()),
        "access_principals": pa.array([list(c.access.principals) for c in cubes], pa.list_(pa.string())),
    }
    return pa.table([columns[name] for name in CUBE_COLUMNS], names=list(CUBE_COLUMNS))
