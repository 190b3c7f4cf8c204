"""What every vault component shares: settings, database, indexes, blobs, embedder, clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from memos_grpc import reasons
from memos_grpc.embedding.worker import EmbeddingWorker
from memos_grpc.errors import NotFoundError
from memos_grpc.settings import Settings
from memos_grpc.store.blobs import Blobs
from memos_grpc.store.catalog import SearchCatalog
from memos_grpc.store.cubes import EmbeddedCubeStore
from memos_grpc.store.database import Connection
from memos_grpc.store.group_commit import Database
from memos_grpc.store.interface import CubeStore
from memos_grpc.store.names import space_name
from memos_grpc.store.spaces import space_exists
from memos_grpc.store.store import Store
from memos_grpc.store.vectors import Vectors
from memos_grpc.vault.licensing import OpenGate, UsageGate


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class VaultContext:
    """The stores and services one open vault's components share; built once by ``Node`` and passed to each.

    Owns nothing itself: the ``Node`` opens and closes what it holds. ``licenses`` starts as ``OpenGate`` and is
    replaced by the node's license book.
    """

    settings: Settings
    store: Store
    embedder: EmbeddingWorker
    clock: Callable[[], datetime] = field(default=utc_now)
    #: Which licensed cubes an action may use now; the node wires in its license book.
    licenses: UsageGate = field(default_factory=OpenGate)
    #: The store's cube writes and reads (made from ``store``).
    cube_store: CubeStore = field(init=False)

    def __post_init__(self) -> None:
        self.cube_store = EmbeddedCubeStore(self.store)

    def require_space(self, cursor: Connection, space_id: str) -> None:
        """Raises NOT_FOUND unless the space exists."""
        if not space_exists(cursor, space_id):
            raise NotFoundError(f"space {space_name(space_id)} does not exist", reason=reasons.SPACE_NOT_FOUND)

    @property
    def database(self) -> Database:
        return self.store.database

    @property
    def indexes(self) -> Vectors:
        return self.store.indexes

    @property
    def blobs(self) -> Blobs:
        return self.store.blobs

    @property
    def catalog(self) -> SearchCatalog:
        return self.store.catalog

    @property
    def dimension(self) -> int:
        return self.embedder.dimension
