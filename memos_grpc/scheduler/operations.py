"""Long-running operations (transforms): queued, run one at a time on one thread, watched as they progress.

An operation is ``spaces/{space}/operations/{operation}``. Its row is written when it is queued and again when it
ends; the steps in between live in the memory of the server running it (the row's ``owner``), where
GetOperation and WatchOperation read them. An operation whose server stopped before it finished is marked FAILED
(OPERATION_INTERRUPTED): its work was never committed, so running it again is safe. Whoever may read the space
may read its operations, but sees only the names of cubes they may see themselves.

Servers sharing a PostgreSQL database each run the operations queued on them. The running server also writes the
row when the operation starts and as it steps (at most every ``operation_progress_seconds``), so that the others
read its progress from the row and watch it through the change log; a cancel asked for on another server is
written to the row and reaches the running server through the change log too. A server marks FAILED the
unfinished operations of servers no longer alive (``Database.server_alive``) when it starts, and the server
holding the ``operations/orphans`` claim does so every ``operation_takeover_seconds``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import grpc

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import scheduler_service_pb2
from memos_grpc.errors import AbortedError, CancelledError, MemosError, NotFoundError, ResourceExhaustedError
from memos_grpc.governance.caller import Caller
from memos_grpc.settings import THREAD_STOP_SECONDS
from memos_grpc.store.cursor import OPERATIONS
from memos_grpc.store.database import Connection
from memos_grpc.store.names import new_operation_id, operation_name, parse_operation_name
from memos_grpc.store.operations import (
    cancels_requested,
    drop_finished_operations,
    insert_operation,
    operation_by_id,
    record_operation_end,
    record_operation_progress,
    request_cancel,
    unfinished_operations,
)
from memos_grpc.store.rows import set_timestamp
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.licensing import UseReservation

log = logging.getLogger(__name__)

Operation = scheduler_service_pb2.Operation
State = scheduler_service_pb2.Operation.State
INTERRUPTED_MESSAGE = "the server stopped before the operation finished; nothing was changed, run it again"
#: How often a watcher with nothing new checks that its caller is still there.
_WATCH_POLL_SECONDS = 1.0
#: The claim of the server that marks FAILED the operations of servers that stopped (``Database.claim``).
ORPHANS_CLAIM = "operations/orphans"


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
    #: When the row last took its progress (monotonic seconds), for servers sharing the database.
    written: float = float("-inf")


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
        self._stopping = threading.Event()
        #: Other servers share the database: progress goes to the rows, and their changes come through the log.
        follower = context.store.follower
        self._shared = follower is not None
        #: Bumped at each change of operations another server makes (watchers of its operations wait on it).
        self._remote_revision = 0
        # Nothing runs here yet: what this server's origin left unfinished is an orphan too (an embedded vault's
        # one server has the same origin at every start).
        self.interrupt_orphans(at_start=True)
        self._worker = threading.Thread(target=self._run, name="operations", daemon=True)
        self._worker.start()
        self._takeover: threading.Thread | None = None
        if follower is not None:
            follower.subscribe(OPERATIONS, lambda _change: self._remote_change())
            self._takeover = threading.Thread(target=self._take_over_periodically, name="operations-takeover")
            self._takeover.daemon = True
            self._takeover.start()

    def interrupt_orphans(self, *, at_start: bool = False) -> int:
        """Marks FAILED the operations left queued or running by a server that stopped (this one, at an earlier
        start, or another sharing the database); ``at_start``, also drops old finished operations. Returns how
        many it marked."""
        now = self._context.clock()
        cutoff = now - timedelta(days=self._context.settings.operation_retention_days)
        database = self._context.database
        with database.read() as cursor:
            owners = {stored.owner for stored in unfinished_operations(cursor)}
        # Asked outside the write: a server's liveness is a lock on the database, not a row.
        stopped = {
            owner for owner in owners if (at_start and owner == database.origin) or not database.server_alive(owner)
        }

        def apply(cursor: Connection) -> int:
            if at_start:
                drop_finished_operations(cursor, cutoff)
            orphaned = [stored for stored in unfinished_operations(cursor) if stored.owner in stopped]
            for stored in orphaned:
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
            return len(orphaned)

        if not stopped and not at_start:
            return 0
        interrupted = database.write(apply)
        if interrupted:
            log.warning("%d operation(s) were cut short when their server stopped; marked FAILED", interrupted)
        return interrupted

    def _take_over_periodically(self) -> None:
        interval = self._context.settings.operation_takeover_seconds
        while not self._stopping.wait(interval):
            try:
                if self._context.database.claim(ORPHANS_CLAIM):
                    self.interrupt_orphans()
            except MemosError:
                log.exception("marking the operations of stopped servers failed; trying again later")

    def _remote_change(self) -> None:
        """Another server changed operations: a cancel may be asked of this one's, and watchers read rows again."""
        with self._context.database.read() as cursor:
            asked = cancels_requested(cursor, self._context.database.origin)
        queued: list[_Live] = []
        with self._changed:
            for space_id, operation_id in asked:
                live = self._live.get(operation_name(space_id, operation_id))
                if live is not None and not live.cancel_requested and self._cancel_live(live):
                    queued.append(live)
            self._remote_revision += 1
            self._changed.notify_all()
        for live in queued:
            self._finish(live, error=CancelledError("cancelled before it started"))

    # -- starting and running ------------------------------------------------------

    def start(
        self,
        space_id: str,
        request: scheduler_service_pb2.TransformCubeRequest,
        creator: str,
        total_steps: int,
        job: Job,
        reservation: UseReservation | None = None,
    ) -> Operation:
        """Queues ``job`` and returns its operation as queued (already durable); ``reservation``'s uses are counted
        in the transaction that queues it."""
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
            insert_operation(cursor, space_id, operation_id, operation, now, self._context.database.origin)
            if reservation is not None:
                reservation.write(cursor)

        self._context.database.write(apply)
        if reservation is not None:
            reservation.committed()
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
            share = self._shared and self._due(live)
            shared = _copy(live.operation) if share else None
        if shared is not None:
            self._share_progress(shared)

    def _due(self, live: _Live) -> bool:
        """Whether the row should take ``live``'s progress now (a new state always; steps at most every
        ``operation_progress_seconds``); notes the write when it should. Under ``_changed``."""
        now = time.monotonic()
        started = live.operation.state != State.STATE_QUEUED and live.written == float("-inf")
        if not started and now - live.written < self._context.settings.operation_progress_seconds:
            return False
        live.written = now
        return True

    def _share_progress(self, operation: Operation) -> None:
        space_id, operation_id = parse_operation_name(operation.name)
        try:
            self._context.database.write(
                lambda cursor: record_operation_progress(cursor, space_id, operation_id, operation)
            )
        except MemosError:
            # Progress is for watchers on other servers; the operation itself goes on.
            log.exception("writing the progress of operation %s failed", operation.name)

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
            yield from self._watch_row(name, viewer, operation, active)
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

    def _watch_row(
        self, name: str, viewer: Caller, operation: Operation, active: Callable[[], bool]
    ) -> Iterator[Operation]:
        """Watches an operation another server runs (or one done): its row, read again at each change of
        operations another server logs."""
        yield operation
        while not operation.done and self._shared:
            # The revision is taken before the row is read, so that a change in between is not waited for.
            with self._changed:
                seen = self._remote_revision
            current, _ = self._load(name, viewer)
            if current != operation:
                operation = current
                yield operation
                continue
            if not self._wait_for_remote_change(seen, active, None):
                return

    def _wait_for_remote_change(self, seen: int, active: Callable[[], bool], deadline: float | None) -> bool:
        """Waits until another server changes operations after revision ``seen``; False if this server closes,
        the caller goes (``active``), or monotonic ``deadline`` passes first."""
        with self._changed:
            while self._remote_revision == seen:
                remaining = _WATCH_POLL_SECONDS if deadline is None else min(deadline - time.monotonic(), 1.0)
                if self._closing or not active() or remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def _cancel_live(self, live: _Live) -> bool:
        """Marks ``live`` cancelled; True when it had not started (its end is then the caller's to record).
        Under ``_changed``."""
        live.cancel_requested = True
        queued = not live.claimed
        live.claimed = True
        return queued

    def cancel(self, name: str, viewer: Caller) -> Operation:
        """Asks the operation to stop: at once while it waits, at its next step while it runs. One running on
        another server is asked through its row; this waits for its end as for one of this server's."""
        operation, live = self._load(name, viewer)
        if operation.done:
            return operation
        wait = self._context.settings.operation_cancel_wait_seconds
        if live is None:
            space_id, operation_id = parse_operation_name(name)
            asked = self._context.database.write(lambda cursor: request_cancel(cursor, space_id, operation_id))
            if asked and self._shared:
                self._wait_for_row_end(name, viewer, wait)
            return self._load(name, viewer)[0]
        with self._changed:
            queued = self._cancel_live(live)
        if queued:
            # The worker skips a claimed operation when it reaches it in the queue.
            self._finish(live, error=CancelledError("cancelled before it started"))
        else:
            live.ended.wait(timeout=wait)
        return self._load(name, viewer)[0]

    def _wait_for_row_end(self, name: str, viewer: Caller, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                seen = self._remote_revision
            if self._load(name, viewer)[0].done or not self._wait_for_remote_change(seen, lambda: True, deadline):
                return

    def close(self) -> None:
        """Stops running operations (their work is not committed) and ends every watch."""
        self._stopping.set()
        with self._changed:
            self._closing = True
            for live in self._live.values():
                live.cancel_requested = True
            self._changed.notify_all()
        self._queue.put(None)
        self._worker.join(timeout=THREAD_STOP_SECONDS)
        if self._takeover is not None:
            self._takeover.join(timeout=THREAD_STOP_SECONDS)


def _copy(operation: Operation) -> Operation:
    copy = Operation()
    copy.CopyFrom(operation)
    return copy
