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
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from memos_grpc import reasons
from memos_grpc.errors import FailedPreconditionError, StorageError, UnavailableError
from memos_grpc.store.cursor import KeyTaken
from memos_grpc.store.group_commit import Database
from memos_grpc.store.postgres import vector_type
from memos_grpc.store.postgres.changes import append_changes
from memos_grpc.store.postgres.cursor import PgCursor
from memos_grpc.store.postgres.migrations import migrate

log = logging.getLogger(__name__)

#: Runs of one transaction PostgreSQL cancelled for a conflict with another replica's, before the write fails.
SERIALIZATION_RETRIES = 8
#: The advisory lock of the database's users (any 64-bit number, fixed): every server holds it shared, on its
#: writer's session, for as long as it runs; ``memos-grpc migrate`` holds it alone while it copies a vault in. So
#: servers share a database with each other, never with a copy in progress.
SERVER_LOCK = 0x6D656D6F735F7331
#: The advisory lock every write transaction of every server holds, from before it begins until it ends: writes
#: to one database run one at a time (each server still commits its queued writes in groups), so they never
#: conflict, the audit chain stays one chain, and the change log is numbered in commit order without gaps.
WRITE_LOCK = 0x6D656D6F735F7731
_CONFLICTS = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
#: Longest a read waits for a pooled connection (all busy, or the database unreachable) before it fails.
_POOL_WAIT_SECONDS = 10.0
#: The advisory lock of a claim (``claim``, ``server_alive``): a 64-bit hash of the claim's name, in the key space
#: of the fixed locks above (a collision with them, or between two names, is as likely as one of two random
#: 64-bit numbers).
_CLAIM_KEY = "hashtextextended('memos-claim:' || %s, 0)"


def connection_options(url: str) -> dict[str, Any]:
    """What every connection of the backend is opened with: the URL, UTC, and autocommit."""
    return {"conninfo": url, "autocommit": True, "options": "-c TimeZone=UTC"}


def _unavailable(exc: BaseException) -> UnavailableError:
    return UnavailableError(
        f"the PostgreSQL database cannot be reached ({exc}); retry once it is back",
        reason=reasons.DATABASE_UNAVAILABLE,
    )


@contextmanager
def _reachable() -> Iterator[None]:
    """Turns a read's lost or unobtainable connection into UNAVAILABLE: the database is down or failing over."""
    try:
        yield
    except PoolTimeout as exc:
        raise _unavailable(exc) from exc
    except psycopg.OperationalError as exc:
        if isinstance(exc, (*_CONFLICTS, pg_errors.QueryCanceled)):
            raise
        raise _unavailable(exc) from exc


