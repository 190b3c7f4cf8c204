"""The PostgreSQL database of a vault: the writer thread (``Database``) on one connection, reads from a pool.

The store's writes read what they change (the next version number, the audit chain's end, whether an id is
taken), and other servers may write the same tables: every write transaction of every server holds
``WRITE_LOCK`` from before it begins until it ends, so writes to a database run one at a time, each on a snapshot
that holds every earlier commit. They are SERIALIZABLE besides, and a transaction PostgreSQL cancels for a
conflict (SQLSTATE 40001, or a deadlock, 40P01) is run again, from the start, up to ``SERIALIZATION_RETRIES``
times. Reads run in autocommit, each statement on a snapshot of what is committed. Every connection speaks UTC.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from memos_grpc import reasons
from memos_grpc.errors import FailedPreconditionError, StorageError
from memos_grpc.store.cursor import KeyTaken
from memos_grpc.store.group_commit import Database
from memos_grpc.store.postgres import vector_type
from memos_grpc.store.postgres.changes import append_changes
from memos_grpc.store.postgres.cursor import PgCursor
from memos_grpc.store.postgres.migrations import migrate

log = logging.getLogger(__name__)

#: Runs of one transaction PostgreSQL cancelled for a conflict with another replica's, before the write fails.
SERIALIZATION_RETRIES = 8
#: The advisory lock a server's writer connection holds while it serves the database (any 64-bit number, fixed).
SERVER_LOCK = 0x6D656D6F735F7331
#: The advisory lock every write transaction of every server holds, from before it begins until it ends: writes
#: to one database run one at a time (each server still commits its queued writes in groups), so they never
#: conflict, the audit chain stays one chain, and the change log is numbered in commit order without gaps.
WRITE_LOCK = 0x6D656D6F735F7731
_CONFLICTS = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)


def connection_options(url: str) -> dict[str, Any]:
    """What every connection of the backend is opened with: the URL, UTC, and autocommit."""
    return {"conninfo": url, "autocommit": True, "options": "-c TimeZone=UTC"}


class PostgresDatabase(Database):
    """A vault's records in PostgreSQL: migrated on open, written by this replica's writer thread."""

    dialect = "postgres"

    def __init__(self, url: str, group_max: int, pool_size: int = 8, *, exclusive: bool = True) -> None:
        """Migrates the database and opens the connections.

        ``exclusive``: hold the one-server lock, so that a second server on the database stops at start-up (see
        ``_connect_writer``). Only users of the database that follow its change log for everything they keep in
        memory may share it.
        """
        super().__init__(group_max, "postgres-writer")
        #: This server among those sharing the database: the origin of the changes it logs.
        self.origin = uuid.uuid4().hex
        options = connection_options(url)
        try:
            with psycopg.connect(**options) as connection:
                migrate(connection)
        except psycopg.OperationalError as exc:
            # libpq's message names the host and the cause, never the password.
            raise StorageError(f"cannot open the PostgreSQL database of postgres_url: {exc}") from exc
        kwargs = {key: value for key, value in options.items() if key != "conninfo"}
        self._pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, kwargs=kwargs, configure=vector_type.register, open=True
        )
        self._options = options
        self._exclusive = exclusive
        self.url = url
        self._writer = self._connect_writer()
        self._start()

    def _connect_writer(self) -> psycopg.Connection[Any]:
        connection = psycopg.connect(**self._options)
        # One server per database: a server keeps records in memory that the change log does not yet bring in
        # step across servers (licenses in use, followed logs, running operations, the marketplace's log). The
        # lock is the writer connection's, so it goes with the process, however it ends.
        held = (
            connection.execute("SELECT pg_try_advisory_lock(%s)", [SERVER_LOCK]).fetchone()
            if self._exclusive
            else (True,)
        )
        if held is None or not held[0]:
            connection.close()
            raise FailedPreconditionError(
                "another memos-grpc server is using this PostgreSQL database; stop it first (one server per "
                "database, docs/scaling.md)",
                reason=reasons.DATABASE_IN_USE,
            )
        connection.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        vector_type.register(connection)
        return connection

    @contextmanager
    def read(self) -> Iterator[PgCursor]:
        """A cursor on a pooled connection, in autocommit: each statement sees what is committed when it starts."""
        self._check_open()
        with self._pool.connection() as connection, connection.cursor() as cursor:
            yield PgCursor(cursor)

    @contextmanager
    def transaction(self) -> Iterator[PgCursor]:
        """A cursor in a transaction of its own on a pooled connection, for reads that set transaction-local
        settings (a vector search's); committed when the block ends."""
        self._check_open()
        with self._pool.connection() as connection, connection.transaction(), connection.cursor() as cursor:
            yield PgCursor(cursor)

    def _run_transaction(self, applies: list[Callable[[Any], Any]]) -> list[Any]:
        for attempt in range(1, SERIALIZATION_RETRIES + 1):
            if self._writer.broken or self._writer.closed:
                self._writer = self._connect_writer()
            committing = False
            try:
                # Before the transaction begins, so that its snapshot holds every write committed before it.
                self._writer.execute("SELECT pg_advisory_lock(%s)", [WRITE_LOCK])
                try:
                    with self._writer.transaction(), self._writer.cursor() as cursor:
                        wrapped = PgCursor(cursor)
                        results = [apply(wrapped) for apply in applies]
                        if wrapped.changes:
                            append_changes(wrapped, self.origin)
                        committing = True
                finally:
                    if not self._writer.broken:
                        self._writer.execute("SELECT pg_advisory_unlock(%s)", [WRITE_LOCK])
                return results
            except _CONFLICTS as exc:
                if attempt == SERIALIZATION_RETRIES:
                    raise
                log.info("write conflicted with another transaction (%s); running it again", exc.sqlstate)
            except psycopg.OperationalError:
                # The session ended (a database restart, a failover, an administrator): nothing of this transaction
                # is committed unless the commit itself was under way, whose outcome is then unknown.
                if committing or not self._writer.broken or attempt == SERIALIZATION_RETRIES:
                    raise
                log.warning("the database ended the writer's session; reconnecting and running the write again")
        raise AssertionError("unreachable")

    def issue_labels(self, count: int) -> list[int]:
        """Vector labels no server of this database has issued, from its sequence."""
        with self.read() as cursor:
            rows = cursor.execute("SELECT nextval('vec_ids') FROM generate_series(1, ?)", [count]).fetchall()
        return [int(label) for (label,) in rows]

    def _as_memos_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, psycopg.Error | KeyTaken):
            log.error("PostgreSQL write failed: %s", exc)
            return StorageError(f"the vault's database refused the write: {exc}")
        return exc

    def close(self) -> None:
        """Drains queued writes and closes every connection."""
        if not self._stop_threads():
            return
        self._writer.close()
        self._pool.close()
