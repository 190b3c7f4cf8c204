"""One open store: the DuckDB database and the stores derived from it, opened and closed together."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from memos_grpc.store.blobs import Blobs
from memos_grpc.store.catalog import SearchCatalog
from memos_grpc.store.group_commit import Database
from memos_grpc.store.vectors import Vectors

if TYPE_CHECKING:  # the follower applies changes to a Store
    from memos_grpc.store.postgres.follower import ChangeFollower


@dataclass
class Store:
    """The database (the truth) and what is kept in step with it after each commit.

    The vector indexes, the search catalog (with its BM25 index) and the blob files are written only by the
    store's own code after a commit (``removal.forget_removed``, ``cubes.CubeWrite``), and rebuilt from the
    database at start-up (``repair``) when a crash left them behind.
    """

    database: Database
    indexes: Vectors
    blobs: Blobs
    catalog: SearchCatalog = field(default_factory=SearchCatalog)
    #: On PostgreSQL, what keeps the derived stores in step with the other servers' writes; started by the node
    #: once every component that keeps records in memory has subscribed to it.
    follower: ChangeFollower | None = None

    def adopt_blob(self, temp: Path, digest: str) -> None:
        """Puts a written and verified temporary file (``Blobs.staging_path``) into the blob store, durably.

        Before the commit that names it: a blob no committed row names is swept after the grace period.
        """
        self.blobs.adopt(temp, digest)

    def flush(self) -> None:
        """Saves the vector indexes that changed since they were last saved (the database is the truth)."""
        self.indexes.flush()

    def close(self) -> None:
        """Stops following other servers, finishes queued writes, closes the database, then saves the indexes and
        closes the BM25 index."""
        if self.follower is not None:
            self.follower.close()
        self.database.close()
        self.indexes.flush()
        if self.catalog.lexical is not None:
            self.catalog.lexical.close()
