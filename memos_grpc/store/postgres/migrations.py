"""The PostgreSQL schema as numbered migrations (``migrations/NNNN_name.sql``), applied in order, each once.

Each migration runs in its own transaction and is recorded in ``schema_migrations``; replicas starting together
take a session-level advisory lock first, so exactly one applies what is pending and the others find it done. A
database migrated by a newer release (a version this code does not know) is refused: running old code on it
could write what the new schema no longer means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg

from memos_grpc import reasons
from memos_grpc.errors import FailedPreconditionError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: The advisory lock every replica takes while migrating (an arbitrary 64-bit number, the same in every release).
MIGRATION_LOCK = 0x6D656D6F735F6D31
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its number, its name and its statements."""

    version: int
    name: str
    sql: str


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped, in order; numbered 1, 2, 3... without gaps."""
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise ValueError(f"migrations are not numbered 1..{len(found)}: {[m.version for m in found]}")
    return tuple(found)


def schema_version() -> int:
    """The newest schema this code knows."""
    return migrations()[-1].version


def applied(connection: psycopg.Connection) -> list[int]:
    """The migrations recorded in the database, in order (empty for a new database)."""
    exists = connection.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if exists is None or not exists[0]:
        return []
    return [int(v) for (v,) in connection.execute("SELECT version FROM schema_migrations ORDER BY version")]


def migrate(connection: psycopg.Connection, target: int | None = None) -> list[int]:
    """Applies the pending migrations up to ``target`` (default: all); returns those this call applied.

    ``connection`` is in autocommit mode; each migration commits on its own, so a failure leaves the database at
    the last one that succeeded.
    """
    newest = schema_version()
    target = newest if target is None else target
    connection.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
    try:
        done = applied(connection)
        if done and done[-1] > newest:
            raise FailedPreconditionError(
                f"the database's schema is version {done[-1]}, newer than this server's {newest}: "
                "run the release that migrated it, or a newer one",
                reason=reasons.SCHEMA_TOO_NEW,
            )
        ran = []
        for migration in migrations():
            if migration.version in done or migration.version > target:
                continue
            with connection.transaction():
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_time TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                connection.execute(migration.sql.encode())
                connection.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", [migration.version, migration.name]
                )
            ran.append(migration.version)
        return ran
    finally:
        connection.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])
