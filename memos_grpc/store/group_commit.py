"""The write path both backends share: one writer thread committing queued operations in groups, and an applier.

Every change goes through ``Database.write``: the writer thread takes whatever operations are queued (up to a
group size), runs them in one transaction and commits once (group commit). A second thread, the applier, then
runs each committed operation's ``after_commit`` hook (vector index and catalog updates) strictly in commit
order and only then answers the caller, so an acknowledged write is durable and already searchable, while the
writer commits the next group as the applier indexes the last. If an operation in a group fails, the group is
rolled back and its operations are retried one transaction each, so one bad request never sinks its
neighbours. A backend supplies the transaction itself (``_run_transaction``) and what its driver's errors mean.

A call may hand the writer work to commit with the write that concludes it (``riding``, ``Rider``): the policy
enforcement point's audit event of a call that succeeds exactly when that write commits. The event then commits
atomically with what it records, and the call needs no second transaction.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from memos_grpc import reasons
from memos_grpc.errors import MemosError, UnavailableError
from memos_grpc.store.cursor import Cursor

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Rider:
    """Work a call commits with the write that concludes it, if that write runs on the call's thread (``riding``).

    ``committed`` is set once that write has committed it; otherwise the call does the work itself.
    """

    apply: Callable[[Cursor], None]
    taken: bool = False
    committed: bool = False


_rider: ContextVar[Rider | None] = ContextVar("memos_rider", default=None)


@contextmanager
def riding(rider: Rider) -> Iterator[Rider]:
    """Offers ``rider`` to the concluding write (``Database.submit(..., concludes=True)``) made in this block."""
    token = _rider.set(rider)
    try:
        yield rider
    finally:
        _rider.reset(token)


@dataclass
class WriteOp(Generic[T]):
    """One unit of work for the writer: ``apply`` runs inside a transaction."""

    apply: Callable[[Cursor], T]
    after_commit: Callable[[T], None] | None = None
    future: Future[T] = field(default_factory=Future)


class Database:
    """A vault's open database, whichever backend: the writer and applier threads, and the backend's reads.

    Subclasses run the transactions and hand out read cursors: ``DuckDatabase`` (store/database.py) and
    ``PostgresDatabase`` (store/postgres/database.py).
    """

    #: Which database it is: "duckdb" or "postgres".
    dialect = "duckdb"

    def __init__(self, group_max: int, thread_name: str) -> None:
        self._group_max = group_max
        self._queue: queue.Queue[WriteOp[Any] | None] = queue.Queue()
        self._closed = False
        self._applied: queue.Queue[tuple[list[WriteOp[Any]], list[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._applier = threading.Thread(target=self._apply_committed, name="index-applier", daemon=True)

    def _start(self) -> None:
        """Starts the threads; called by a subclass once its connections are open."""
        self._thread.start()
        self._applier.start()

    # -- what a backend supplies ---------------------------------------------

    def read(self) -> AbstractContextManager[Cursor]:
        """A cursor for reads outside any write transaction (DuckDB: this thread's own; PostgreSQL: pooled)."""
        raise NotImplementedError

    def close(self) -> None:
        """Drains queued writes and closes the database."""
        raise NotImplementedError

    def _run_transaction(self, applies: list[Callable[[Cursor], Any]]) -> list[Any]:
        """Runs ``applies`` in one transaction on the writer's connection and commits, or rolls back and raises."""
        raise NotImplementedError

    # -- background jobs that run once per database --------------------------------------------------------

    #: This server among those that may share the database (PostgreSQL); the embedded vault has one server.
    origin = "embedded"

    def claim(self, job: str) -> bool:
        """Whether this server is the one that runs ``job`` (a background job that must run once per database, such
        as the retention sweep): asked before each run. A claim, once made, is held until the server stops or
        loses its session, when another server's next ask takes the job over. An embedded vault has one server,
        which always holds every claim."""
        return True

    def server_alive(self, origin: str) -> bool:
        """Whether the server ``origin`` is still serving this database (its work in progress is its own)."""
        return origin == self.origin

    def _as_memos_error(self, exc: BaseException) -> BaseException:
        """The error a caller sees for ``exc``, raised by a failed transaction."""
        return exc

    # -- writes --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("the vault is closed", reason=reasons.VAULT_CLOSED)

    def write(
        self, apply: Callable[[Cursor], T], after_commit: Callable[[T], None] | None = None, *, concludes: bool = False
    ) -> T:
        """Runs ``apply`` in a committed transaction on the writer thread; returns its result."""
        return self.submit(apply, after_commit, concludes=concludes).result()

    def submit(
        self, apply: Callable[[Cursor], T], after_commit: Callable[[T], None] | None = None, *, concludes: bool = False
    ) -> Future[T]:
        """Queues ``apply`` and returns at once; the future resolves once it is committed and applied.

        ``concludes``: the calling request succeeds exactly when this write commits, so the rider it offers
        (``riding``) commits with it.
        """
        if self._closed:
            raise UnavailableError("the vault is closing and takes no more writes", reason=reasons.VAULT_CLOSED)
        rider = _rider.get() if concludes else None
        if rider is not None and not rider.taken:
            rider.taken = True
            apply, after_commit = _with_rider(rider, apply, after_commit)
        op: WriteOp[T] = WriteOp(apply, after_commit)
        self._queue.put(op)
        return op.future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group: list[WriteOp[Any]] = [first]
            stop = False
            while len(group) < self._group_max:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stop = True
                    break
                group.append(op)
            self._commit_group(group)
            if stop:
                return

    def _commit_group(self, group: list[WriteOp[Any]]) -> None:
        if len(group) > 1:
            results = self._transaction(group)
            if results is not None:
                self._applied.put((group, results))
                return
        for op in group:  # alone, or retried alone after a failed group
            result = self._transaction([op])
            if result is not None:
                self._applied.put(([op], result))

    def _transaction(self, group: list[WriteOp[Any]]) -> list[Any] | None:
        try:
            return self._run_transaction([op.apply for op in group])
        except BaseException as exc:
            if len(group) == 1:
                error = exc if isinstance(exc, MemosError) else self._as_memos_error(exc)
                group[0].future.set_exception(error)
            return None

    def _apply_committed(self) -> None:
        while (item := self._applied.get()) is not None:
            group, results = item
            for op, result in zip(group, results, strict=True):
                try:
                    if op.after_commit is not None:
                        op.after_commit(result)
                except Exception:
                    # Committed already; derived indexes are repaired from the database at start-up.
                    log.exception("post-commit index update failed")
                op.future.set_result(result)

    def _stop_threads(self) -> bool:
        """Drains queued writes and stops both threads; False when already closed."""
        if self._closed:
            return False
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._applied.put(None)
        self._applier.join()
        return True


def _with_rider(
    rider: Rider, apply: Callable[[Cursor], T], after_commit: Callable[[T], None] | None
) -> tuple[Callable[[Cursor], T], Callable[[T], None]]:
    """``apply`` and ``after_commit`` with ``rider``'s work in the same transaction."""

    def both(cursor: Cursor) -> T:
        result = apply(cursor)
        rider.apply(cursor)
        return result

    def committed(result: T) -> None:
        rider.committed = True
        if after_commit is not None:
            after_commit(result)

    return both, committed
