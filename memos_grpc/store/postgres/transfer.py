"""Copying an embedded vault (a data directory's DuckDB file and blob files) into an empty PostgreSQL database.

``memos-grpc migrate`` (cli/migrate.py) drives it through ``VaultTransfer``: the DuckDB file is opened read-only (a
running server's file lock refuses that), the target must hold no vault, every blob's bytes go in first, then every
table of the embedded schema in one transaction, by COPY from Arrow batches, with the BM25 documents of the cubes
(which PostgreSQL keeps as rows, ``lexical_documents.py``); ``check`` then counts both sides. What a server derives
from the records (vector indexes, the catalog) and its own files (keys, the admin token) stay in the data
directory, which a server on the PostgreSQL database uses too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import duckdb
import psycopg
import pyarrow as pa

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.errors import FailedPreconditionError, MemosError, NotFoundError, StorageError
from memos_grpc.settings import Settings
from memos_grpc.store import schema
from memos_grpc.store.blobs import BlobStore
from memos_grpc.store.cursor import Cursor, KeyTaken
from memos_grpc.store.database import DuckCursor
from memos_grpc.store.lexical import lexical_text
from memos_grpc.store.postgres.blobs import CHUNK_BYTES, PgBlobStore
from memos_grpc.store.postgres.cursor import PgCursor
from memos_grpc.store.postgres.database import WRITE_LOCK, PostgresDatabase, connection_options
from memos_grpc.store.postgres.migrations import applied, schema_version
from memos_grpc.store.uploads import store_blob

log = logging.getLogger(__name__)

#: Rows read from DuckDB and copied into PostgreSQL at a time: one Arrow batch, one COPY.
BATCH_ROWS = 4096
#: Meta keys that describe the DuckDB file itself, not the vault: PostgreSQL's schema version is its
#: ``schema_migrations``.
_FILE_META = "schema_version"
_TABLES = (
    "SELECT table_name FROM information_schema.tables "
    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
)
_COLUMNS = (
    "SELECT column_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position"
)


class Progress(Protocol):
    """What a transfer reports as it goes (the command prints it)."""

    def blob_copied(self, digest: str, size: int, done: int, total: int) -> None:
        """Blob number ``done`` of ``total`` is in the database (``size`` bytes)."""
        ...

    def table_copied(self, table: str, done: int, total: int) -> None:
        """``done`` of the table's ``total`` rows are copied (once per batch; once with 0 for an empty table)."""
        ...

    def documents_written(self, done: int, total: int) -> None:
        """The BM25 documents of ``done`` of the ``total`` cubes with a vector label are written (once per batch)."""
        ...


@dataclass(frozen=True)
class TableCount:
    """A table's rows on both sides."""

    table: str
    source: int
    target: int

    @property
    def matches(self) -> bool:
        return self.source == self.target


@dataclass(frozen=True)
class Copied:
    """What ``VaultTransfer.copy`` put in the database."""

    tables: tuple[tuple[str, int], ...]
    blobs: int
    blob_bytes: int
    #: Blobs the vault records whose file is not in the data directory: unreadable before, unreadable after.
    missing_files: tuple[str, ...]
    #: The highest vector label the vault issued; the database's sequence goes on after it.
    highest_label: int


@dataclass(frozen=True)
class Check:
    """The two sides compared after the copy: row counts, blob bytes and the next vector label."""

    counts: tuple[TableCount, ...]
    #: Blobs whose bytes in the database are absent or of another size than the vault records, or not recorded.
    blob_problems: tuple[str, ...]
    blobs: int
    blob_bytes: int
    highest_label: int
    next_label: int

    @property
    def problems(self) -> list[str]:
        found = [
            f"{count.table}: {count.source} rows in the data directory, {count.target} in the database"
            for count in self.counts
            if not count.matches
        ]
        found.extend(self.blob_problems)
        if self.next_label <= self.highest_label:
            found.append(
                f"the next vector label is {self.next_label}, not past the highest issued, {self.highest_label}"
            )
        return found

    def __bool__(self) -> bool:
        return not self.problems


