"""The store's cube vocabulary as an interface: what the components call, and what a backend implements.

Components type their use of the store with these protocols; ``store/cubes.py`` is the embedded backend's
implementation (DuckDB, hnswlib, the in-memory catalog with BM25, blob files). A second backend implements the
same two protocols: ``CubeStore`` for reads and for running a write, ``CubeWrite`` for the changes of one write
transaction, whose derived stores (vectors, catalog, BM25, blob files) the backend brings in step after the commit.

The transaction handle (``CubeWrite.cursor``) is passed on, untouched, to the store's other record functions that
must commit with the cubes (license counts, audit events); components never run a statement on it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc.embedding.embedder import FloatArray
from memos_grpc.store.database import Connection
from memos_grpc.store.filter import CompiledFilter
from memos_grpc.store.removal import Removed
from memos_grpc.store.rows import CubeRow
from memos_grpc.store.visibility import CubeVisibility

T = TypeVar("T")


class Preindexing(Protocol):
    """Vectors being added to a space's index ahead of the write that stores their cubes (``CubeStore.preindex``):
    the write waits for the add after its commit, or takes the vectors out again if it fails."""

    labels: list[int]

    def wait(self) -> None:
        """Returns once the vectors are in the index; raises what the add raised."""
        ...

    def undo(self) -> None:
        """Takes the vectors out again (the write failed, or never ran)."""
        ...


class CubeWrite(Protocol):
    """The cube changes of one write transaction. Reads see the transaction's own writes."""

    now: datetime

    @property
    def cursor(self) -> Connection: ...

    # reads
    def space(self, space_id: str) -> space_pb2.Space: ...
    def row(self, space_id: str, cube_id: str, *, live: bool = True) -> CubeRow | None: ...
    def exists(self, space_id: str, cube_id: str) -> bool: ...
    def taken(self, space_id: str, cube_ids: Iterable[str]) -> set[str]: ...
    def by_provenance(self, space_id: str, provenance_ids: Iterable[str]) -> dict[str, CubeRow]: ...
    def blob_facts(self, digest: str) -> tuple[int, str] | None: ...
    def version(self, space_id: str, cube_id: str, version: int) -> CubeRow | None: ...
    def versions_before(self, space_id: str, cube_id: str, version: int) -> list[cube_pb2.MemCube]: ...

    # labels along derivation links
    def inherit_labels(self, space_id: str, cube: cube_pb2.MemCube) -> bool: ...
    def follow_labels(self, space_id: str, cube: cube_pb2.MemCube, before: Iterable[str]) -> None: ...

    # changes
    def register_blobs(self, blobs: Iterable[tuple[str, int, str, datetime]]) -> None: ...
    def create(self, rows: list[CubeRow]) -> None: ...
    def replace(self, row: CubeRow, previous_label: int | None, *, reindex: bool = True) -> None: ...
    def retire(self, space_id: str, cube_ids: Collection[str]) -> None: ...
    def forget_labels(self, space_id: str, labels: Collection[int]) -> None: ...
    def remove(self, space_id: str, cube_ids: Collection[str], *, keep_blobs: Collection[str] = ()) -> Removed: ...
    def expire(self, space_id: str, cube_ids: Collection[str], retention: timedelta) -> Removed: ...
    def remove_space(self, space_id: str) -> Removed: ...
    def remove_uploads(self, principal: str) -> Removed: ...
    def release_orphan_blobs(self, registered_before: datetime) -> Removed: ...
    def after_commit(self, effect: Callable[[], None]) -> None: ...


class CubeStore(Protocol):
    """Cube reads as committed, vector labels, and running a ``CubeWrite`` to its commit."""

    def new_labels(self, count: int) -> list[int]: ...

    def preindex(self, space_id: str, labels: list[int], vectors: FloatArray) -> Preindexing:
        """Starts adding vectors under new labels to the space's index now, while the caller prepares and commits
        their cubes; pass the result to ``write``, or ``undo`` it if no write follows."""
        ...

    def write(
        self,
        change: Callable[[CubeWrite], T],
        now: datetime,
        *,
        preindexed: Preindexing | None = None,
        concludes: bool = False,
    ) -> T:
        """Runs ``change`` in one transaction; returns once it is committed and the derived stores are in step.

        ``concludes``: the calling request succeeds exactly when this write commits; work the request offers
        (its audit event: ``group_commit.riding``) commits in the same transaction.
        """
        ...

    def taken(self, space_id: str, cube_ids: Iterable[str]) -> set[str]: ...
    def visible(
        self, space_id: str, cube_id: str, visibility: CubeVisibility, now: datetime
    ) -> tuple[cube_pb2.MemCube, bool]: ...
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
    ) -> list[tuple[str, cube_pb2.MemCube, bool]]: ...
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
    ) -> tuple[list[str], list[tuple[int, bytes]]]: ...
    def matching_labels(
        self, space_id: str, matching: CompiledFilter, visibility: CubeVisibility, now: datetime, *, archived: bool
    ) -> set[int]: ...
    def hidden_sources(
        self, space_id: str, cube: cube_pb2.MemCube, visibility: CubeVisibility, now: datetime
    ) -> list[str]: ...
