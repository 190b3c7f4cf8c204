"""What the store's record functions need of a transaction: run a statement, fetch its rows, bulk-insert.

Both backends hand their functions a ``Cursor``: ``DuckCursor`` (``store/database.py``) over DuckDB's, and
``PgCursor`` (``store/postgres/cursor.py``) over psycopg's. Statements are written once, in the SQL both
databases accept, with ``?`` for each parameter; what differs is a method here (bulk inserts) or a branch on
``dialect`` beside the statement (``store/named.py``: DuckDB reaches a named cube's rows through an index).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import pyarrow as pa

#: Kinds of change ``Cursor.changed`` notes: a space's cubes (by vector label), a space's settings and roles, a
#: space removed, the principals and their credentials, the trust root, a space's operations (their progress,
#: end, or a cancel asked for).
CUBES = "cubes"
SPACE = "space"
SPACE_REMOVED = "space_removed"
PRINCIPALS = "principals"
TRUST = "trust"
OPERATIONS = "operations"


class KeyTaken(Exception):
    """A write broke a key or constraint (a taken id, mostly): both backends' cursors raise this for it, so the
    store's functions name what was taken without knowing the driver."""


class Cursor(Protocol):
    """A cursor inside the caller's transaction (or a read cursor): ``execute`` returns it, to fetch from."""

    #: "duckdb" or "postgres": the few statements that differ pick their form by it.
    dialect: str

    def execute(self, query: str, parameters: Any = None, /) -> Cursor: ...
    def executemany(self, query: str, parameters: Any = None, /) -> Cursor: ...
    def fetchone(self) -> tuple[Any, ...] | None: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...
    def fetchmany(self, size: int = 1, /) -> list[tuple[Any, ...]]: ...

    def insert_table(self, table: str, rows: pa.Table, /) -> None:
        """Inserts an Arrow table's rows into ``table``, its columns named as the table's."""
        ...

    def changed(self, kind: str, space_id: str = "", *, put: Iterable[int] = (), removed: Iterable[int] = ()) -> None:
        """Notes, for the servers that share the database, what this transaction changed that they keep in
        memory: a space's cubes by vector label (``put``: read them again; ``removed``: gone), a space, the
        principals. The embedded backend has no other server and notes nothing."""
        ...

    def lexical_put(self, space_id: str, documents: Iterable[tuple[int, str | None]], /) -> None:
        """Writes, in this transaction, the BM25 documents of a space's cubes: (vector label, text), replacing what
        each label had; a text of None has no document. PostgreSQL ranks in SQL (``store/postgres/lexical_*.py``);
        the embedded backend's index is fed by the search catalog after the commit, and does nothing here."""
        ...

    def lexical_remove(self, space_id: str, labels: Iterable[int], /) -> None:
        """Deletes, in this transaction, the BM25 documents of those labels (nothing on the embedded backend)."""
        ...

    def lexical_drop(self, space_id: str, /) -> None:
        """Deletes, in this transaction, a removed space's BM25 documents (nothing on the embedded backend)."""
        ...


class DriverCursor:
    """What both backends' cursors share: the driver's own cursor (``raw``), and fetching from it as it is."""

    __slots__ = ("raw",)

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def fetchone(self) -> tuple[Any, ...] | None:
        found: tuple[Any, ...] | None = self.raw.fetchone()
        return found

    def fetchall(self) -> list[tuple[Any, ...]]:
        found: list[tuple[Any, ...]] = self.raw.fetchall()
        return found

    def fetchmany(self, size: int = 1, /) -> list[tuple[Any, ...]]:
        found: list[tuple[Any, ...]] = self.raw.fetchmany(size)
        return found
