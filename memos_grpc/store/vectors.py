"""Per-space hnswlib indexes: a derived, rebuildable copy of the vectors kept in DuckDB.

hnswlib is not safe for adding while searching, so each index sits behind a
readers-writer lock. Indexes are saved atomically (temp file, rename) from
time to time and on shutdown; at start-up ``repair`` brings each one back in
line with DuckDB, so a crash between saves loses nothing.

Beside its graph each index keeps its live unit vectors in a float32 matrix
(``dimension * 4`` bytes a cube): exact scoring of a filter's few matches reads
rows from it, where hnswlib's ``get_items`` costs about 25 microseconds a label.
The matrix is filled as vectors are added and, at start-up, as repair proves
each loaded vector equal to the stored one; a label without a row falls back
to ``get_items``. A filter's matches come as a sorted array of labels, mapped to
rows through a sorted copy of the label-to-row map (``_lookup``) rather than a
dictionary look-up per label. A posting's rows lie scattered over the matrix,
and gathering them costs ten times what scoring them does; ``GatheredRows``
keeps contiguous copies of recently scored postings' rows, up to a byte budget
for the process, so a filter used again scores one block.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import hnswlib
import numpy as np

from memos_grpc.embedding.embedder import FloatArray
from memos_grpc.store.gathered_rows import GatheredEntry, GatheredRows
from memos_grpc.store.gathered_rows import LabelArray as LabelArray  # the store's name for it

log = logging.getLogger(__name__)


#: Vectors from which an add uses every core (hnswlib's threads), and is started ahead of its write
#: (``store/labels.Preindexed``); a smaller add stays on the calling thread, where a thread would cost more.
BULK_ADD = 64
#: Rows scored per slice by ``nearest_of``: 1024 rows of 384 floats (1.5 MiB) stay in the cache between the
#: gather and the product.
_SCORED_ROWS = 1024
#: Rows from which ``nearest_of`` shares the scoring between threads. A gather of scattered rows waits on
#: memory latency rather than bandwidth, and numpy and BLAS release the GIL, so two cores score 10,000 rows of
#: 384 in about half the time of one; below this the hand-off would cost more than it saves.
_PARALLEL_ROWS = 4096
#: The most threads one exact scoring uses, the calling thread included.
_MAX_SCORING_THREADS = 4
#: Largest difference of any component between a stored and an indexed unit vector that still counts
#: as the same vector (float32 rounding of the division by the norm stays far below it).
_SAME_VECTOR_TOLERANCE = 1e-4


_scorers: ThreadPoolExecutor | None = None
_scorers_lock = threading.Lock()


def _scoring_pool() -> tuple[ThreadPoolExecutor, int] | None:
    """The process's threads that share the scoring of large sets of rows, and how many; created on first use,
    None on one core."""
    global _scorers
    others = min(len(os.sched_getaffinity(0)), _MAX_SCORING_THREADS) - 1
    if others < 1:
        return None
    with _scorers_lock:
        if _scorers is None:
            _scorers = ThreadPoolExecutor(max_workers=others, thread_name_prefix="exact-scoring")
        return _scorers, others


def _score(
    matrix: FloatArray,
    rows: LabelArray,
    query: FloatArray,
    scores: FloatArray,
    lo: int,
    hi: int,
    block: FloatArray | None = None,
) -> None:
    """Writes the scores of ``rows[lo:hi]`` into ``scores[lo:hi]``, a cache-sized slice at a time, and the rows
    themselves into ``block[lo:hi]`` when given."""
    for start in range(lo, hi, _SCORED_ROWS):
        end = min(start + _SCORED_ROWS, hi)
        # mode="clip": the rows are valid, and "raise" would buffer the output.
        into = None if block is None else block[start:end]
        gathered = np.take(matrix, rows[start:end], axis=0, mode="clip", out=into)
        scores[start:end] = gathered @ query


#: Owners of ``GatheredRows`` entries: one number per ``SpaceIndex`` ever made, never reused.
_owners = itertools.count(1)


class SpaceVectors(Protocol):
    """The vectors of one space as the store and search use them: hnswlib's ``SpaceIndex`` on the embedded
    backend, ``PgSpaceVectors`` (rows of the database, searched by pgvector) on PostgreSQL."""

    #: Whether ``nearest_of`` answers a filter of any size as well as a graph search would (pgvector's planner
    #: picks an exact scan or a filtered graph walk), so that a search needs no probe or deep search first.
    filters_natively: bool

    def add(self, labels: Iterable[int], vectors: FloatArray) -> None: ...
    def delete(self, labels: Iterable[int]) -> int: ...
    def labels(self) -> set[int]: ...
    def stale(self, labels: list[int], vectors: FloatArray, held: set[int]) -> list[int]: ...
    def search(
        self, query: FloatArray, k: int, allowed: Callable[[int], bool] | None = None
    ) -> list[tuple[int, float]]: ...
    def nearest_of(self, query: FloatArray, labels: list[int] | LabelArray, k: int) -> list[tuple[int, float]]: ...
    def scores_from_block(self, labels: LabelArray) -> bool: ...


class Vectors(Protocol):
    """Every space's vectors: ``VectorIndexes`` (hnswlib files) or ``PgVectors`` (PostgreSQL)."""

    #: Whether the vectors are kept apart from the database's rows, and so checked against them at start-up.
    derived: bool

    def get(self, space_id: str) -> SpaceVectors: ...
    def drop(self, space_id: str) -> None: ...
    def max_label(self) -> int: ...
    def existing_files(self) -> list[str]: ...
    def flush(self) -> None: ...


