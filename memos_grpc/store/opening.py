"""Opening a store: the database, its derived stores, and the start-up repair that brings them in step."""

from __future__ import annotations

from memos_grpc.settings import Settings
from memos_grpc.store.blobs import BlobStore
from memos_grpc.store.database import DuckDatabase
from memos_grpc.store.group_commit import Database
from memos_grpc.store.lexical import LexicalIndex
from memos_grpc.store.postgres.blobs import PgBlobStore
from memos_grpc.store.postgres.changes import last_change
from memos_grpc.store.postgres.database import PostgresDatabase
from memos_grpc.store.postgres.follower import ChangeFollower, follow_store
from memos_grpc.store.postgres.lexical_search import PgLexicalIndex, fill_pending
from memos_grpc.store.postgres.vector_search import PgVectors
from memos_grpc.store.repair import RepairReport, repair_indexes
from memos_grpc.store.store import Store
from memos_grpc.store.vectors import IndexParams, VectorIndexes


def open_store(settings: Settings, params: IndexParams) -> tuple[Store, RepairReport]:
    """Opens the store under ``settings.data_dir`` and repairs its indexes and catalog from the database.

    Returns once every stored cube can be found, by vector and by its words alike. On PostgreSQL the store comes
    with a change follower (not yet started), as one of the servers that may share the database.
    """
    database: Database
    if settings.postgres_url:
        database = PostgresDatabase(settings.postgres_url, settings.write_group_max, settings.postgres_pool_size)
    else:
        database = DuckDatabase(settings.duckdb_path, settings.write_group_max, settings.checkpoint_threshold_mb)
    store = Store(
        database=database,
        # On PostgreSQL the rows are the index (pgvector); on DuckDB, hnswlib files beside the database.
        indexes=PgVectors(database, params)
        if isinstance(database, PostgresDatabase)
        else VectorIndexes(settings.index_dir, params, settings.exact_scoring_cache_mb * 2**20),
        # On PostgreSQL the bytes live in the database, for every server that shares it; temporary files stay local.
        blobs=PgBlobStore(database, settings.blob_dir / "tmp")
        if isinstance(database, PostgresDatabase)
        else BlobStore(settings.blob_dir),
    )
    # Before the catalog is loaded from DuckDB: loading it rebuilds the lexical index too. On PostgreSQL the
    # documents are the database's rows, written with the cubes: nothing is rebuilt.
    if isinstance(database, PostgresDatabase):
        fill_pending(database)
        store.catalog.lexical = PgLexicalIndex(database)
    else:
        store.catalog.lexical = LexicalIndex(settings.lexical_refresh_seconds)
    # The log's end before the repair reads anything: a change committed while it runs is applied again after.
    followed_from = None
    if isinstance(database, PostgresDatabase):
        with database.read() as cursor:
            followed_from = last_change(cursor)
    report = repair_indexes(store)
    # Serve only once every stored cube is found lexically too, not after the first background commits.
    store.catalog.lexical.refresh()
    if isinstance(database, PostgresDatabase) and followed_from is not None:
        store.follower = ChangeFollower(database.url, database.origin, followed_from, settings.change_poll_seconds)
        follow_store(store.follower, store)
    return store, report
