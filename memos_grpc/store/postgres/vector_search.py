"""Nearest-neighbour search over the cubes' embeddings in PostgreSQL, with pgvector.

One HNSW index over every live embedding (an expression index on ``embedding::vector(D)`` for the server's
dimension D, cosine distance), made at open by ``ensure_index``. A search in a space asks it for the nearest rows
of that space; since the index holds every space, it runs with ``hnsw.iterative_scan = relaxed_order``, so the
scan goes on past rows of other spaces (or outside a filter) until it has ``k`` that qualify, and the rows it
returns are sorted again, as relaxed order asks. An unfiltered search leaves the planner no sort to choose, so
it walks the graph even when the statistics predate the space's rows. Among a filter's labels (``among``) the
planner scans exactly when the labels are few (the index on ``(space_id, vec_id)``) and walks the graph under the
filter otherwise, with ``ef_search`` raised as the filter narrows, up to ``hnsw.max_scan_tuples``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from memos_grpc.embedding.embedder import FloatArray
from memos_grpc.store.postgres.database import PostgresDatabase
from memos_grpc.store.postgres.migrations import MIGRATION_LOCK
from memos_grpc.store.vectors import IndexParams, LabelArray

#: How much longer each list of the nearest is than the last when a search filters by a predicate.
_WIDENING = 4
#: How many times the index's ef a filtered search asks of the graph, and the most it asks.
_FILTERED_EF_FACTOR = 4
_MAX_EF = 1000


def ensure_index(database: PostgresDatabase, params: IndexParams) -> None:
    """Makes the HNSW index for ``params.dimension`` (once, whichever server gets there first)."""
    dimension = int(params.dimension)
    with database.transaction() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(?)", [MIGRATION_LOCK])
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS cubes_embedding_hnsw_{dimension} ON cubes "
            f"USING hnsw ((embedding::vector({dimension})) vector_cosine_ops) "
            f"WITH (m = {int(params.m)}, ef_construction = {int(params.ef_construction)})"
        )
        cursor.execute("CREATE INDEX IF NOT EXISTS cubes_space_label ON cubes (space_id, vec_id)")


class PgVectorSearch:
    """The nearest cubes of one space, by cosine similarity, as (vector label, similarity) pairs, best first."""

    def __init__(self, database: PostgresDatabase, params: IndexParams, space_id: str) -> None:
        self._database = database
        self._dimension = int(params.dimension)
        self._ef = int(params.ef_search)
        self._space_id = space_id

    def search(self, query: FloatArray, k: int, among: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """The ``k`` nearest live cubes of the space, or of those with a label in ``among``."""
        if k <= 0 or (among is not None and len(among) == 0):
            return []
        settings, nearest = self.statements(query, k, among)
        with self._database.transaction() as cursor:
            cursor.execute(*settings)
            rows = cursor.execute(*nearest).fetchall()
        return [(int(label), 1.0 - float(distance)) for label, distance in rows]

    def statements(
        self, query: FloatArray, k: int, among: Sequence[int] | None = None
    ) -> tuple[tuple[str, list[object]], tuple[str, list[object]]]:
        """The two statements of ``search``, each with its parameters: the transaction's settings, then the query
        (its plan is what ``EXPLAIN`` of it shows after the settings)."""
        vector = "[" + ",".join(map(repr, np.asarray(query, dtype=np.float32).tolist())) + "]"
        cast = f"vector({self._dimension})"
        where = "space_id = ? AND embedding IS NOT NULL"
        params: list[object] = [vector, self._space_id]
        # Under a filter, a wider candidate list per step of the iterative scan finds the matches in fewer steps.
        ef = min(max(self._ef, k) * (1 if among is None else _FILTERED_EF_FACTOR), _MAX_EF)
        settings = (
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', ?, true)"
        )
        if among is None:
            # Only the graph orders a whole space cheaply. Statistics that predate a space's rows (before
            # autovacuum's ANALYZE) make its rows look few, and the planner would sort them all instead: 27 ms
            # against 2 at 50,000 rows. Without a sort to choose, it walks the graph.
            settings += ", set_config('enable_sort', 'off', true)"
        else:
            # One text parameter, not an array: psycopg adapts a list element by element (4 ms for 10,000
            # labels), a join takes under 1. string_to_array is immutable, so the planner still sees the labels.
            where += " AND vec_id = ANY(string_to_array(?, ',')::bigint[])"
            params.append(",".join(map(str, among)))
        nearest = (
            f"SELECT vec_id, distance FROM (SELECT vec_id, embedding::{cast} <=> ?::{cast} AS distance "
            f"FROM cubes WHERE {where} ORDER BY distance LIMIT ?) AS nearest ORDER BY distance"
        )
        return (settings, [str(ef)]), (nearest, [*params, k])


class PgSpaceVectors:
    """A space's vectors on PostgreSQL: its cube rows are the index, so adds and deletes happen in the writes
    themselves, and there is nothing to repair at start-up."""

    filters_natively = True

    def __init__(self, search: PgVectorSearch) -> None:
        self._search = search

    def add(self, labels: Iterable[int], vectors: FloatArray) -> None:
        """Nothing: the row the write inserted holds the vector."""

    def delete(self, labels: Iterable[int]) -> int:
        """Nothing: the write removed the row or emptied its embedding."""
        return 0

    def labels(self) -> set[int]:
        """None kept apart from the rows."""
        return set()

    def stale(self, labels: list[int], vectors: FloatArray, held: set[int]) -> list[int]:
        """None: the rows are the index."""
        return []

    def search(
        self, query: FloatArray, k: int, allowed: Callable[[int], bool] | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest; under ``allowed``, from ever longer lists of the nearest, until ``k`` pass."""
        if allowed is None:
            return self._search.search(query, k)
        wanted = k
        while True:
            nearest = self._search.search(query, wanted * _WIDENING)
            kept = [hit for hit in nearest if allowed(hit[0])]
            if len(kept) >= k or len(nearest) < wanted * _WIDENING:
                return kept[:k]
            wanted *= _WIDENING

    def nearest_of(self, query: FloatArray, labels: list[int] | LabelArray, k: int) -> list[tuple[int, float]]:
        return self._search.search(query, k, labels.tolist() if isinstance(labels, np.ndarray) else labels)

    def scores_from_block(self, labels: LabelArray) -> bool:
        return False


class PgVectors:
    """Every space's vectors on PostgreSQL (``Vectors``), over the one HNSW index ``ensure_index`` makes."""

    derived = False

    def __init__(self, database: PostgresDatabase, params: IndexParams) -> None:
        self._database = database
        self._params = params
        ensure_index(database, params)

    def get(self, space_id: str) -> PgSpaceVectors:
        return PgSpaceVectors(PgVectorSearch(self._database, self._params, space_id))

    def drop(self, space_id: str) -> None:
        """Nothing: the space's rows went with it."""

    def max_label(self) -> int:
        """0: labels come from the database's sequence."""
        return 0

    def existing_files(self) -> list[str]:
        return []

    def flush(self) -> None:
        """Nothing to save."""