class ReadWriteLock:
    """Many readers or one writer; writers wait for readers to leave."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass(frozen=True)
class IndexParams:
    """How every space's hnswlib index is built: vector dimension, graph degree ``m`` and the two ef settings."""

    dimension: int
    m: int
    ef_construction: int
    ef_search: int


class SpaceIndex:
    """The hnswlib index of one space, labels being the cubes' ``vec_id``."""

    filters_natively = False

    def __init__(self, params: IndexParams, path: Path, gathered: GatheredRows | None = None) -> None:
        self.params = params
        self.path = path
        #: Where scored postings are kept; without one, each only until the next posting is scored.
        self.gathered = gathered if gathered is not None else GatheredRows(0)
        self.owner = next(_owners)
        #: Raised, under the write lock, whenever a row moves or changes: older ``gathered`` entries are void.
        self._generation = 0
        self.lock = ReadWriteLock()
        self.dirty = False
        self._index = self._open()
        #: Label to row of ``_matrix``, the unit vector hnswlib holds; rows of deleted labels are reused.
        self._rows: dict[int, int] = {}
        self._matrix: FloatArray = np.empty((0, params.dimension), dtype=np.float32)
        self._free: list[int] = []
        #: ``_rows`` as two arrays, labels sorted and their rows (-1 once deleted), built when a search needs them:
        #: a filter's 10,000 matches map to rows in about 0.3 ms this way, against 3 ms of dictionary look-ups
        #: for labels in set order. Appends of higher labels extend it; other changes drop it.
        self._lookup: tuple[LabelArray, LabelArray] | None = None

    def _new(self, capacity: int) -> hnswlib.Index:
        index = hnswlib.Index(space="cosine", dim=self.params.dimension)
        index.init_index(max_elements=capacity, M=self.params.m, ef_construction=self.params.ef_construction)
        index.set_ef(self.params.ef_search)
        return index

    def _open(self) -> hnswlib.Index:
        if self.path.exists():
            index = hnswlib.Index(space="cosine", dim=self.params.dimension)
            try:
                index.load_index(str(self.path))
                index.set_ef(self.params.ef_search)
                return index
            except (RuntimeError, ValueError) as exc:
                # A derived file: an unreadable one is rebuilt from DuckDB by repair().
                log.warning("vector index %s unreadable (%s); rebuilding it from DuckDB", self.path, exc)
                self.dirty = True
        return self._new(1024)

    def labels(self) -> set[int]:
        """Every label the index holds, including those marked deleted."""
        with self.lock.read():
            return {int(x) for x in self._index.get_ids_list()}

    def stale(self, labels: list[int], vectors: FloatArray, held: set[int]) -> list[int]:
        """The labels among ``labels`` whose live vector here is not the matching row of ``vectors``.

        ``held`` is ``labels()``, taken once by the caller. A label counts as stale when it is absent,
        marked deleted, or carries another vector: what start-up repair must (re)add.
        """
        present = [i for i, label in enumerate(labels) if label in held]
        stale = [labels[i] for i in range(len(labels)) if labels[i] not in held]
        if not present:
            return stale
        with self.lock.read():
            try:
                found = np.asarray(self._index.get_items([labels[i] for i in present]), dtype=np.float32)
                live = present
            except RuntimeError:
                # Some are marked deleted (hnswlib refuses the whole call): sort them out one by one.
                live, rows = [], []
                for i in present:
                    try:
                        rows.append(self._index.get_items([labels[i]])[0])
                        live.append(i)
                    except RuntimeError:
                        stale.append(labels[i])
                found = np.asarray(rows, dtype=np.float32).reshape(len(live), self.params.dimension)
        # hnswlib's cosine space stores each vector divided by its norm; compare in that form.
        expected = _unit(np.asarray(vectors[live], dtype=np.float32))
        differs = np.abs(found - expected).max(axis=1, initial=0.0) > _SAME_VECTOR_TOLERANCE
        stale.extend(labels[i] for i, bad in zip(live, differs, strict=True) if bad)
        same = [j for j, bad in enumerate(differs) if not bad]
        with self.lock.write():
            self._remember([labels[live[j]] for j in same], found[same])
        return stale

    def _remember(self, labels: list[int], units: FloatArray) -> None:
        """Keeps the unit vectors hnswlib now holds under ``labels``; the caller holds the write lock."""
        written = len(self._rows) + len(self._free)  # rows ever written; those past them were never touched
        rows: list[int] = []
        new: list[tuple[int, int]] = []
        for label in labels:
            row = self._rows.get(label)
            if row is None:
                row = self._free.pop() if self._free else len(self._rows) + len(self._free)
                self._rows[label] = row
                new.append((label, row))
            rows.append(row)
        if len(new) < len(rows):
            self._generation += 1  # rows rewritten in place: copies of them are out of date
        self._extend_lookup(new)
        needed = len(self._rows) + len(self._free)
        if needed > len(self._matrix):
            grown = np.empty((max(needed, len(self._matrix) * 3 // 2), self.params.dimension), dtype=np.float32)
            # Only written rows are copied: the pages of the rest stay unmapped, so a row costs memory once used.
            grown[:written] = self._matrix[:written]
            self._matrix = grown
        self._matrix[np.asarray(rows, dtype=np.int64)] = units

    def _extend_lookup(self, new: list[tuple[int, int]]) -> None:
        """Keeps ``_lookup`` in step with labels just given rows; the caller holds the write lock.

        Labels are issued in increasing order, so new ones usually sort after every label held and are appended;
        any other change drops the lookup, to be rebuilt by the next search that needs it.
        """
        if self._lookup is None or not new:
            return
        held, rows = self._lookup
        added = np.array(sorted(new), dtype=np.int64).reshape(-1, 2)
        if len(held) and added[0, 0] <= held[-1]:
            self._lookup = None
            self._generation += 1
            return
        self._lookup = (np.concatenate((held, added[:, 0])), np.concatenate((rows, added[:, 1])))

    def _rows_of(self, labels: LabelArray) -> LabelArray:
        """The matrix rows of ``labels`` (-1 for a label without one); the caller holds the read lock."""
        lookup = self._lookup
        if lookup is None:
            # Concurrent readers may each build it; each builds the same arrays, and the assignment is atomic.
            held = np.fromiter(self._rows.keys(), dtype=np.int64, count=len(self._rows))
            rows = np.fromiter(self._rows.values(), dtype=np.int64, count=len(self._rows))
            order = np.argsort(held)
            lookup = self._lookup = (held[order], rows[order])
        held, rows = lookup
        if len(held) == 0:
            return np.full(len(labels), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(held, labels), len(held) - 1)
        return np.where(held[at] == labels, rows[at], -1)

    def add(self, labels: Iterable[int], vectors: FloatArray) -> None:
        """Adds vectors under labels; one the index holds already (even deleted) takes the new vector.

        Labels are issued once, so only start-up repair ever gives a held label another vector.
        """
        ids = np.fromiter(labels, dtype=np.int64)
        if len(ids) == 0:
            return
        with self.lock.write():
            needed = self._index.get_current_count() + len(ids)
            capacity = self._index.get_max_elements()
            if needed > capacity:
                self._index.resize_index(max(needed, capacity * 2))
            # Small adds stay on this thread; a bulk load uses every core.
            self._index.add_items(vectors, ids, num_threads=1 if len(ids) < BULK_ADD else -1)
            self._remember(ids.tolist(), _unit(np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)))
            self.dirty = True

    def delete(self, labels: Iterable[int]) -> int:
        """Marks labels deleted; returns how many were live (absent or deleted ones are skipped)."""
        deleted = 0
        with self.lock.write():
            for label in labels:
                try:
                    self._index.mark_deleted(int(label))
                    deleted += 1
                except RuntimeError:
                    pass  # not present or already deleted: the goal is reached
                row = self._rows.pop(int(label), None)
                if row is not None:
                    self._free.append(row)
                    self._lookup = None
                    self._generation += 1
            self.dirty = self.dirty or deleted > 0
        return deleted

    def search(
        self, query: FloatArray, k: int, allowed: Callable[[int], bool] | None = None
    ) -> list[tuple[int, float]]:
        """Returns up to ``k`` (label, cosine similarity) pairs, best first."""
        with self.lock.read():
            available = self._index.get_current_count()
            if available == 0:
                return []
            k = min(k, available)
            # No set_ef here: ef is the index's, shared by concurrent readers, and hnswlib already searches with
            # max(ef, k), the breadth wanted.
            try:
                labels, distances = self._index.knn_query(query, k=k, filter=allowed, num_threads=1)
            except RuntimeError:
                # Fewer live elements than k (deleted or filtered out): ask for what exists.
                return self._search_fewer(query, k, allowed)
        return [(int(label), 1.0 - float(d)) for label, d in zip(labels[0], distances[0], strict=True)]

    def _search_fewer(
        self, query: FloatArray, k: int, allowed: Callable[[int], bool] | None
    ) -> list[tuple[int, float]]:
        while k > 1:
            k //= 2
            try:
                labels, distances = self._index.knn_query(query, k=k, filter=allowed, num_threads=1)
            except RuntimeError:
                continue
            return [(int(label), 1.0 - float(d)) for label, d in zip(labels[0], distances[0], strict=True)]
        return []

    def vectors(self, labels: list[int]) -> FloatArray:
        """The unit vectors of live ``labels``, in their order."""
        with self.lock.read():
            rows = [self._rows.get(label) for label in labels]
            if None not in rows:
                return self._matrix[np.asarray(rows, dtype=np.int64)]
            # A label loaded from the file but not yet proved by repair: read from hnswlib itself.
            found = np.empty((len(labels), self.params.dimension), dtype=np.float32)
            for i, (label, row) in enumerate(zip(labels, rows, strict=True)):
                found[i] = self._matrix[row] if row is not None else self._index.get_items([label])[0]
            return found

    def scores_from_block(self, labels: LabelArray) -> bool:
        """Whether ``nearest_of`` would score these labels from a kept contiguous copy of their rows: then an
        exact scoring costs about one read of ``len(labels) * dimension`` floats, less than a deep graph search."""
        if labels.flags.writeable:
            return False
        entry = self.gathered.find(self.owner, labels, self._generation)
        return entry is not None and entry.block is not None

    def nearest_of(self, query: FloatArray, labels: list[int] | LabelArray, k: int) -> list[tuple[int, float]]:
        """The ``k`` labels among live ``labels`` whose vectors score highest against ``query``, best first.

        Exact: every label is scored. Rows are read in the matrix's order, a slice at a time, which reads
        memory about twice as fast as one gather in the labels' order; from ``_PARALLEL_ROWS`` rows on, by up to
        ``_MAX_SCORING_THREADS`` threads.
        """
        if len(labels) == 0:
            return []
        chosen = np.asarray(labels, dtype=np.int64)
        # A catalog posting (read-only, shared until it changes) may have been scored before.
        posting = labels if isinstance(labels, np.ndarray) and not labels.flags.writeable else None
        with self.lock.read():
            entry = None if posting is None else self.gathered.find(self.owner, posting, self._generation)
            if entry is not None:
                complete, rows, chosen = True, entry.rows, entry.labels
            else:
                rows = self._rows_of(chosen)
                complete = bool((rows >= 0).all())
                if complete:
                    # Rows are handed out in label order but for reused ones: nearly sorted, which a stable sort
                    # (timsort) orders in about linear time.
                    order = np.argsort(rows, kind="stable")
                    rows, chosen = rows[order], chosen[order]
            if entry is not None and entry.block is not None:
                scores = entry.block @ query
            elif complete:
                block = None
                if posting is not None and self.gathered.fits(len(rows) * self._matrix.shape[1] * 4):
                    block = np.empty((len(rows), self._matrix.shape[1]), dtype=np.float32)
                scores = np.empty(len(rows), dtype=np.float32)
                pooled = _scoring_pool() if len(rows) >= _PARALLEL_ROWS else None
                if pooled is None:
                    _score(self._matrix, rows, query, scores, 0, len(rows), block)
                else:
                    # Equal shares in whole slices: the pool's threads take all but the first, this thread the first;
                    # the read lock is held until every share is written.
                    pool, others = pooled
                    step = -(-len(rows) // ((others + 1) * _SCORED_ROWS)) * _SCORED_ROWS
                    pending = [
                        pool.submit(_score, self._matrix, rows, query, scores, lo, min(lo + step, len(rows)), block)
                        for lo in range(step, len(rows), step)
                    ]
                    _score(self._matrix, rows, query, scores, 0, min(step, len(rows)), block)
                    for share in pending:
                        share.result()
                if posting is not None and entry is None:
                    self.gathered.keep(self.owner, GatheredEntry(posting, self._generation, chosen, rows, block))
        if not complete:
            scores = self.vectors(chosen.tolist()) @ query  # a label not yet proved by repair: read from hnswlib
        if len(scores) > k:
            # The k highest sit past position len - k once partitioned there (no negated copy of 10,000 scores).
            top = np.argpartition(scores, len(scores) - k)[len(scores) - k :]
            top = top[np.argsort(-scores[top])]
        else:
            top = np.argsort(-scores)
        return [(int(chosen[i]), float(scores[i])) for i in top]

    def matrix_bytes(self) -> int:
        """Bytes the matrix of unit vectors takes, rows kept for growth included."""
        return int(self._matrix.nbytes)

    def save(self) -> None:
        with self.lock.read():
            if not self.dirty:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp = self.path.with_suffix(".tmp")
            self._index.save_index(str(temp))
            with open(temp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
            self.dirty = False


def _unit(vectors: FloatArray) -> FloatArray:
    """Each row divided by its norm, as hnswlib's cosine space stores it."""
    unit: FloatArray = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-30)
    return unit


class VectorIndexes:
    """The hnswlib indexes of every space, created on first use."""

    derived = True

    def __init__(self, directory: Path, params: IndexParams, gathered_bytes: int = 0) -> None:
        self.directory = directory
        self.params = params
        #: Scored postings' rows, shared by every space up to ``gathered_bytes``.
        self.gathered = GatheredRows(gathered_bytes)
        directory.mkdir(parents=True, exist_ok=True)
        self._indexes: dict[str, SpaceIndex] = {}
        self._lock = threading.Lock()

    def _path(self, space_id: str) -> Path:
        return self.directory / f"{space_id}.hnsw"

    def get(self, space_id: str) -> SpaceIndex:
        with self._lock:
            index = self._indexes.get(space_id)
            if index is None:
                index = SpaceIndex(self.params, self._path(space_id), self.gathered)
                self._indexes[space_id] = index
            return index

    def drop(self, space_id: str) -> None:
        with self._lock:
            index = self._indexes.pop(space_id, None)
            self._path(space_id).unlink(missing_ok=True)
        if index is not None:
            self.gathered.forget(index.owner)

    def max_label(self) -> int:
        """The highest label any open index holds, deleted or not (0 when none)."""
        with self._lock:
            indexes = list(self._indexes.values())
        return max((max(index.labels(), default=0) for index in indexes), default=0)

    def existing_files(self) -> list[str]:
        return sorted(p.stem for p in self.directory.glob("*.hnsw"))

    def flush(self) -> None:
        with self._lock:
            indexes = list(self._indexes.values())
        for index in indexes:
            index.save()