class EmbeddedVault:
    """A data directory's DuckDB file, open read-only: what a transfer copies from."""

    def __init__(self, settings: Settings) -> None:
        path = settings.duckdb_path
        if not path.is_file():
            raise NotFoundError(f"{settings.data_dir} holds no vault: {path} does not exist")
        try:
            self._connection = duckdb.connect(str(path), read_only=True)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            # Another process's server holds the file's lock (IOException), or this process has it open for
            # writing (ConnectionException): either way a server is using the directory.
            if isinstance(exc, duckdb.IOException) and "lock" not in str(exc):
                raise StorageError(f"cannot open {path}: {exc}") from exc
            raise FailedPreconditionError(
                f"the data directory {settings.data_dir} is in use by a running server (DuckDB refuses a second "
                "process its file while one writes to it): stop the server, then migrate",
                reason=reasons.DATABASE_IN_USE,
            ) from exc
        except duckdb.Error as exc:
            raise StorageError(f"cannot open {path}: {exc}") from exc
        #: Reads one result at a time; ``batches`` streams on a cursor of its own.
        self._reader = DuckCursor(self._connection.cursor())
        try:
            self.tables = [str(name) for (name,) in self._reader.execute(_TABLES).fetchall()]
            self._check_version(settings)
        except BaseException:
            self._connection.close()
            raise

    def _check_version(self, settings: Settings) -> None:
        if "meta" not in self.tables:
            raise NotFoundError(f"{settings.duckdb_path} is not a vault's database (it has no meta table)")
        row = self._reader.execute("SELECT value FROM meta WHERE key = ?", [_FILE_META]).fetchone()
        version = int(row[0]) if row else 0
        if version > schema.SCHEMA_VERSION:
            raise FailedPreconditionError(
                f"the vault in {settings.data_dir} was written by a newer release (schema {version}, this one "
                f"knows {schema.SCHEMA_VERSION}): migrate it with that release",
                reason=reasons.SCHEMA_TOO_NEW,
            )
        if version < schema.SCHEMA_VERSION:
            raise FailedPreconditionError(
                f"the vault in {settings.data_dir} has schema {version}, older than this release's "
                f"{schema.SCHEMA_VERSION}: start this release's server on it once (it upgrades the file), stop it, "
                "then migrate"
            )

    def columns(self, table: str) -> list[str]:
        return [str(name) for (name,) in self._reader.execute(_COLUMNS, [table]).fetchall()]

    @staticmethod
    def _rows_of(table: str) -> tuple[str, list[Any]]:
        """The condition that picks the rows of ``table`` that belong to the vault, and its parameters."""
        return ("key <> ?", [_FILE_META]) if table == "meta" else ("TRUE", [])

    def count(self, table: str) -> int:
        condition, parameters = self._rows_of(table)
        row = self._reader.execute(f"SELECT count(*) FROM {table} WHERE {condition}", parameters).fetchone()
        return int(row[0]) if row else 0

    def batches(self, table: str, columns: list[str], where: str = "TRUE") -> Iterator[pa.Table]:
        """The vault's rows of ``table`` (those ``where`` picks) as Arrow tables of up to ``BATCH_ROWS`` rows."""
        condition, parameters = self._rows_of(table)
        condition = f"{condition} AND {where}"
        cursor = self._connection.cursor()
        try:
            cursor.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {condition}", parameters)
            for batch in cursor.to_arrow_reader(BATCH_ROWS):
                yield pa.Table.from_batches([batch])
        except duckdb.Error as exc:
            raise StorageError(f"reading {table} from the data directory's database failed: {exc}") from exc
        finally:
            cursor.close()

    def blobs(self) -> list[tuple[str, int]]:
        """Every blob the vault records: its digest and size, in digest order."""
        rows = self._reader.execute("SELECT digest, size_bytes FROM blobs ORDER BY digest").fetchall()
        return [(str(digest), int(size)) for digest, size in rows]

    def labelled_cubes(self) -> int:
        """How many cubes carry a vector label: those with a BM25 document if they have text."""
        row = self._reader.execute("SELECT count(*) FROM cubes WHERE vec_id IS NOT NULL").fetchone()
        return int(row[0]) if row else 0

    def documents(self) -> Iterator[list[tuple[str, int, str | None]]]:
        """The BM25 documents of the cubes with a vector label, ``BATCH_ROWS`` at a time: (space, label, text)."""
        for rows in self.batches("cubes", ["space_id", "vec_id", "cube_pb"], "vec_id IS NOT NULL"):
            spaces, labels, cubes = (rows.column(name).to_pylist() for name in ("space_id", "vec_id", "cube_pb"))
            yield [
                (str(space_id), int(label), lexical_text(cube_pb2.MemCube.FromString(cube_pb)))
                for space_id, label, cube_pb in zip(spaces, labels, cubes, strict=True)
            ]

    def highest_label(self) -> int:
        """The highest vector label the vault issued: a live cube's, or the durable high-water mark of labels
        (``meta.last_vec_id``, which remembers those of removed cubes). Versions carry no label."""
        row = self._reader.execute(
            "SELECT greatest(coalesce(max(vec_id), 0), "
            "coalesce((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'last_vec_id'), 0)) FROM cubes"
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._connection.close()


def _occupied(cursor: Cursor, tables: list[str]) -> list[str]:
    """The tables among ``tables`` that hold a row (each must exist)."""
    return [table for table in tables if cursor.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None]


def _refuse_occupied(occupied: list[str]) -> None:
    if occupied:
        raise FailedPreconditionError(
            f"the target database already holds a vault (rows in {', '.join(occupied)}): migrate copies into an "
            "empty database only"
        )


def _require_empty_target(url: str, tables: list[str]) -> None:
    """Refuses a database that holds any of the vault's rows or a newer schema, before anything is written to it."""
    try:
        with psycopg.connect(**connection_options(url)) as connection:
            done = applied(connection)
            if done and done[-1] > schema_version():
                raise FailedPreconditionError(
                    f"the target database's schema is version {done[-1]}, newer than this release's "
                    f"{schema_version()}: migrate with the release that made it",
                    reason=reasons.SCHEMA_TOO_NEW,
                )
            cursor = PgCursor(connection.cursor())
            present = {str(name) for (name,) in cursor.execute(_TABLES).fetchall()}
            _refuse_occupied(_occupied(cursor, [table for table in tables if table in present]))
    except psycopg.Error as exc:
        raise StorageError(f"cannot read the target database: {exc}") from exc


class VaultTransfer:
    """One migration: the embedded vault open read-only, and the target database migrated and held with the
    database's lock alone (no server can start on either side) until ``close``.

    Refusals (no vault, a running server, a target that holds a vault) are raised by the constructor, before
    anything is written anywhere.
    """

    def __init__(self, settings: Settings) -> None:
        self.source = EmbeddedVault(settings)
        try:
            _require_empty_target(settings.postgres_url, self.source.tables)
            self.database = PostgresDatabase(
                settings.postgres_url, settings.write_group_max, pool_size=2, exclusive=True
            )
        except psycopg.Error as exc:
            self.source.close()
            raise StorageError(f"cannot open the target database: {exc}") from exc
        except BaseException:
            self.source.close()
            raise
        self._url = settings.postgres_url
        try:
            with self.database.read() as cursor:
                self._columns = self._matching_columns(cursor)
                _refuse_occupied(_occupied(cursor, self.source.tables))
            self._files = BlobStore(settings.blob_dir)
            self._chunks = PgBlobStore(self.database, settings.blob_dir / "tmp")
        except BaseException:
            self.close()
            raise

    def _matching_columns(self, target: Cursor) -> dict[str, list[str]]:
        """Each table's columns, the same on both sides (by name; their order may differ)."""
        columns = {}
        for table in self.source.tables:
            ours = self.source.columns(table)
            theirs = [str(name) for (name,) in target.execute(_COLUMNS, [table]).fetchall()]
            if sorted(ours) != sorted(theirs):
                raise FailedPreconditionError(
                    f"table {table} has columns {sorted(ours)} in the data directory but {sorted(theirs)} in the "
                    "PostgreSQL schema: this release cannot migrate the vault"
                )
            columns[table] = ours
        return columns

    def copy(self, progress: Progress) -> Copied:
        """Copies every blob's bytes, then every table; on failure the database is left without any of it."""
        # Blobs go first, each committed on its own by the blob store as a server stores an upload: bytes are
        # in before any row names them, and a blob's transaction stays small however many there are. If the
        # tables' copy then fails, the blobs this run added are deleted again; were the process killed in
        # between, the next run's table transaction deletes every blob no copied row names.
        added: list[str] = []
        try:
            blobs, blob_bytes, missing = self._copy_blobs(progress, added)
            tables = self._copy_tables(progress)
        except BaseException:
            self._forget(added)
            raise
        return Copied(tables, blobs, blob_bytes, tuple(missing), self.source.highest_label())

    def _copy_blobs(self, progress: Progress, added: list[str]) -> tuple[int, int, list[str]]:
        recorded = self.source.blobs()
        copied, total_bytes, missing = 0, 0, []
        for done, (digest, size) in enumerate(recorded, start=1):
            if not self._files.exists(digest):
                log.warning("blob %s is recorded but its file is missing from %s", digest, self._files.root)
                missing.append(digest)
                continue
            # A blob already there was put in by an interrupted run: complete (its chunks went in together), and
            # its digest names its bytes.
            if not self._chunks.exists(digest):
                store_blob(
                    self._chunks,
                    self._files.read(digest, chunk_bytes=CHUNK_BYTES),
                    self._files.size(digest),
                    partial(_same_blob, digest, size),
                )
                added.append(digest)
            copied += 1
            total_bytes += size
            progress.blob_copied(digest, size, done, len(recorded))
        return copied, total_bytes, missing

    def _copy_tables(self, progress: Progress) -> tuple[tuple[str, int], ...]:
        """Every table in one transaction, under the write lock every server's writes take."""
        highest = self.source.highest_label()
        copied = []
        step = "the tables"
        try:
            with psycopg.connect(**connection_options(self._url)) as connection, connection.transaction():
                cursor = PgCursor(connection.cursor())
                cursor.execute("SELECT pg_advisory_xact_lock(?)", [WRITE_LOCK])
                _refuse_occupied(_occupied(cursor, self.source.tables))
                for table in self.source.tables:
                    step = f"table {table}"
                    total, done = self.source.count(table), 0
                    for rows in self.source.batches(table, self._columns[table]):
                        cursor.insert_table(table, rows)
                        done += rows.num_rows
                        progress.table_copied(table, done, total)
                    if done == 0:
                        progress.table_copied(table, 0, total)
                    copied.append((table, done))
                step = "the BM25 documents"
                self._write_documents(cursor, progress)
                step = "the vector label sequence"
                # nextval then returns the label after the highest; a sequence cannot be set to 0.
                cursor.execute("SELECT setval('vec_ids', ?, ?)", [max(highest, 1), highest > 0])
                # Chunks no copied row names were left by an interrupted run (the target held no vault).
                cursor.execute(
                    "DELETE FROM blob_chunks "
                    "WHERE NOT EXISTS (SELECT 1 FROM blobs WHERE blobs.digest = blob_chunks.digest)"
                )
        except (psycopg.Error, KeyTaken) as exc:
            raise StorageError(f"copying {step} failed, and no table's rows were committed: {exc}") from exc
        return tuple(copied)

    def _write_documents(self, cursor: PgCursor, progress: Progress) -> None:
        """Writes the BM25 documents of the copied cubes in the copy's transaction, as a server's writes would."""
        total, done = self.source.labelled_cubes(), 0
        for batch in self.source.documents():
            by_space: dict[str, list[tuple[int, str | None]]] = {}
            for space_id, label, text in batch:
                by_space.setdefault(space_id, []).append((label, text))
            for space_id, documents in by_space.items():
                cursor.lexical_put(space_id, documents)
            done += len(batch)
            progress.documents_written(done, total)

    def _forget(self, digests: list[str]) -> None:
        for digest in digests:
            try:
                self._chunks.delete(digest)
            except (psycopg.Error, MemosError) as exc:
                # The next run's table transaction removes what is left.
                log.warning("could not delete blob %s from the database after the failed copy: %s", digest, exc)

    def check(self) -> Check:
        """Counts every table's rows on both sides and each blob's bytes in the database, and reads the sequence."""
        recorded = dict(self.source.blobs())
        try:
            with self.database.read() as cursor:
                counts = tuple(
                    TableCount(table, self.source.count(table), _count(cursor, table)) for table in self.source.tables
                )
                stored = {
                    str(digest): int(size)
                    for digest, size in cursor.execute(
                        "SELECT digest, sum(length(data)) FROM blob_chunks GROUP BY digest"
                    ).fetchall()
                }
                row = cursor.execute("SELECT last_value, is_called FROM vec_ids").fetchone()
        except psycopg.Error as exc:
            raise StorageError(f"reading the database back failed: {exc}") from exc
        assert row is not None
        next_label = int(row[0]) + 1 if row[1] else int(row[0])
        problems = []
        for digest, size in recorded.items():
            if digest in stored and stored[digest] != size:
                problems.append(f"blob {digest}: {stored[digest]} bytes in the database, {size} recorded")
            elif digest not in stored and self._files.exists(digest):
                problems.append(f"blob {digest}: its file is in the data directory, its bytes not in the database")
        problems.extend(
            f"blob {digest}: bytes in the database that no record names" for digest in stored.keys() - recorded.keys()
        )
        return Check(
            counts,
            tuple(problems),
            len(stored),
            sum(stored.values()),
            self.source.highest_label(),
            next_label,
        )

    def close(self) -> None:
        self.database.close()
        self.source.close()


def _same_blob(digest: str, size: int, got_size: int, got_digest: str) -> None:
    """Refuses a blob file whose bytes are not those its record names."""
    if (got_digest, got_size) != (digest, size):
        raise StorageError(
            f"blob file of {digest} ({size} bytes recorded) holds {got_size} bytes hashing to {got_digest}: "
            "the data directory's copy is damaged"
        )


def _count(cursor: Cursor, table: str) -> int:
    row = cursor.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0
