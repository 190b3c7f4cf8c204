"""Cube writes, the embedded backend: the one way a cube is created, given a new version, emptied or removed.

Every path that changes cubes — CreateCube and BatchCreateCubes, UpdateCube, the lifecycle (rollback, freeze,
archive, merge), transforms, imports, expiry, retention, erasure and DeleteSpace — runs its change through
``CubeStore.write`` (``store/interface.py``) as calls on one ``CubeWrite``. Here, ``EmbeddedCubeWrite`` writes
the DuckDB rows in the write's transaction and records what the derived stores must do; after the commit (on the
applier thread, in commit order) ``committed`` brings the vector indexes, the search catalog with its BM25 index
and the blob files in step. So the derived stores are written in one place, and a cube gets a new version one
way: ``rows.next_version`` numbers it, ``replace`` writes it. On PostgreSQL the BM25 documents are rows, written
in the transaction itself (``Cursor.lexical_put``, ``lexical_remove``; ``removal.py`` for removals).

Vector labels (hnswlib's ids) and the vectors indexed ahead of their write are ``store/labels.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta
from typing import NoReturn, TypeVar

import numpy as np

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc.embedding.embedder import FloatArray
from memos_grpc.errors import AlreadyExistsError, NotFoundError
from memos_grpc.store import derivation, removal
from memos_grpc.store.catalog_rows import catalog_entries
from memos_grpc.store.cursor import CUBES, SPACE_REMOVED, KeyTaken
from memos_grpc.store.database import IDS, Connection, id_list
from memos_grpc.store.filter import CompiledFilter
from memos_grpc.store.interface import CubeWrite, Preindexing
from memos_grpc.store.labels import Labels, Preindexed
from memos_grpc.store.named import delete_named, delete_rowids, named_rows, newest_versions, one_row, through_index
from memos_grpc.store.names import cube_name, space_name
from memos_grpc.store.postgres.database import PostgresDatabase
from memos_grpc.store.removal import Removed
from memos_grpc.store.rows import CubeRow, insert_rows, vector_from_bytes, version_vector
from memos_grpc.store.store import Store
from memos_grpc.store.visibility import CubeVisibility

T = TypeVar("T")

#: A condition over the cubes table that leaves out cubes past their expire time (bound to the time as of which).
LIVE = "(expire_time IS NULL OR expire_time > ?)"


class EmbeddedCubeWrite:
    """The cube changes of one write transaction; after its commit, ``committed`` updates the derived stores.

    Reads here see the transaction's own writes. Made only by ``EmbeddedCubeStore.write``.
    """

    def __init__(
        self, store: Store, cursor: Connection, now: datetime, labels: Labels, preindexed: Iterable[int] = ()
    ) -> None:
        self._store = store
        self._cursor = cursor
        self.now = now
        self._labels = labels
        #: Whether a label left the cubes table (a removal, a retired row, a vector replaced).
        self._dropped_labels = False
        self._preindexed = frozenset(preindexed)
        self._removed = Removed()
        #: What the derived stores do after the commit, in the order the changes were made.
        self._effects: list[Callable[[], None]] = []

    # -- reads, inside the transaction ---------------------------------------------

    def space(self, space_id: str) -> space_pb2.Space:
        """The space (raises NOT_FOUND SPACE_NOT_FOUND if it does not exist)."""
        found = self._cursor.execute("SELECT space_pb FROM spaces WHERE space_id = ?", [space_id]).fetchone()
        if found is None:
            raise NotFoundError(f"space {space_name(space_id)} does not exist", reason=reasons.SPACE_NOT_FOUND)
        return space_pb2.Space.FromString(found[0])

    def row(self, space_id: str, cube_id: str, *, live: bool = True) -> CubeRow | None:
        """The stored row of a cube (with ``live``, None once it is past its expire time)."""
        condition, params = (LIVE, [self.now]) if live else ("TRUE", [])
        found = self._cursor.execute(
            f"SELECT cube_pb, vec_id, embedding FROM {one_row(self._cursor, 'cubes')} AND {condition}",
            [cube_id, space_id, *params],
        ).fetchone()
        if found is None:
            return None
        cube_pb, vec_id, embedding = found
        return CubeRow(
            space_id,
            cube_id,
            cube_pb2.MemCube.FromString(cube_pb),
            None if vec_id is None else int(vec_id),
            None if embedding is None else vector_from_bytes(embedding),
        )

    def exists(self, space_id: str, cube_id: str) -> bool:
        """Whether the id is taken in the space (by a cube or its tombstone)."""
        return bool(self.taken(space_id, [cube_id]))

    def taken(self, space_id: str, cube_ids: Iterable[str]) -> set[str]:
        """Which of the ids are taken in the space."""
        return _taken(self._cursor, space_id, cube_ids)

    def by_provenance(self, space_id: str, provenance_ids: Iterable[str]) -> dict[str, CubeRow]:
        """The cubes of the space holding those provenance ids, by provenance id (vectors not read)."""
        rows = self._cursor.execute(
            f"SELECT cube_id, provenance_id, vec_id, cube_pb FROM cubes WHERE space_id = ? AND provenance_id IN {IDS}",
            [space_id, id_list(provenance_ids)],
        ).fetchall()
        return {
            str(provenance): CubeRow(
                space_id, str(cube_id), cube_pb2.MemCube.FromString(cube_pb), None if v is None else int(v), None
            )
            for cube_id, provenance, v, cube_pb in rows
        }

    def blob_facts(self, digest: str) -> tuple[int, str] | None:
        """An uploaded blob's size and media type (None if it is not in the store)."""
        found = self._cursor.execute("SELECT size_bytes, media_type FROM blobs WHERE digest = ?", [digest]).fetchone()
        return None if found is None else (int(found[0]), str(found[1]))

    def register_blobs(self, blobs: Iterable[tuple[str, int, str, datetime]]) -> None:
        """Records blobs whose files are in place (digest, size, media type, time); those known stay as they are."""
        for digest, size, media_type, when in blobs:
            self._cursor.execute(
                "INSERT INTO blobs VALUES (?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
                [digest, size, media_type, when],
            )

    @property
    def cursor(self) -> Connection:
        """The transaction, for the store's other functions (``blob_access``, license reservations...)."""
        return self._cursor

    def version(self, space_id: str, cube_id: str, version: int) -> CubeRow | None:
        """One stored version of a cube, with the vector it had (no label: labels belong to live rows)."""
        found = self._cursor.execute(
            "SELECT v.cube_pb, v.embedding, c.version = v.version, c.embedding FROM cube_versions v "
            "LEFT JOIN cubes c ON c.space_id = v.space_id AND c.cube_id = v.cube_id "
            "WHERE v.space_id = ? AND v.cube_id = ? AND v.version = ?",
            [space_id, cube_id, version],
        ).fetchone()
        if found is None:
            return None
        cube_pb, stored, is_live, live = found
        return CubeRow(
            space_id, cube_id, cube_pb2.MemCube.FromString(cube_pb), None, version_vector(stored, bool(is_live), live)
        )

    def versions_before(self, space_id: str, cube_id: str, version: int) -> list[cube_pb2.MemCube]:
        """The versions of a cube older than ``version``, newest first."""
        rows = self._cursor.execute(
            "SELECT cube_pb FROM cube_versions WHERE space_id = ? AND cube_id = ? AND version < ? "
            "ORDER BY version DESC",
            [space_id, cube_id, version],
        ).fetchall()
        return [cube_pb2.MemCube.FromString(pb) for (pb,) in rows]

    # -- derivation: labels follow links ---------------------------------------------

    def inherit_labels(self, space_id: str, cube: cube_pb2.MemCube) -> bool:
        """``derivation.inherit_labels`` in this transaction."""
        return derivation.inherit_labels(self._cursor, space_id, cube)

    def follow_labels(self, space_id: str, cube: cube_pb2.MemCube, before: Iterable[str]) -> None:
        """``derivation.follow_labels`` in this transaction: each derived cube that gains a label is written as
        its next version (its text, and so its vector and BM25 document, unchanged)."""
        for row in derivation.follow_labels(self._cursor, space_id, cube, before, self.now):
            self.replace(row, row.vec_id, reindex=False)

    # -- changes -----------------------------------------------------------------------

    def create(self, rows: list[CubeRow]) -> None:
        """Inserts new cubes (with a version row each); a taken id raises ALREADY_EXISTS CUBE_ALREADY_EXISTS.

        Rows with an embedding carry their label already (``Store.new_labels``).
        """
        try:
            insert_rows(self._cursor, rows)
        except KeyTaken as exc:
            # The primary key caught a taken id; the caller names it once this is rolled back (``Cubes._raise_taken``).
            raise AlreadyExistsError("a cube id is taken", reason=reasons.CUBE_ALREADY_EXISTS) from exc
        by_space: dict[str, list[CubeRow]] = {}
        for row in rows:
            by_space.setdefault(row.space_id, []).append(row)
        for space_id, written in by_space.items():
            self._index(space_id, written)
            self._catalog_put(space_id, written, reindex=True)

    def replace(self, row: CubeRow, previous_label: int | None, *, reindex: bool = True) -> None:
        """Writes ``row`` over the cube's live row, as a version of it (numbered by ``next_version``).

        ``previous_label``: the label the cube's vector had. A new vector takes a new label (a label never gets
        another vector: start-up repair is a plain set difference), and the old one leaves the index and the
        catalog. Without ``reindex`` the text is unchanged, and the BM25 index keeps what it has.
        """
        self._drop_live_rows(row.space_id, [row.cube_id])
        insert_rows(self._cursor, [row])
        if previous_label is not None and previous_label != row.vec_id:
            self._forget_labels(row.space_id, [previous_label])
        if row.vec_id is not None and row.vec_id != previous_label:
            self._index(row.space_id, [row])
        self._catalog_put(row.space_id, [row], reindex=reindex or row.vec_id != previous_label)

    def retire(self, space_id: str, cube_ids: Collection[str]) -> None:
        """Deletes the live rows of cubes that the same transaction writes again with ``create`` (their versions
        stay): an import's new version of a cube. The caller drops the labels it no longer uses (``replace``
        does both for one cube)."""
        if cube_ids:
            self._dropped_labels = True
            self._drop_live_rows(space_id, cube_ids)

    def forget_labels(self, space_id: str, labels: Collection[int]) -> None:
        """After the commit, takes those labels out of the space's index and catalog (a retired cube's vector)."""
        if labels:
            self._forget_labels(space_id, list(labels))

    def remove(self, space_id: str, cube_ids: Collection[str], *, keep_blobs: Collection[str] = ()) -> Removed:
        """Removes cubes with their versions, operation records and the blobs only they named (``removal``)."""
        return self._add(removal.remove_cubes(self._cursor, space_id, cube_ids, keep_blobs=keep_blobs))

    def expire(self, space_id: str, cube_ids: Collection[str], retention: timedelta) -> Removed:
        """Empties expired cubes into tombstones (``removal.expire_cubes``)."""
        return self._add(removal.expire_cubes(self._cursor, space_id, cube_ids, retention))

    def remove_space(self, space_id: str) -> Removed:
        """Removes a space with everything in it (``removal.remove_space``)."""
        return self._add(removal.remove_space(self._cursor, space_id))

    def remove_uploads(self, principal: str) -> Removed:
        """Removes a principal's upload records, and the blobs nothing else names (``removal.remove_uploads``)."""
        return self._add(removal.remove_uploads(self._cursor, principal))

    def release_orphan_blobs(self, registered_before: datetime) -> Removed:
        """Removes blobs nothing names, registered before the time (``removal.release_orphan_blobs``)."""
        return self._add(removal.release_orphan_blobs(self._cursor, registered_before))

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Runs ``effect`` after the commit, in order with the store's own (a caller's in-memory bookkeeping)."""
        self._effects.append(effect)

    # -- after the commit -------------------------------------------------------------

    def committed(self) -> None:
        """Brings the derived stores in step with what was committed, in the order it was written."""
        for effect in self._effects:
            effect()
        removal.forget_removed(self._store, self._removed)

    # -- internals ---------------------------------------------------------------------

    def finish(self) -> None:
        """Notes the removals for other servers, and raises the durable high-water mark of labels when a label
        left the cubes table.

        At start, labels are issued above the highest label of the cubes table, the mark and every index file. A
        label a write stores is in the table, so creating cubes needs no mark (one upsert a batch was 5 % of
        ingest); only a write that takes a label out of the table does, and it records every label issued so far.
        """
        for space_id, labels in self._removed.vectors.items():
            if labels and space_id not in self._removed.spaces:
                self._cursor.changed(CUBES, space_id, removed=labels)
        for space_id in self._removed.spaces:
            self._cursor.changed(SPACE_REMOVED, space_id)
        # On PostgreSQL the vec_ids sequence never issues a label twice; the mark is the embedded backend's.
        if self._dropped_labels and not isinstance(self._store.database, PostgresDatabase):
            self._cursor.execute(
                "INSERT INTO meta VALUES ('last_vec_id', ?) ON CONFLICT (key) DO UPDATE "
                "SET value = CAST(greatest(CAST(meta.value AS BIGINT), CAST(excluded.value AS BIGINT)) AS VARCHAR)",
                [str(self._labels.issued)],
            )

    def _drop_live_rows(self, space_id: str, cube_ids: Collection[str]) -> None:
        """Deletes the live rows of cubes about to be replaced or retired, each vector first copied into the
        version row of its version, so that each version keeps the vector it had (the version row of a live
        version stores none: ``rows.insert_rows``). Both rows are found by id (``named``)."""
        cursor = self._cursor
        live_rows, params = named_rows(cursor, "cubes", space_id, cube_ids)
        if not through_index(cursor, len(cube_ids)):
            live = cursor.execute(
                f"SELECT cube_id, version, embedding FROM {live_rows} AND embedding IS NOT NULL", params
            ).fetchall()
            if live:
                cursor.executemany(
                    "UPDATE cube_versions SET embedding = ? "
                    "WHERE space_id = ? AND cube_id = ? AND version = ? AND embedding IS NULL",
                    [[embedding, space_id, cube_id, version] for cube_id, version, embedding in live],
                )
            delete_named(cursor, "cubes", space_id, cube_ids)
            return
        # DuckDB: both rows through the cube_id indexes, then changed by rowid.
        found = cursor.execute(f"SELECT row_id, cube_id, version, embedding FROM {live_rows}", params).fetchall()
        vectors = {(cube_id, version): vector for _, cube_id, version, vector in found if vector is not None}
        if vectors:
            version_rows, _ = named_rows(cursor, "cube_versions", space_id, cube_ids)
            versions = cursor.execute(
                f"SELECT row_id, cube_id, version FROM {version_rows} AND embedding IS NULL", params
            ).fetchall()
            for row_id, cube_id, version in versions:
                if (cube_id, version) in vectors:
                    cursor.execute(
                        "UPDATE cube_versions SET embedding = ? WHERE rowid = ?", [vectors[(cube_id, version)], row_id]
                    )
        delete_rowids(cursor, "cubes", [row_id for row_id, *_ in found])

    def _add(self, removed: Removed) -> Removed:
        if removed.vector_count or removed.spaces:
            self._dropped_labels = True
        self._removed.add(removed)
        return removed

    def _index(self, space_id: str, rows: list[CubeRow]) -> None:
        fresh = [
            r for r in rows if r.vec_id is not None and r.embedding is not None and r.vec_id not in self._preindexed
        ]
        if not fresh:
            return
        labels = [r.vec_id for r in fresh if r.vec_id is not None]
        vectors = np.stack([r.embedding for r in fresh if r.embedding is not None])
        self._effects.append(lambda: self._store.indexes.get(space_id).add(labels, vectors))

    def _forget_labels(self, space_id: str, labels: list[int]) -> None:
        self._dropped_labels = True
        self._cursor.changed(CUBES, space_id, removed=labels)
        self._cursor.lexical_remove(space_id, labels)

        def forget() -> None:
            self._store.indexes.get(space_id).delete(labels)
            self._store.catalog.remove(space_id, labels)  # and the BM25 documents under those labels

        self._effects.append(forget)

    def _catalog_put(self, space_id: str, rows: list[CubeRow], *, reindex: bool) -> None:
        self._cursor.changed(CUBES, space_id, put=[r.vec_id for r in rows if r.vec_id is not None])
        if rows:
            entries = catalog_entries(rows, reindex=reindex)
            if reindex:
                self._cursor.lexical_put(space_id, [(entry.vec_id, entry.text) for entry in entries])
            self._effects.append(lambda: self._store.catalog.put(space_id, entries))


class EmbeddedCubeStore:
    """The cube side of the store: labels, and the writes that run a ``CubeWrite`` through the database's writer."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._labels = Labels(store.database, store.indexes)

    def new_labels(self, count: int) -> list[int]:
        """Vector labels never issued before; a ``CubeWrite`` that stores them makes them durable."""
        return self._labels.issue(count)

    def preindex(self, space_id: str, labels: list[int], vectors: FloatArray) -> Preindexed:
        return Preindexed(self._store.indexes.get(space_id), labels, vectors)

    def write(
        self,
        change: Callable[[CubeWrite], T],
        now: datetime,
        *,
        preindexed: Preindexing | None = None,
        concludes: bool = False,
    ) -> T:
        """Runs ``change`` in one committed transaction; returns once the derived stores are in step.

        ``preindexed``: vectors being added to the index (``preindex``), taken out again if the write fails.
        ``concludes``: the calling request succeeds exactly when this write commits (``group_commit.riding``).
        """
        database = self._store.database

        def apply(cursor: Connection) -> tuple[EmbeddedCubeWrite, T]:
            write = EmbeddedCubeWrite(
                self._store, cursor, now, self._labels, preindexed.labels if preindexed is not None else ()
            )
            result = change(write)
            write.finish()
            return write, result

        def after_commit(done: tuple[EmbeddedCubeWrite, T]) -> None:
            done[0].committed()

        if preindexed is None:
            return database.write(apply, after_commit, concludes=concludes)[1]
        try:
            committed = database.submit(apply, after_commit, concludes=concludes)
        except BaseException:
            preindexed.undo()
            raise
        try:
            preindexed.wait()
            return committed.result()[1]
        except BaseException:
            committed.exception()  # the writer is done with the rows before their labels go
            preindexed.undo()
            raise

    def taken(self, space_id: str, cube_ids: Iterable[str]) -> set[str]:
        """Which of the ids are taken in the space, as committed."""
        with self._store.database.read() as cursor:
            return _taken(cursor, space_id, cube_ids)

    def visible(
        self, space_id: str, cube_id: str, visibility: CubeVisibility, now: datetime
    ) -> tuple[cube_pb2.MemCube, bool]:
        """A cube ``visibility`` lets its caller see, expired or not, and whether it is live at ``now``.

        Raises NOT_FOUND: SPACE_NOT_FOUND without the space, CUBE_NOT_FOUND without such a cube.
        """
        condition, params = visibility.sql()
        with self._store.database.read() as cursor:
            found = cursor.execute(
                f"SELECT cube_pb, {LIVE} FROM {one_row(cursor, 'cubes')} AND {condition}",
                [now, cube_id, space_id, *params],
            ).fetchone()
            if found is None:
                _raise_not_found(cursor, space_id, cube_id)
        return cube_pb2.MemCube.FromString(found[0]), bool(found[1])

    def page(
        self,
        space_id: str,
        after: str,
        size: int,
        visibility: CubeVisibility,
        matching: CompiledFilter,
        now: datetime,
        *,
        expired: bool = False,
    ) -> list[tuple[str, cube_pb2.MemCube, bool]]:
        """Up to ``size`` cubes of the space after the id ``after`` in id order that the caller sees and the filter
        matches: (id, cube, live at ``now``). ``expired``: expired cubes (and tombstones) too.

        Raises NOT_FOUND SPACE_NOT_FOUND without the space.
        """
        condition, params = visibility.sql()
        live, live_params = ("TRUE", []) if expired else (LIVE, [now])
        with self._store.database.read() as cursor:
            require_space(cursor, space_id)
            rows = cursor.execute(
                f"SELECT cube_id, cube_pb, {LIVE} FROM cubes WHERE space_id = ? AND cube_id > ? AND {live} "
                f"AND {condition} AND ({matching.sql}) ORDER BY cube_id LIMIT ?",
                [now, space_id, after, *live_params, *params, *matching.params, size],
            ).fetchall()
        return [(str(cube_id), cube_pb2.MemCube.FromString(blob), bool(alive)) for cube_id, blob, alive in rows]

    def versions(
        self,
        space_id: str,
        cube_id: str,
        visibility: CubeVisibility,
        now: datetime,
        *,
        below: int | None = None,
        only: int | None = None,
        limit: int = 1,
    ) -> tuple[list[str], list[tuple[int, bytes]]]:
        """The live cube's sensitivity labels and its versions, newest first: those below ``below`` (up to
        ``limit``), or the one numbered ``only``.

        Raises NOT_FOUND (SPACE_NOT_FOUND, CUBE_NOT_FOUND) unless the cube is live and the caller may see it.
        """
        condition, params = visibility.sql()
        with self._store.database.read() as cursor:
            found = cursor.execute(
                f"SELECT sensitivity_labels FROM {one_row(cursor, 'cubes')} AND {LIVE} AND {condition}",
                [cube_id, space_id, now, *params],
            ).fetchone()
            if found is None:
                _raise_not_found(cursor, space_id, cube_id)
            versions = one_row(cursor, "cube_versions")
            if only is not None:
                rows = cursor.execute(
                    f"SELECT version, cube_pb FROM {versions} AND version = ?", [cube_id, space_id, only]
                ).fetchall()
            else:
                rows = cursor.execute(newest_versions(cursor), [cube_id, space_id, below, below, limit]).fetchall()
        return list(found[0]), [(int(v), bytes(pb)) for v, pb in rows]

    def matching_labels(
        self,
        space_id: str,
        matching: CompiledFilter,
        visibility: CubeVisibility,
        now: datetime,
        *,
        archived: bool,
    ) -> set[int]:
        """The labels of the live cubes with a vector that the filter matches and the caller may have ranked
        (``CubeVisibility.ranks``); ``archived``: archived cubes too."""
        condition, params = visibility.sql(ranked=True)
        if not archived:
            condition += f" AND state <> {cube_pb2.LIFECYCLE_STATE_ARCHIVED}"
        with self._store.database.read() as cursor:
            rows = cursor.execute(
                f"SELECT vec_id FROM cubes WHERE space_id = ? AND vec_id IS NOT NULL AND {LIVE} "
                f"AND {condition} AND ({matching.sql})",
                [space_id, now, *params, *matching.params],
            ).fetchall()
        return {int(r[0]) for r in rows}

    def hidden_sources(
        self, space_id: str, cube: cube_pb2.MemCube, visibility: CubeVisibility, now: datetime
    ) -> list[str]:
        """``derivation.hidden_sources``, as committed."""
        with self._store.database.read() as cursor:
            return derivation.hidden_sources(cursor, space_id, cube, now, visibility)


def _taken(cursor: Connection, space_id: str, cube_ids: Iterable[str]) -> set[str]:
    where, params = named_rows(cursor, "cubes", space_id, list(cube_ids))
    rows = cursor.execute(f"SELECT cube_id FROM {where}", params).fetchall()
    return {str(cube_id) for (cube_id,) in rows}


def _raise_not_found(cursor: Connection, space_id: str, cube_id: str) -> NoReturn:
    """NOT_FOUND for a cube the caller cannot have: SPACE_NOT_FOUND without the space, else CUBE_NOT_FOUND."""
    require_space(cursor, space_id)
    raise NotFoundError(f"cube {cube_name(space_id, cube_id)} does not exist", reason=reasons.CUBE_NOT_FOUND)


def require_space(cursor: Connection, space_id: str) -> None:
    """Raises NOT_FOUND SPACE_NOT_FOUND unless the space exists."""
    if cursor.execute("SELECT 1 FROM spaces WHERE space_id = ?", [space_id]).fetchone() is None:
        raise NotFoundError(f"space {space_name(space_id)} does not exist", reason=reasons.SPACE_NOT_FOUND)
