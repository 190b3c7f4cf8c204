"""memos_grpc.store.operations on a real database: an operation's row from queued to done, and what is dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memos_grpc._proto.memos.v1 import scheduler_service_pb2
from memos_grpc.store.database import Connection, Database
from memos_grpc.store.operations import (
    StoredOperation,
    cancels_requested,
    drop_finished_operations,
    insert_operation,
    operation_by_id,
    record_operation_end,
    record_operation_progress,
    request_cancel,
    unfinished_operations,
)

Operation = scheduler_service_pb2.Operation
State = Operation.State
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _queued(space_id: str, operation_id: str) -> Operation:
    return Operation(name=f"spaces/{space_id}/operations/{operation_id}", state=State.STATE_QUEUED, total_steps=3)


def _insert(database: Database, space_id: str, operation_id: str, when: datetime, owner: str = "a") -> Operation:
    operation = _queued(space_id, operation_id)
    database.write(lambda cursor: insert_operation(cursor, space_id, operation_id, operation, when, owner))
    return operation


def _read(database: Database, space_id: str, operation_id: str) -> Operation | None:
    with database.read() as cursor:
        return operation_by_id(cursor, space_id, operation_id)


def _unfinished(database: Database) -> list[StoredOperation]:
    with database.read() as cursor:
        return sorted(unfinished_operations(cursor), key=lambda stored: stored.operation_id)


def test_a_queued_operation_reads_back_and_is_unfinished(database: Database) -> None:
    first = _insert(database, "s1", "o1", T0)
    second = _insert(database, "s2", "o2", T0, owner="b")
    assert _read(database, "s1", "o1") == first
    assert _read(database, "s1", "o2") is None  # another space's id is not this space's
    assert _unfinished(database) == [StoredOperation("s1", "o1", first, "a"), StoredOperation("s2", "o2", second, "b")]


def test_its_end_replaces_the_message_and_marks_it_done(database: Database) -> None:
    _insert(database, "s1", "o1", T0)
    final = _queued("s1", "o1")
    final.state, final.done, final.cube = State.STATE_SUCCEEDED, True, "spaces/s1/cubes/c1"

    def apply(cursor: Connection) -> None:
        record_operation_end(cursor, "s1", "o1", final)

    database.write(apply)
    assert _read(database, "s1", "o1") == final
    assert _unfinished(database) == []
    # The first end recorded stays: a later one (a server that lost its session finishing late) changes nothing.
    late = _queued("s1", "o1")
    late.state, late.done = State.STATE_SUCCEEDED, True
    database.write(lambda cursor: record_operation_end(cursor, "s1", "o1", late))
    assert _read(database, "s1", "o1") == final


def test_progress_and_a_cancel_are_recorded_for_an_unfinished_operation_only(database: Database) -> None:
    _insert(database, "s1", "o1", T0, owner="a")
    _insert(database, "s1", "o2", T0, owner="b")
    running = _queued("s1", "o1")
    running.state, running.step = State.STATE_RUNNING, 2
    database.write(lambda cursor: record_operation_progress(cursor, "s1", "o1", running))
    assert _read(database, "s1", "o1") == running
    assert database.write(lambda cursor: request_cancel(cursor, "s1", "o1"))
    with database.read() as cursor:
        assert cancels_requested(cursor, "a") == [("s1", "o1")]
        assert cancels_requested(cursor, "b") == []
    final = _queued("s1", "o1")
    final.state, final.done = State.STATE_CANCELLED, True
    database.write(lambda cursor: record_operation_end(cursor, "s1", "o1", final))
    # Done: its progress no longer changes, a cancel is no longer asked for, and none is pending.
    database.write(lambda cursor: record_operation_progress(cursor, "s1", "o1", running))
    assert _read(database, "s1", "o1") == final
    assert not database.write(lambda cursor: request_cancel(cursor, "s1", "o1"))
    with database.read() as cursor:
        assert cancels_requested(cursor, "a") == []


def test_only_done_operations_created_before_the_cutoff_are_dropped(database: Database) -> None:
    _insert(database, "s1", "old-done", T0)
    _insert(database, "s1", "old-running", T0)
    _insert(database, "s1", "new-done", T0 + timedelta(days=10))
    for operation_id in ("old-done", "new-done"):
        ended = _queued("s1", operation_id)
        ended.done = True
        database.write(lambda cursor, i=operation_id, m=ended: record_operation_end(cursor, "s1", i, m))

    database.write(lambda cursor: drop_finished_operations(cursor, T0 + timedelta(days=5)))

    assert _read(database, "s1", "old-done") is None
    assert _read(database, "s1", "old-running") is not None
    assert _read(database, "s1", "new-done") is not None
