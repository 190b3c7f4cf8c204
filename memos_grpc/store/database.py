"""The DuckDB database of a vault: one writer thread (``store/group_commit.py``), readers on their own cursors.

DuckDB allows one writer, so every change goes through ``DuckDatabase.write``, committed in groups by the writer
thread, with derived stores brought in step by the applier before the caller is answered.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from memos_grpc.errors import StorageError
from memos_grpc.settings import DEFAULT_CHECKPOINT_MB
from memos_grpc.store import schema
from memos_grpc.store.cursor import Cursor, DriverCursor, KeyTaken
from memos_grpc.store.group_commit import Database

log = logging.getLogger(__name__)

Connection = Cursor


class DuckCursor(DriverCursor):
    """A DuckDB cursor as the store's ``Cursor``: statements pass through; bulk inserts scan an Arrow table, and a
    few rows bind as parameters."""

    __slots__ = ()
    dialect = "duckdb"
    raw: duckdb.DuckDBPyConnection

    def execute(self, query: str, parameters: Any = None, /) -> DuckCursor:
        try:
            with _duckdb_call:
                self.raw.execute(query, parameters)
        except duckdb.ConstraintException as exc:
            raise KeyTaken(str(exc)) from exc
        return self

    def executemany(self, query: str, parameters: Any = None, /) -> DuckCursor:
        try:
            with _duckdb_call:
                self.raw.executemany(query, parameters)
        except duckdb.ConstraintException as exc:
            raise KeyTaken(str(exc)) from exc
        return self

    def changed(self, kind: str, space_id: str = "", *, put: Iterable[int] = (), removed: Iterable[int] = ()) -> None:
        """Nothing: one server owns an embedded database."""

    def lexical_put(self, space_id: str, documents: Iterable[tuple[int, str | None]], /) -> None:
        """Nothing: the BM25 index (``store/lexical.py``) takes the text from the search catalog after the commit."""

    def lexical_remove(self, space_id: str, labels: Iterable[int], /) -> None:
        """Nothing, as ``lexical_put``."""

    def lexical_drop(self, space_id: str, /) -> None:
        """Nothing, as ``lexical_put``."""

    def insert_table(self, table: str, rows: pa.Table, /) -> None:
        if rows.num_rows == 0:
            return
        if rows.num_rows <= BOUND_ROWS_MAX and all(_bindable(field.type) for field in rows.schema):
            self._insert_values(table, rows)
            return
        # One Arrow scan per statement: DuckDB's executemany costs about half a millisecond per row.
        view = f"{table}_incoming"
        columns = ", ".join(rows.column_names)
        with _duckdb_call:
            self.raw.register(view, rows)
            try:
                self.raw.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {view}")
            except duckdb.ConstraintException as exc:
                raise KeyTaken(str(exc)) from exc
            finally:
                self.raw.unregister(view)

    def _insert_values(self, table: str, rows: pa.Table) -> None:
        """The rows as one ``INSERT ... VALUES`` with parameters; a map column binds as its keys and its values."""
        marks = [_map_mark(field.type) if pa.types.is_map(field.type) else "?" for field in rows.schema]
        values = ", ".join(["(" + ", ".join(marks) + ")"] * rows.num_rows)
        maps = {field.name for field in rows.schema if pa.types.is_map(field.type)}
        parameters: list[Any] = []
        for record in rows.to_pylist():
            for name in rows.column_names:
                value = record[name]
                if name not in maps:
                    parameters.append(value)
                elif value is None:
                    parameters += [None, None]
                else:
                    parameters += [[key for key, _ in value], [item for _, item in value]]
        self.execute(f"INSERT INTO {table} ({', '.join(rows.column_names)}) VALUES {values}", parameters)


#: Up to this many rows, ``insert_table`` binds them as parameters instead of registering an Arrow table. DuckDB
#: plans each registered scan anew: a one-row cube took 5.0 ms that way against 2.9 ms bound, and the two met near
#: five rows (docs/performance.md). One cube a call (CreateCube, UpdateCube, a lifecycle change) writes one row.
BOUND_ROWS_MAX = 4
#: The SQL types of the Arrow types a map column's keys and items may have, for their casts.
_MAP_PART_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT"}


def _bindable(kind: pa.DataType) -> bool:
    """Whether a column of this Arrow type binds as parameters with the value ``to_pylist`` gives."""
    if pa.types.is_map(kind):
        return kind.key_type in _MAP_PART_TYPES and kind.item_type in _MAP_PART_TYPES
    if pa.types.is_list(kind):
        nested = pa.types.is_list(kind.value_type) or pa.types.is_map(kind.value_type)
        return not nested and _bindable(kind.value_type)
    if pa.types.is_timestamp(kind):
        return kind.tz is not None  # an aware datetime; a naive one would be read in DuckDB's time zone
    return any(
        check(kind)
        for check in (
            pa.types.is_string,
            pa.types.is_binary,
            pa.types.is_integer,
            pa.types.is_boolean,
            pa.types.is_floating,
            pa.types.is_null,
        )
    )


def _map_mark(kind: pa.MapType) -> str:
    return f"map(?::{_MAP_PART_TYPES[kind.key_type]}[], ?::{_MAP_PART_TYPES[kind.item_type]}[])"


#: One ``id_list`` parameter as a list of strings: ``SELECT unnest({SPLIT_LIST}) ...``.
SPLIT_LIST = "string_split(?, chr(31))"
#: A subquery of the ids passed as one ``id_list`` parameter: ``... WHERE cube_id IN {IDS}``.
IDS = f"(SELECT unnest({SPLIT_LIST}))"
#: The same for integer ids (``id_list`` of numbers; never empty).
INT_IDS = f"(SELECT CAST(unnest({SPLIT_LIST}) AS BIGINT))"


def id_list(ids: Iterable[str | int]) -> str:
    """Many ids as one string parameter, for ``IDS`` and ``INT_IDS``.

    DuckDB's Python client binds a list parameter element by element, and tries to import pandas for each
    one (``remember_pandas_missing`` makes that try cheap, but not free). One string binds at once. Ids
    never hold the separator (unit separator, 0x1f).
    """
    texts = [str(i) for i in ids]
    if any("\x1f" in text for text in texts):
        raise ValueError("an id holds the unit separator")
    return "\x1f".join(texts)


class _PandasInDuckDB(importlib.abc.MetaPathFinder):
    """Fails ``import pandas`` at once on a thread inside a ``DuckCursor`` call (entered as a context), and says
    nothing anywhere else, so that ``importlib.util.find_spec("pandas")`` elsewhere still returns None."""

    def __init__(self) -> None:
        self._calls = threading.local()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" and getattr(self._calls, "depth", 0) > 0:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

    def __enter__(self) -> None:
        self._calls.depth = getattr(self._calls, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        self._calls.depth -= 1


#: What a ``DuckCursor`` call runs in: the finder once ``remember_pandas_missing`` installed it.
_duckdb_call: AbstractContextManager[None] = nullcontext()
_install_lock = threading.Lock()


def remember_pandas_missing() -> None:
    """Where pandas is not installed, makes ``import pandas`` inside DuckDB's calls fail at once (idempotent).

    DuckDB's Python client tries ``import pandas`` several times for every statement it binds parameters to
    and for every Arrow table it registers. Python does not remember a failed import, so each try walks
    ``sys.path`` again: about 200 µs of a 700 µs single-row INSERT. The finder answers only on a thread inside
    a ``DuckCursor`` call: a finder that raised everywhere would also make ``importlib.util.find_spec`` raise
    instead of returning None, which libraries that probe for pandas (transformers) do not expect; and
    ``sys.modules["pandas"] = None`` is read by pyarrow as an installed pandas. Where pandas is installed this
    does nothing.
    """
    global _duckdb_call
    with _install_lock:
        if isinstance(_duckdb_call, _PandasInDuckDB) or "pandas" in sys.modules:
            return
        if importlib.util.find_spec("pandas") is None:
            finder = _PandasInDuckDB()
            sys.meta_path.insert(0, finder)
            _duckdb_call = finder


class DuckDatabase(Database):
    """The embedded backend's DuckDB file: its writer (``Database``) and per-thread read cursors."""

    def __init__(self, path: Path, group_max: int, checkpoint_threshold_mb: int = DEFAULT_CHECKPOINT_MB) -> None:
        super().__init__(group_max, "duckdb-writer")
        remember_pandas_missing()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = duckdb.connect(str(path), config={"checkpoint_threshold": f"{checkpoint_threshold_mb}MB"})
        schema.migrate(self._connection)
        self._local = threading.local()
        self._cursors: list[DuckCursor] = []
        self._cursors_lock = threading.Lock()
        self._writer_cursor = DuckCursor(self._connection.cursor())
        self._start()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A cursor of this thread's own: DuckDB connections must not be shared by threads."""
        self._check_open()
        cursor: DuckCursor | None = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = DuckCursor(self._connection.cursor())
            self._local.cursor = cursor
            with self._cursors_lock:
                self._cursors.append(cursor)
        yield cursor

    def _run_transaction(self, applies: list[Callable[[Connection], Any]]) -> list[Any]:
        cursor = self._writer_cursor
        try:
            cursor.raw.begin()
            results = [apply(cursor) for apply in applies]
            cursor.raw.commit()
            return results
        except BaseException:
            try:
                cursor.raw.rollback()
            except duckdb.Error:
                log.exception("rollback failed")
            raise

    def _as_memos_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, duckdb.Error | KeyTaken):
            log.error("DuckDB write failed: %s", exc)
            return StorageError(f"the vault's database refused the write: {exc}")
        return exc

    def close(self) -> None:
        """Drains queued writes, checkpoints and closes the database."""
        if not self._stop_threads():
            return
        with self._cursors_lock:
            for cursor in self._cursors:
                cursor.raw.close()
        self._writer_cursor.raw.close()
        self._connection.execute("CHECKPOINT")
        self._connection.close()
