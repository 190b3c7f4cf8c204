"""Copies of scored postings' rows (``GatheredRows``): reused while valid, void once a row changes, bounded.

A filter's matches lie scattered over a space's matrix of unit vectors; the first exact scoring of a catalog
posting copies its rows into one block, and later searches under the same posting score the block. These
tests score through a real hnswlib-backed ``SpaceIndex`` and compare every answer with numpy's exact one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from memos_grpc.store.vectors import GatheredRows, IndexParams, SpaceIndex, VectorIndexes

Floats = npt.NDArray[np.float32]
DIM = 16


def unit_rows(rng: np.random.Generator, count: int) -> Floats:
    rows = rng.normal(size=(count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def posting(labels: list[int]) -> npt.NDArray[np.int64]:
    """A read-only label array, as the catalog shares a posting's."""
    shared = np.array(sorted(labels), dtype=np.int64)
    shared.flags.writeable = False
    return shared


def exact_top(vectors: dict[int, Floats], labels: npt.NDArray[np.int64], query: Floats, k: int) -> list[int]:
    scores = np.array([vectors[int(label)] @ query for label in labels])
    return [int(labels[i]) for i in np.argsort(-scores)[:k]]


def test_a_posting_scored_again_reads_its_block_and_a_vector_replaced_in_place_voids_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    gathered = GatheredRows(2**20)
    index = SpaceIndex(IndexParams(DIM, 8, 50, 16), tmp_path / "s.hnsw", gathered)
    vectors = unit_rows(rng, 300)
    index.add(range(300), vectors)
    units = dict(enumerate(vectors))
    odd = posting(list(range(1, 300, 2)))
    query = unit_rows(rng, 1)[0]

    assert [label for label, _ in index.nearest_of(query, odd, 10)] == exact_top(units, odd, query, 10)
    assert gathered.nbytes >= len(odd) * DIM * 4  # the block was kept
    assert index.scores_from_block(odd)
    assert not index.scores_from_block(np.array(odd))  # a writable copy is no posting
    entry = gathered.find(index.owner, odd, 0)
    assert entry is not None and entry.block is not None
    # Scored again: the same answer, from the block.
    assert [label for label, _ in index.nearest_of(query, odd, 10)] == exact_top(units, odd, query, 10)

    # Start-up repair gives a held label its stored vector again: the copy of that row is out of date. Make the
    # replaced label the query itself, so a stale block would miss it at the top.
    label = int(odd[7])
    replaced = unit_rows(rng, 1)
    index.add([label], replaced)
    units[label] = replaced[0]
    assert not index.scores_from_block(odd)
    found = index.nearest_of(replaced[0], odd, 3)
    assert found[0][0] == label and abs(found[0][1] - 1.0) < 1e-5
    assert [hit for hit, _ in found] == exact_top(units, odd, replaced[0], 3)


def test_blocks_stay_within_the_budget_least_recently_used_out_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    block_bytes = 100 * DIM * 4
    gathered = GatheredRows(2 * block_bytes + 2 * 100 * 16)  # two blocks of 100 rows, with their label arrays
    index = SpaceIndex(IndexParams(DIM, 8, 50, 16), tmp_path / "s.hnsw", gathered)
    vectors = unit_rows(rng, 400)
    index.add(range(400), vectors)
    units = dict(enumerate(vectors))
    first, second, third = (posting(list(range(start, 400, 4))) for start in range(3))
    query = unit_rows(rng, 1)[0]
    for shared in (first, second, first, third):  # ``first`` used again, so ``second`` is the oldest
        assert [label for label, _ in index.nearest_of(query, shared, 5)] == exact_top(units, shared, query, 5)
        assert gathered.nbytes <= gathered.budget_bytes
    assert gathered.find(index.owner, second, 0) is None
    assert gathered.find(index.owner, first, 0) is not None
    assert gathered.find(index.owner, third, 0) is not None


def test_a_posting_larger_than_the_budget_is_scored_without_a_copy(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    gathered = GatheredRows(10 * DIM * 4)  # ten rows' worth
    index = SpaceIndex(IndexParams(DIM, 8, 50, 16), tmp_path / "s.hnsw", gathered)
    vectors = unit_rows(rng, 200)
    index.add(range(200), vectors)
    units = dict(enumerate(vectors))
    even = posting(list(range(0, 200, 2)))
    for query in unit_rows(rng, 3):
        assert [label for label, _ in index.nearest_of(query, even, 5)] == exact_top(units, even, query, 5)
    entry = gathered.find(index.owner, even, 0)
    assert entry is not None and entry.block is None  # only the row order is kept
    assert not index.scores_from_block(even)


def test_dropping_a_space_frees_its_blocks(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    indexes = VectorIndexes(tmp_path / "indexes", IndexParams(DIM, 8, 50, 16), gathered_bytes=2**20)
    kept, dropped = indexes.get("kept"), indexes.get("dropped")
    for index in (kept, dropped):
        index.add(range(100), unit_rows(rng, 100))
        index.nearest_of(unit_rows(rng, 1)[0], posting(list(range(0, 100, 2))), 5)
    before = indexes.gathered.nbytes
    indexes.drop("dropped")
    assert 0 < indexes.gathered.nbytes < before
