"""Operation records (``operations``, schema v6): a long-running operation's message, written when it is queued
and again when it ends; the steps in between are not stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from memos_grpc._proto.memos.v1 import scheduler_service_pb2
from memos_grpc.store.database import Connection

Operation = scheduler_service_pb2.Operation


@dataclass(frozen=True)
class StoredOperation:
    """An operation's row: the space and id it is stored under, and its message."""

    space_id: str
    operation_id: str
    operation: Operation


def insert_operation(
    cursor: Connection, space_id: str, operation_id: str, operation: Operation, create_time: datetime
) -> None:
    """Records a newly queued operation (not done)."""
    cursor.execute(
        "INSERT INTO operations VALUES (?, ?, ?, FALSE, ?)",
        [space_id, operation_id, operation.SerializeToString(), create_time],
    )


def record_operation_end(cursor: Connection, space_id: str, operation_id: str, operation: Operation) -> None:
    """Replaces an operation's message with its final one and marks it done."""
    cursor.execute(
        "UPDATE operations SET operation_pb = ?, done = TRUE WHERE space_id = ? AND operation_id = ?",
        [operation.SerializeToString(), space_id, operation_id],
    )


def operation_by_id(cursor: Connection, space_id: str, operation_id: str) -> Operation | None:
    """The stored message of an operation, or None if there is none."""
    row = cursor.execute(
        "SELECT operation_pb FROM operations WHERE space_id = ? AND operation_id = ?",
        [space_id, operation_id],
    ).fetchone()
    return Operation.FromString(row[0]) if row is not None else None


def unfinished_operations(cursor: Connection) -> list[StoredOperation]:
    """Every operation not marked done (queued or running when it was last written)."""
    rows = cursor.execute("SELECT space_id, operation_id, operation_pb FROM operations WHERE NOT done").fetchall()
    return [
        StoredOperation(space_id, operation_id, Operation.FromString(blob)) for space_id, operation_id, blob in rows
    ]


def drop_finished_operations(cursor: Connection, created_before: datetime) -> None:
    """Deletes the done operations created before ``created_before``."""
    cursor.execute("DELETE FROM operations WHERE done AND create_time < ?", [created_before])