class PostgresDatabase(Database):
    """A vault's records in PostgreSQL: migrated on open, written by this replica's writer thread."""

    dialect = "postgres"

    def __init__(self, url: str, group_max: int, pool_size: int = 8, *, exclusive: bool = False) -> None:
        """Migrates the database and opens the connections, as one of the servers sharing it.

        ``exclusive``: be its only user instead (``memos-grpc migrate``): no server may start while it is open, and
        it does not open while one runs (``SERVER_LOCK``; either refusal is DATABASE_IN_USE).
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
        # Each connection is checked as it is handed out: after a database restart or a failover every idle one
        # is dead, and a read must get a live one rather than fail once per pooled connection.
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs=kwargs,
            configure=vector_type.register,
            check=ConnectionPool.check_connection,
            timeout=_POOL_WAIT_SECONDS,
            open=True,
        )
        self._options = options
        self._exclusive = exclusive
        self.url = url
        try:
            self._writer = self._connect_writer()
        except BaseException:
            self._pool.close()
            raise
        #: The session that holds this server's claims: its own connection, so that a writer reconnecting after
        #: a failed write keeps them. The claims made on it, while it lives.
        self._claims: psycopg.Connection[Any] | None = None
        self._claimed: set[str] = set()
        self._claims_lock = threading.Lock()
        # Held while the server lives: another server finding it free knows this one's work in progress ended.
        self.claim(self._server_claim(self.origin))
        self._start()

    def _connect_writer(self) -> psycopg.Connection[Any]:
        connection = psycopg.connect(**self._options)
        # The lock is the writer session's, so it goes with the process, however it ends.
        take = "pg_try_advisory_lock" if self._exclusive else "pg_try_advisory_lock_shared"
        held = connection.execute(f"SELECT {take}(%s)", [SERVER_LOCK]).fetchone()
        if held is None or not held[0]:
            connection.close()
            raise FailedPreconditionError(
                "memos-grpc servers are using this PostgreSQL database: stop every one of them first"
                if self._exclusive
                else "memos-grpc migrate is copying a vault into this PostgreSQL database: start the server once "
                "it has finished",
                reason=reasons.DATABASE_IN_USE,
            )
        connection.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        vector_type.register(connection)
        return connection

    @contextmanager
    def read(self) -> Iterator[PgCursor]:
        """A cursor on a pooled connection, in autocommit: each statement sees what is committed when it starts."""
        self._check_open()
        with _reachable(), self._pool.connection() as connection, connection.cursor() as cursor:
            yield PgCursor(cursor)

    @contextmanager
    def transaction(self) -> Iterator[PgCursor]:
        """A cursor in a transaction of its own on a pooled connection, for reads that set transaction-local
        settings (a vector search's); committed when the block ends."""
        self._check_open()
        with (
            _reachable(),
            self._pool.connection() as connection,
            connection.transaction(),
            connection.cursor() as cursor,
        ):
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

    @staticmethod
    def _server_claim(origin: str) -> str:
        return f"server/{origin}"

    def claim(self, job: str) -> bool:
        """Whether this server runs ``job`` (see ``Database.claim``): a session advisory lock on the claims
        connection, taken when free. A held claim is confirmed by a round trip, for a session the database ended
        has lost its locks; then the connection is opened again and every claim is asked for anew. Between a
        session's end and this server noticing, another server may take a job over, so jobs must be safe to run
        twice (each run's writes are transactions that read what they change)."""
        with self._claims_lock:
            try:
                if self._claims is None or self._claims.broken or self._claims.closed:
                    self._claimed.clear()
                    self._claims = psycopg.connect(**self._options)
                    if job != self._server_claim(self.origin):
                        self._try_lock(self._server_claim(self.origin))
                if job in self._claimed:
                    self._claims.execute("SELECT 1")
                    return True
                return self._try_lock(job)
            except psycopg.OperationalError as exc:
                log.warning("the session holding this server's claims ended (%s); asking again next time", exc)
                self._claimed.clear()
                return False

    def _try_lock(self, job: str) -> bool:
        assert self._claims is not None
        row = self._claims.execute(f"SELECT pg_try_advisory_lock({_CLAIM_KEY})", [job]).fetchone()
        if row is not None and row[0]:
            self._claimed.add(job)
            return True
        return False

    def server_alive(self, origin: str) -> bool:
        """Whether server ``origin`` still holds its session's claim on this database (see ``Database``)."""
        if origin == self.origin:
            return True
        claim = self._server_claim(origin)
        with psycopg.connect(**self._options) as probe:
            row = probe.execute(f"SELECT pg_try_advisory_lock({_CLAIM_KEY})", [claim]).fetchone()
            # The probe's session ends with the block, and the lock with it.
            return not (row is not None and row[0])

    def issue_labels(self, count: int) -> list[int]:
        """Vector labels no server of this database has issued, from its sequence."""
        with self.read() as cursor:
            rows = cursor.execute("SELECT nextval('vec_ids') FROM generate_series(1, ?)", [count]).fetchall()
        return [int(label) for (label,) in rows]

    def _as_memos_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, psycopg.OperationalError) and (self._writer.broken or self._writer.closed):
            return _unavailable(exc)
        if isinstance(exc, psycopg.Error | KeyTaken):
            log.error("PostgreSQL write failed: %s", exc)
            return StorageError(f"the vault's database refused the write: {exc}")
        return exc

    def close(self) -> None:
        """Drains queued writes and closes every connection."""
        if not self._stop_threads():
            return
        self._writer.close()
        with self._claims_lock:
            if self._claims is not None:
                self._claims.close()
        self._pool.close()
