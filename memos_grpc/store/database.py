"""The DuckDB database of a vault: one writer thread, readers on their own cursors.

DuckDB allows one writer. Every change goes through ``Database.write``: the
writer thread takes whatever operations are queued (up to a group size),
runs them in one transaction and commits once (group commit). A second
thread, the applier, then runs each committed operation's ``after_commit``
hook (vector index and catalog updates) strictly in commit order and only
then answers the caller, so an acknowledged write is durable and already
searchable, while the writer commits the next group as the applier indexes
the last. If an operation in a group fails, the group is rolled back and its
operations are retried one transaction each, so one bad request never sinks
its neighbours.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import duckdb
import pyarrow as pa

from memos_grpc import reasons
from memos_grpc.errors import MemosError, StorageError, UnavailableError
from memos_grpc.settings import DEFAULT_CHECKPOINT_MB
from memos_grpc.store import schema
from memos_grpc.store.cursor import Cursor

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection = Cursor


class DuckCursor:
    """A DuckDB cursor as the store's ``Cursor``: statements pass through, bulk inserts scan an Arrow table."""

    __slots__ = ("raw",)
    dialect = "duckdb"

    def __init__(self, raw: duckdb.DuckDBPyConnection) -> None:
        self.raw = raw

    def execute(self, query: str, parameters: Any = None, /) -> DuckCursor:
        self.raw.execute(query, parameters)
        return self

    def executemany(self, query: str, parameters: Any = None, /) -> DuckCursor:
        self.raw.executemany(query, parameters)
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.raw.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.raw.fetchall()

    def fetchmany(self, size: int = 1, /) -> list[tuple[Any, ...]]:
        return self.raw.fetchmany(size)

    def insert_table(self, table: str, rows: pa.Table, /) -> None:
        # One Arrow scan per statement: DuckDB's executemany costs about half a millisecond per row.
        view = f"{table}_incoming"
        columns = ", ".join(rows.column_names)
        self.raw.register(view, rows)
        try:
            self.raw.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {view}")
        finally:
            self.raw.unregister(view)


#: One ``id_list`` parameter as a list of strings: ``SELECT unnest({SPLIT_LIST}) ...``.
SPLIT_LIST = "string_split(?, chr(31))"
#: A subquery of the ids passed as one ``id_list`` parameter: ``... WHERE cube_id IN {IDS}``.
IDS = f"(SELECT unnest({SPLIT_LIST}))"
#: The same for integer ids (``id_list`` of numbers; never empty).
INT_IDS = f"(SELECT CAST(unnest({SPLIT_LIST}) AS BIGINT))"


def id_list(ids: Iterable[str | int]) -> str:
    """Many ids as one string parameter, for ``IDS`` and ``INT_IDS``.

    DuckDB's Python client binds a list parameter element by element and, where pandas is not
    installed, tries to import it for each one (about 100 µs apiece): 5,000 ids cost half a second.
    One string binds at once. Ids never hold the separator (unit separator, 0x1f).
    """
    texts = [str(i) for i in ids]
    if any("\x1f" in text for text in texts):
        raise ValueError("an id holds the unit separator")
    return "\x1f".join(texts)


@dataclass
class WriteOp(Generic[T]):
    """One unit of work for the writer: ``apply`` runs inside a transaction."""

    apply: Callable[[Connection], T]
    after_commit: Callable[[T], None] | None = None
    future: Future[T] = field(default_factory=Future)


class Database:
    """Owns the DuckDB connection, the writer thread and per-thread read cursors."""

    def __init__(self, path: Path, group_max: int, checkpoint_threshold_mb: int = DEFAULT_CHECKPOINT_MB) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = duckdb.connect(str(path), config={"checkpoint_threshold": f"{checkpoint_threshold_mb}MB"})
        schema.migrate(self._connection)
        self._group_max = group_max
        self._queue: queue.Queue[WriteOp[Any] | None] = queue.Queue()
        self._local = threading.local()
        self._cursors: list[DuckCursor] = []
        self._cursors_lock = threading.Lock()
        self._closed = False
        self._writer_cursor = DuckCursor(self._connection.cursor())
        self._applied: queue.Queue[tuple[list[WriteOp[Any]], list[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="duckdb-writer", daemon=True)
        self._applier = threading.Thread(target=self._apply_committed, name="index-applier", daemon=True)
        self._thread.start()
        self._applier.start()

    # -- reads ---------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A cursor of this thread's own: DuckDB connections must not be shared by threads."""
        if self._closed:
            raise UnavailableError("the vault is closed", reason=reasons.VAULT_CLOSED)
        cursor: DuckCursor | None = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = DuckCursor(self._connection.cursor())
            self._local.cursor = cursor
            with self._cursors_lock:
                self._cursors.append(cursor)
        yield cursor

    # -- writes --------------------------------------------------------------

    def write(self, apply: Callable[[Connection], T], after_commit: Callable[[T], None] | None = None) -> T:
        """Runs ``apply`` in a committed transaction on the writer thread; returns its result."""
        return self.submit(apply, after_commit).result()

    def submit(self, apply: Callable[[Connection], T], after_commit: Callable[[T], None] | None = None) -> Future[T]:
        """Queues ``apply`` and returns at once; the future resolves once it is committed and applied."""
        if self._closed:
            raise UnavailableError("the vault is closing and takes no more writes", reason=reasons.VAULT_CLOSED)
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
                self._finish(group, results)
                return
        for op in group:  # alone, or retried alone after a failed group
            result = self._transaction([op])
            if result is not None:
                self._finish([op], result)

    def _transaction(self, group: list[WriteOp[Any]]) -> list[Any] | None:
        cursor = self._writer_cursor
        try:
            cursor.raw.begin()
            results = [op.apply(cursor) for op in group]
            cursor.raw.commit()
            return results
        except BaseException as exc:
            try:
                cursor.raw.rollback()
            except duckdb.Error:
                log.exception("rollback failed")
            if len(group) == 1:
                group[0].future.set_exception(_as_memos_error(exc))
            return None

    def _finish(self, group: list[WriteOp[Any]], results: list[Any]) -> None:
        self._applied.put((group, results))

    def _apply_committed(self) -> None:
        while (item := self._applied.get()) is not None:
            group, results = item
            for op, result in zip(group, results, strict=True):
                try:
                    if op.after_commit is not None:
                        op.after_commit(result)
                except Exception:
                    # Committed already; derived indexes are repaired from DuckDB at start-up.
                    log.exception("post-commit index update failed")
                op.future.set_result(result)

    def close(self) -> None:
        """Drains queued writes, checkpoints and closes the database."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._applied.put(None)
        self._applier.join()
        with self._cursors_lock:
            for cursor in self._cursors:
                cursor.raw.close()
        self._writer_cursor.raw.close()
        self._connection.execute("CHECKPOINT")
        self._connection.close()


def _as_memos_error(exc: BaseException) -> BaseException:
    if isinstance(exc, MemosError):
        return exc
    if isinstance(exc, duckdb.Error):
        log.error("DuckDB write failed: %s", exc)
        return StorageError(f"the vault's database refused the write: {exc}")
    return exc
