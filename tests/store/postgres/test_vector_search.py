"""Vector search in PostgreSQL (pgvector HNSW) against exact numpy answers, with and without filters.

Clustered vectors in one space, and as many again in another space whose rows the index holds too, so every
search of the first space runs past rows it must not return. Recall@10 is measured against numpy's exact top 10
(of the space, or of the filter's labels): unfiltered, under a random 10 % and 1 % of the labels, and under a
label set that follows the content (whole clusters), where post-filtering a short list returns almost nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.cursor import Cursor
from memos_grpc.store.postgres.database import PostgresDatabase
from memos_grpc.store.postgres.vector_search import PgVectorSearch, ensure_index
from memos_grpc.store.rows import CubeRow, insert_rows, next_version
from memos_grpc.store.vectors import IndexParams

DIMENSION = 32
PER_SPACE = 6000
CLUSTERS = 60
QUERIES = 40
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PARAMS = IndexParams(dimension=DIMENSION, m=16, ef_construction=64, ef_search=64)

Floats = npt.NDArray[np.float32]


def _clustered(rng: np.random.Generator, count: int, centroids: Floats) -> tuple[Floats, npt.NDArray[np.int64]]:
    which = rng.integers(0, len(centroids), count)
    points = centroids[which] + rng.normal(size=(count, DIMENSION)).astype(np.float32) * 0.35
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32), which


@pytest.fixture(scope="module")
def data() -> tuple[Floats, npt.NDArray[np.int64], Floats, Floats]:
    rng = np.random.default_rng(7)
    centroids = rng.normal(size=(CLUSTERS, DIMENSION)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    vectors, clusters = _clustered(rng, PER_SPACE, centroids)
    others, _ = _clustered(rng, PER_SPACE, centroids)
    queries, _ = _clustered(rng, QUERIES, centroids)
    return vectors, clusters, others, queries


def _rows(space_id: str, vectors: Floats, first_label: int) -> list[CubeRow]:
    rows = []
    for i, vector in enumerate(vectors):
        cube = cube_pb2.MemCube(name=f"spaces/{space_id}/cubes/c{i}", type=cube_pb2.MEMORY_TYPE_PLAINTEXT)
        cube.plaintext.text = f"cube {i}"
        cube.create_time.FromDatetime(NOW)
        next_version(cube, 0, NOW)
        rows.append(CubeRow(space_id, f"c{i}", cube, first_label + i, vector))
    return rows


@pytest.fixture
def database(url: str, data: tuple[Floats, npt.NDArray[np.int64], Floats, Floats]) -> Iterator[PostgresDatabase]:
    vectors, _, others, _ = data
    opened = PostgresDatabase(url, group_max=4)
    try:

        def load(cursor: Cursor) -> None:
            insert_rows(cursor, _rows("near", vectors, 1))
            insert_rows(cursor, _rows("other", others, PER_SPACE + 1))

        opened.write(load)
        ensure_index(opened, PARAMS)
        yield opened
    finally:
        opened.close()


def _recall(search: PgVectorSearch, vectors: Floats, queries: Floats, labels: npt.NDArray[np.int64] | None) -> float:
    """Mean recall@10 over the queries; ``labels`` (1-based) narrow the search and the exact answer alike."""
    rows = np.arange(len(vectors)) if labels is None else labels - 1
    found = 0
    for query in queries:
        exact = rows[np.argsort(-(vectors[rows] @ query))[:10]] + 1
        among = None if labels is None else labels.tolist()
        hits = search.search(query, 10, among)
        assert all(1 <= label <= PER_SPACE for label, _ in hits)  # never a row of the other space
        found += len({label for label, _ in hits} & set(exact.tolist()))
    return found / (10 * len(queries))


def test_recall_at_10_holds_unfiltered_and_under_filters_of_every_kind(
    database: PostgresDatabase, data: tuple[Floats, npt.NDArray[np.int64], Floats, Floats]
) -> None:
    vectors, clusters, _, queries = data
    rng = np.random.default_rng(11)
    search = PgVectorSearch(database, PARAMS, "near")
    filters = {
        "unfiltered": None,
        "random 10 %": np.sort(rng.choice(PER_SPACE, PER_SPACE // 10, replace=False)) + 1,
        "random 1 %": np.sort(rng.choice(PER_SPACE, PER_SPACE // 100, replace=False)) + 1,
        "three clusters": np.flatnonzero(clusters < 3) + 1,
    }
    recalls = {name: _recall(search, vectors, queries, labels) for name, labels in filters.items()}
    assert all(recall >= 0.95 for recall in recalls.values()), recalls


def test_similarities_are_the_cosines(
    database: PostgresDatabase, data: tuple[Floats, npt.NDArray[np.int64], Floats, Floats]
) -> None:
    vectors, _, _, queries = data
    hits = PgVectorSearch(database, PARAMS, "near").search(queries[0], 5)
    for label, similarity in hits:
        assert similarity == pytest.approx(float(vectors[label - 1] @ queries[0]), abs=1e-5)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def _plan(database: PostgresDatabase, search: PgVectorSearch, query: Floats) -> str:
    """The plan of an unfiltered search's query, under the settings the search sets."""
    settings, nearest = search.statements(query, 10)
    with database.transaction() as cursor:
        cursor.execute(*settings)
        rows = cursor.execute("EXPLAIN " + nearest[0], nearest[1]).fetchall()
    return "\n".join(str(line) for (line,) in rows)


def test_an_unfiltered_search_walks_the_graph_when_the_statistics_predate_the_space(
    database: PostgresDatabase, data: tuple[Floats, npt.NDArray[np.int64], Floats, Floats]
) -> None:
    """A space loaded after the last ANALYZE (autovacuum's comes later) looks a row or two to the planner, which
    would sort all its rows by distance through the ``(space_id, vec_id)`` index: an exact scan of the space."""
    vectors, _, _, queries = data
    with database.transaction() as cursor:
        cursor.execute("ALTER TABLE cubes SET (autovacuum_enabled = false)")  # no ANALYZE but the test's own
        cursor.execute("ANALYZE cubes")
    database.write(lambda cursor: insert_rows(cursor, _rows("fresh", vectors, 2 * PER_SPACE + 1)))
    search = PgVectorSearch(database, PARAMS, "fresh")
    plan = _plan(database, search, queries[0])
    assert f"cubes_embedding_hnsw_{DIMENSION}" in plan and "cubes_space_label" not in plan, plan
    hits = search.search(queries[0], 10)
    exact = np.argsort(-(vectors @ queries[0]))[:10] + 2 * PER_SPACE + 1
    assert len({label for label, _ in hits} & set(exact.tolist())) >= 9
