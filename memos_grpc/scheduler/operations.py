"""Long-running operations (transforms): queued, run one at a time on one thread, watched as they progress.

An operation is ``spaces/{space}/operations/{operation}``. Its row in DuckDB
is written when it is queued and again when it ends; the steps in between
live in memory, where GetOperation and WatchOperation read them. An operation
that was queued or running when the server stopped is marked FAILED
(OPERATION_INTERRUPTED) at the next start: its work was never committed, so
running it again is safe. Whoever may read the space may read its
operations, but sees only the names of cubes they may see themselves.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import grpc

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import scheduler_service_pb2
from memos_grpc.errors import AbortedError, CancelledError, MemosError, NotFoundError, ResourceExhaustedError
from memos_grpc.governance.caller import Caller
from memos_grpc.settings import THREAD_STOP_SECONDS
from memos_grpc.store.database import Connection
from memos_grpc.store.names import new_operation_id, operation_name, parse_operation_name
from memos_grpc.store.operations import (
    drop_finished_operations,
    insert_operation,
    operation_by_id,
    record_operation_end,
    unfinished_operations,
)
from memos_grpc.store.rows import set_timestamp
from memos_grpc.vault.context import VaultContext

log = logging.getLogger(__name__)

Operation = scheduler_service_pb2.Operation
State = scheduler_service_pb2.Operation.State
INTERRUPTED_MESSAGE = "the server stopped before the operation finished; nothing was changed, run it again"
#: How often a watcher with nothing new checks that its caller is still there.
_WATCH_POLL_SECONDS = 1.0


class Progress:
    """What a running job reports through, and asks whether it should stop."""

    def __init__(self, operations: Operations, live: _Live) -> None:
        self._operations = operations
        self._live = live

    def step(self, step: int, total: int, loss: float | None = None, initial_loss: float | None = None) -> None:
        def change(operation: Operation) -> None:
            operation.step, operation.total_steps = step, total
            if loss is not None:
                operation.loss = loss
            if initial_loss is not None:
                operation.initial_loss = initial_loss

        self._operations.change(self._live, change)

    def cancelled(self) -> bool:
        return self._live.cancel_requested


#: A job does the work and returns the name of the cube it made or changed.
Job = Callable[[Progress], str]


@dataclass
class _Live:
    operation: Operation
    job: Job
    revision: int = 0
    cancel_requested: bool = False
    #: Set by the worker when it takes the job, or by a cancel that came first; whoever sets it owns the end.
    claimed: bool = False
    ended: threading.Event = field(default_factory=threading.Event)


class Operations:
    """The queue, the worker thread and the store of operations."""

    def __init__(self, context: VaultContext, sees_cube: Callable[[str, Caller], bool]) -> None:
        self._context = context
        #: Whether a caller may see the named cube (the vault's visibility rules).
        self._sees_cube = sees_cube
        self._changed = threading.Condition()
        self._live: dict[str, _Live] = {}
        self._queue: queue.Queue[_Live | None] = queue.Queue()
        self._closing = False
        self._interrupt_unfinished()
        self._worker = threading.Thread(target=self._run, name="operations", daemon=True)
        self._worker.start()

    def _interrupt_unfinished(self) -> None:
        """Marks what the last run left queued or running as FAILED, and drops old finished operations."""
        now = self._context.clock()
        cutoff = now - timedelta(days=self._context.settings.operation_retention_days)

        def apply(cursor: Connection) -> int:
            drop_finished_operations(cursor, cutoff)
            unfinished = unfinished_operations(cursor)
            for stored in unfinished:
                operation = stored.operation
                operation.state, operation.done = State.STATE_FAILED, True
                operation.error.code, operation.error.reason = (
                    grpc.StatusCode.ABORTED.value[0],
                    reasons.OPERATION_INTERRUPTED,
                )
                operation.error.message = INTERRUPTED_MESSAGE
                set_timestamp(operation.update_time, now)
                set_timestamp(operation.end_time, now)
                record_operation_end(cursor, stored.space_id, stored.operation_id, operation)
            return len(unfinished)

        interrupted = self._context.database.write(apply)
        if interrupted:
            log.warning("%d operation(s) were cut short by the last shutdown; marked FAILED", interrupted)

    # -- starting and running ------------------------------------------------------

    def start(
        self,
        space_id: str,
        request: scheduler_service_pb2.TransformCubeRequest,
        creator: str,
        total_steps: int,
        job: Job,
    ) -> Operation:
        """Queues ``job`` and returns its operation as queued (already durable)."""
        limit = self._context.settings.max_queued_operations
        with self._changed:
            waiting = sum(1 for live in self._live.values() if live.operation.state == State.STATE_QUEUED)
        if waiting >= limit:
            raise ResourceExhaustedError(
                f"{waiting} operations are already waiting for the model (max_queued_operations); retry later",
                reason=reasons.TOO_MANY_OPERATIONS,
            )
        now = self._context.clock()
        operation_id = new_operation_id()
        operation = Operation(
            name=operation_name(space_id, operation_id),
            state=State.STATE_QUEUED,
            request=request,
            total_steps=total_steps,
            creator=creator,
        )
        set_timestamp(operation.create_time, now)
        set_timestamp(operation.update_time, now)

        def apply(cursor: Connection) -> None:
            insert_operation(cursor, space_id, operation_id, operation, now)

        self._context.database.write(apply)
        live = _Live(operation, job)
        with self._changed:
            self._live[operation.name] = live
        self._queue.put(live)
        return _copy(operation)

    def _run(self) -> None:
        while (live := self._queue.get()) is not None:
            with self._changed:
                if live.claimed:
                    continue  # cancelled while it waited
                live.claimed = True
            self.change(live, lambda operation: setattr(operation, "state", State.STATE_RUNNING))
            try:
                cube = live.job(Progress(self, live))
            except MemosError as error:
                self._finish(live, error=error)
            except Exception as error:  # a bug must not stop the worker; the caller learns it failed
                log.exception("operation %s failed", live.operation.name)
                self._finish(live, error=MemosError(f"the operation failed: {error}", reason=reasons.OPERATION_FAILED))
            else:
                self._finish(live, cube=cube)

    def change(self, live: _Live, change: Callable[[Operation], None]) -> None:
        with self._changed:
            change(live.operation)
            set_timestamp(live.operation.update_time, self._context.clock())
            live.revision += 1
            self._changed.notify_all()

    def _finish(self, live: _Live, *, cube: str = "", error: MemosError | None = None) -> None:
        """Records the end durably, then lets watchers see it."""
        final = _copy(live.operation)
        now = self._context.clock()
        if isinstance(error, CancelledError) and self._closing:
            # Stopped by the shutdown, not by a caller: reported as a restart would report it.
            error = AbortedError(INTERRUPTED_MESSAGE, reason=reasons.OPERATION_INTERRUPTED)
        if error is None:
            final.state, final.cube = State.STATE_SUCCEEDED, cube
            final.step = final.total_steps
        else:
            final.state = State.STATE_CANCELLED if isinstance(error, CancelledError) else State.STATE_FAILED
            final.error.code, final.error.message, final.error.reason = error.code.value[0], error.message, error.reason
        final.done = True
        set_timestamp(final.update_time, now)
        set_timestamp(final.end_time, now)
        space_id, operation_id = parse_operation_name(final.name)

        def apply(cursor: Connection) -> None:
            record_operation_end(cursor, space_id, operation_id, final)

        try:
            self._context.database.write(apply)
        except MemosError:
            log.exception("recording the end of operation %s failed", final.name)
        with self._changed:
            live.operation = final
            live.revision += 1
            del self._live[final.name]
            live.ended.set()
            self._changed.notify_all()

    # -- reading, watching, cancelling ----------------------------------------------

    def _shown(self, operation: Operation, viewer: Caller) -> Operation:
        """The operation as ``viewer`` may see it: names of cubes hidden from them are left out."""
        if viewer.admin or operation.creator == viewer.principal:
            return operation
        names = list(operation.request.names)
        visible = [name for name in names if self._sees_cube(name, viewer)]
        if visible != names:
            operation.request.ClearField("names")
            operation.request.names.extend(visible)
        if operation.cube and not self._sees_cube(operation.cube, viewer):
            operation.ClearField("cube")
        return operation

    def _load(self, name: str, viewer: Caller) -> tuple[Operation, _Live | None]:
        space_id, operation_id = parse_operation_name(name)
        with self._changed:
            live = self._live.get(name)
            operation = _copy(live.operation) if live is not None else None
        if operation is None:
            with self._context.database.read() as cursor:
                operation = operation_by_id(cursor, space_id, operation_id)
        if operation is None:
            raise NotFoundError(f"operation {name} does not exist", reason=reasons.OPERATION_NOT_FOUND)
        return self._shown(operation, viewer), live

    def get(self, name: str, viewer: Caller) -> Operation:
        return self._load(name, viewer)[0]

    def watch(self, name: str, viewer: Caller, active: Callable[[], bool]) -> Iterator[Operation]:
        """The operation now, then at every change, ending after it is done (or when the caller goes)."""
        operation, live = self._load(name, viewer)
        if live is None:
            yield operation
            return
        with self._changed:
            seen, current = live.revision, _copy(live.operation)
        yield self._shown(current, viewer)
        while not current.done:
            with self._changed:
                while live.revision == seen and not self._closing and active():
                    self._changed.wait(_WATCH_POLL_SECONDS)
                if self._closing or not active():
                    return
                seen, current = live.revision, _copy(live.operation)
            yield self._shown(current, viewer)

    def cancel(self, name: str, viewer: Caller) -> Operation:
        """Asks the operation to stop: at once while it waits, at its next step while it runs."""
        operation, live = self._load(name, viewer)
        if live is None or operation.done:
            return operation
        with self._changed:
            live.cancel_requested = True
            queued = not live.claimed
            live.claimed = True
        if queued:
            # The worker skips a claimed operation when it reaches it in the queue.
            self._finish(live, error=CancelledError("cancelled before it started"))
        else:
            live.ended.wait(timeout=self._context.settings.operation_cancel_wait_seconds)
        return self._load(name, viewer)[0]

    def close(self) -> None:
        """Stops running operations (their work is not committed) and ends every watch."""
        with self._changed:
            self._closing = True
            for live in self._live.values():
                live.cancel_requested = True
            self._changed.notify_all()
        self._queue.put(None)
        self._worker.join(timeout=THREAD_STOP_SECONDS)


def _copy(operation: Operation) -> Operation:
    copy = Operation()
    copy.CopyFrom(operation)
    return copy
