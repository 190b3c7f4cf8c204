"""Contiguous copies of recently scored filters' rows, shared by every space's hnswlib index.

A catalog posting's rows lie scattered over a space's matrix of unit vectors, and gathering them costs about ten
times what scoring them does; ``SpaceIndex.nearest_of`` keeps the rows it gathered for a posting here, as one
block, and the next search under the same posting scores the block (docs/filtering.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memos_grpc.embedding.embedder import FloatArray

#: Vector labels as numpy holds them: a filter's matches, sorted.
LabelArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class GatheredEntry:
    """A scored posting: its labels (held, so their identity stays theirs) in row order, their rows, and a
    contiguous copy of those rows when the budget allowed one."""

    posting: LabelArray
    generation: int
    labels: LabelArray
    rows: LabelArray
    block: FloatArray | None

    @property
    def nbytes(self) -> int:
        return int(self.labels.nbytes + self.rows.nbytes + (0 if self.block is None else self.block.nbytes))


class GatheredRows:
    """Recently scored postings of every space, least recently used out first once past ``budget_bytes``.

    Catalog postings are read-only label arrays, shared until the posting changes, so an entry is found by the
    array's identity. An entry is valid for one generation of its space's index: a deletion, a label given out
    of order or a vector replaced in place starts a new one. A block larger than the whole budget is never
    copied; its entry keeps only the row order, a few bytes a label.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[tuple[int, int], GatheredEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def find(self, owner: int, posting: LabelArray, generation: int) -> GatheredEntry | None:
        with self._lock:
            key = (owner, id(posting))
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.posting is not posting or entry.generation != generation:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry

    def fits(self, nbytes: int) -> bool:
        """Whether a block of ``nbytes`` may be copied at all."""
        return nbytes <= self.budget_bytes

    def keep(self, owner: int, entry: GatheredEntry) -> None:
        with self._lock:
            key = (owner, id(entry.posting))
            if key in self._entries:
                self._drop(key)
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.budget_bytes and len(self._entries) > 1:
                self._drop(next(iter(self._entries)))

    def forget(self, owner: int) -> None:
        """Drops every entry of one space's index (the space is gone)."""
        with self._lock:
            for key in [key for key in self._entries if key[0] == owner]:
                self._drop(key)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def _drop(self, key: tuple[int, int]) -> None:
        self._bytes -= self._entries.pop(key).nbytes
