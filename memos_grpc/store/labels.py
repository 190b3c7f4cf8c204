"""Vector labels, the ids hnswlib answers with: issued once, and vectors indexed ahead of the write storing them.

``Labels`` never issues a label twice: a label a crashed write had indexed may still be in an index file, and a
search answers by label. On the embedded backend labels count up from the highest of the cubes table, the
``last_vec_id`` mark and every index file; a write that takes a label out of the table raises the mark
(``cubes.EmbeddedCubeWrite.finish``). On PostgreSQL the database's sequence issues them for every server.
``Preindexed`` adds a write's vectors to its space's index while the write is prepared and committed.
"""

from __future__ import annotations

import threading

from memos_grpc.embedding.embedder import FloatArray
from memos_grpc.store.group_commit import Database
from memos_grpc.store.postgres.database import PostgresDatabase
from memos_grpc.store.vectors import BULK_ADD, SpaceVectors, Vectors


class Labels:
    """Issues vector labels never issued before, from any thread; ``CubeWrite`` makes the ones it uses durable."""

    def __init__(self, database: Database, indexes: Vectors) -> None:
        #: On PostgreSQL, several servers issue labels: the database's sequence does, for all of them.
        self._sequence = database.issue_labels if isinstance(database, PostgresDatabase) else None
        self._lock = threading.Lock()
        self._last = 0
        if self._sequence is not None:
            return
        with database.read() as cursor:
            row = cursor.execute(
                "SELECT greatest(coalesce(max(vec_id), 0), "
                "coalesce((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'last_vec_id'), 0)) FROM cubes"
            ).fetchone()
        # A label an index file holds was issued, even if its write never committed (vectors are indexed
        # while the writer commits, and an index may be saved in between): never issue it again.
        self._last = max(int(row[0]) if row else 0, indexes.max_label())

    def issue(self, count: int) -> list[int]:
        if self._sequence is not None:
            return self._sequence(count)
        with self._lock:
            first = self._last + 1
            self._last += count
        return list(range(first, first + count))

    @property
    def issued(self) -> int:
        """The highest label issued so far (embedded backend)."""
        return self._last


class Preindexed:
    """Vectors added to a space's index ahead of the write that stores their cubes (ingest speed), taken out again
    if it fails.

    A bulk add runs on a thread of its own from the moment the labels are issued, beside the call's checks and the
    writer's commit; a small one runs when the write waits for it. Safe because the search catalog, filled only
    after the commit, decides what a search may return: a vector indexed early is never seen before its cube.
    """

    def __init__(self, index: SpaceVectors, labels: list[int], vectors: FloatArray) -> None:
        self.labels = labels
        self._index = index
        self._vectors = vectors
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if len(labels) >= BULK_ADD:
            self._thread = threading.Thread(target=self._add, name="preindex", daemon=True)
            self._thread.start()

    def _add(self) -> None:
        try:
            self._index.add(self.labels, self._vectors)
        except BaseException as exc:  # raised to the caller by ``wait``
            self._error = exc

    def wait(self) -> None:
        if self._thread is None:
            self._index.add(self.labels, self._vectors)
            return
        self._thread.join()
        if self._error is not None:
            raise self._error

    def undo(self) -> None:
        if self._thread is not None:
            self._thread.join()
        self._index.delete(self.labels)
