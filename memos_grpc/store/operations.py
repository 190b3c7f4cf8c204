"""Operation records (``operations``, schema v6): a long-running operation's message, written when it is queued,
when it starts, as it progresses (on a shared database) and when it ends; the server running it (its ``owner``,
the database's ``origin`` of that server) and whether a cancel was asked for on another server (schema v13).
Every write notes an ``OPERATIONS`` change, for the servers sharing the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from memos_grpc._proto.memos.v1 import scheduler_service_pb2
from memos_grpc.store.cursor import OPERATIONS
from memos_grpc.store.database import Connection

Operation = scheduler_service_pb2.Operation


@dataclass(frozen=True)
class StoredOperation:
    """An operation's row: the space and id it is stored under, and its message."""

    space_id: str
    operation_id: str
    operation: Operation
    #: The server that runs it ('' for one queued before servers were recorded).
    owner: str = ""


def insert_operation(
    cursor: Connection, space_id: str, operation_id: str, operation: Operation, create_time: datetime, owner: str
) -> None:
    """Records a newly queued operation (not done), run by server ``owner``."""
    cursor.execute(
        "INSERT INTO operations (space_id, operation_id, operation_pb, done, create_time, owner, cancel_requested) "
        "VALUES (?, ?, ?, FALSE, ?, ?, FALSE)",
        [space_id, operation_id, operation.SerializeToString(), create_time, owner],
    )
    cursor.changed(OPERATIONS, space_id)


def record_operation_progress(cursor: Connection, space_id: str, operation_id: str, operation: Operation) -> None:
    """Replaces the message of an operation not yet done (its state and steps, for other servers to read)."""
    cursor.execute(
        "UPDATE operations SET operation_pb = ? WHERE space_id = ? AND operation_id = ? AND NOT done",
        [operation.SerializeToString(), space_id, operation_id],
    )
    cursor.changed(OPERATIONS, space_id)


def record_operation_end(cursor: Connection, space_id: str, operation_id: str, operation: Operation) -> None:
    """Replaces an operation's message with its final one and marks it done; the first end recorded stays (a
    server cut off from the database may finish an operation another server has marked FAILED meanwhile)."""
    cursor.execute(
        "UPDATE operations SET operation_pb = ?, done = TRUE WHERE space_id = ? AND operation_id = ? AND NOT done",
        [operation.SerializeToString(), space_id, operation_id],
    )
    cursor.changed(OPERATIONS, space_id)


def request_cancel(cursor: Connection, space_id: str, operation_id: str) -> bool:
    """Asks the server running an operation not yet done to stop it; False when it is done already."""
    found = cursor.execute(
        "UPDATE operations SET cancel_requested = TRUE WHERE space_id = ? AND operation_id = ? AND NOT done "
        "RETURNING operation_id",
        [space_id, operation_id],
    ).fetchone()
    cursor.changed(OPERATIONS, space_id)
    return found is not None


def cancels_requested(cursor: Connection, owner: str) -> list[tuple[str, str]]:
    """(space, id) of the operations server ``owner`` runs that another server was asked to cancel."""
    rows = cursor.execute(
        "SELECT space_id, operation_id FROM operations WHERE owner = ? AND cancel_requested AND NOT done", [owner]
    ).fetchall()
    return [(str(space_id), str(operation_id)) for space_id, operation_id in rows]


def operation_by_id(cursor: Connection, space_id: str, operation_id: str) -> Operation | None:
    """The stored message of an operation, or None if there is none."""
    row = cursor.execute(
        "SELECT operation_pb FROM operations WHERE space_id = ? AND operation_id = ?",
        [space_id, operation_id],
    ).fetchone()
    return Operation.FromString(row[0]) if row is not None else None


def unfinished_operations(cursor: Connection) -> list[StoredOperation]:
    """Every operation not marked done (queued or running when it was last written)."""
    rows = cursor.execute(
        "SELECT space_id, operation_id, operation_pb, owner FROM operations WHERE NOT done"
    ).fetchall()
    return [
        StoredOperation(space_id, operation_id, Operation.FromString(blob), owner or "")
        for space_id, operation_id, blob, owner in rows
    ]


def drop_finished_operations(cursor: Connection, created_before: datetime) -> None:
    """Deletes the done operations created before ``created_before``."""
    cursor.execute("DELETE FROM operations WHERE done AND create_time < ?", [created_before])
