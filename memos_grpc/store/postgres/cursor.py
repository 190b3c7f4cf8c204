"""psycopg's cursor as the store's ``Cursor``: the same statements as DuckDB, and bulk inserts by COPY.

The store writes each statement once, with ``?`` for a parameter; psycopg takes ``%s``. ``translate`` rewrites
the marks outside quoted text (and doubles a literal ``%``), once per statement text. The few DuckDB functions
the statements call exist in PostgreSQL under the same names (migration 0001), so nothing else is rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from memos_grpc.store.cursor import DriverCursor, KeyTaken
from memos_grpc.store.postgres.lexical_documents import drop_documents, put_documents, remove_documents
from memos_grpc.store.postgres.vector_type import vector_text

#: Columns of pgvector's ``vector`` type, which the store hands over as float32 bytes (migration 0001).
VECTOR_COLUMNS = frozenset({("cubes", "embedding")})
#: A key taken; any other broken constraint is the store's own fault and surfaces as a storage failure.
_TAKEN = (pg_errors.UniqueViolation,)


@lru_cache(maxsize=4096)
def translate(query: str) -> bytes:
    """``query`` with each ``?`` outside quotes as ``%s`` and each ``%`` as ``%%``, ready for psycopg."""
    out: list[str] = []
    quote = ""
    for char in query:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        if char == "%":
            out.append("%%")
            continue
        out.append(char)
    return "".join(out).encode()


def _parameter(value: Any) -> Any:
    """A parameter as psycopg adapts it: numpy scalars as Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    return value


class PgCursor(DriverCursor):
    """One psycopg cursor, inside the caller's transaction or on a read connection."""

    __slots__ = ("changes",)
    dialect = "postgres"
    raw: psycopg.Cursor[Any]

    def __init__(self, raw: psycopg.Cursor[Any]) -> None:
        super().__init__(raw)
        #: What the transaction changed for other servers, by (kind, space): labels put and removed, in order.
        self.changes: dict[tuple[str, str], tuple[list[int], list[int]]] = {}

    def changed(self, kind: str, space_id: str = "", *, put: Iterable[int] = (), removed: Iterable[int] = ()) -> None:
        noted = self.changes.setdefault((kind, space_id), ([], []))
        noted[0].extend(put)
        noted[1].extend(removed)

    def lexical_put(self, space_id: str, documents: Iterable[tuple[int, str | None]], /) -> None:
        put_documents(self, space_id, documents)

    def lexical_remove(self, space_id: str, labels: Iterable[int], /) -> None:
        remove_documents(self, space_id, labels)

    def lexical_drop(self, space_id: str, /) -> None:
        drop_documents(self, space_id)

    def execute(self, query: str, parameters: Any = None, /) -> PgCursor:
        try:
            if parameters is None:
                self.raw.execute(translate(query))
            else:
                self.raw.execute(translate(query), [_parameter(value) for value in parameters])
        except _TAKEN as exc:
            raise KeyTaken(str(exc)) from exc
        return self

    def executemany(self, query: str, parameters: Any = None, /) -> PgCursor:
        rows = [[_parameter(value) for value in row] for row in parameters or []]
        try:
            self.raw.executemany(translate(query), rows)
        except _TAKEN as exc:
            raise KeyTaken(str(exc)) from exc
        return self

    def insert_table(self, table: str, rows: pa.Table, /) -> None:
        """Copies the rows in (COPY FROM STDIN): a MAP column becomes a JSONB object, lists become arrays, and an
        embedding of float32 bytes a ``vector`` where the column is one."""
        columns = [
            [vector_text(value) for value in rows.column(name).to_pylist()]
            if (table, name) in VECTOR_COLUMNS
            else _column(rows.column(name), rows.schema.field(name).type)
            for name in rows.column_names
        ]
        statement = f"COPY {table} ({', '.join(rows.column_names)}) FROM STDIN"
        try:
            with self.raw.copy(statement.encode()) as copy:
                for row in zip(*columns, strict=True):
                    copy.write_row(row)
        except _TAKEN as exc:
            raise KeyTaken(str(exc)) from exc


def _column(values: pa.ChunkedArray, kind: pa.DataType) -> list[Any]:
    pylist: list[Any] = values.to_pylist()
    if pa.types.is_map(kind):
        return [None if pairs is None else Jsonb(dict(pairs)) for pairs in pylist]
    return pylist
