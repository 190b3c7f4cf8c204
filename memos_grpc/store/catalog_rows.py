"""Cube rows as the search catalog keeps them, and the catalog's update after a commit of changed rows."""

from __future__ import annotations

from memos_grpc.store.catalog import CatalogRow, SearchCatalog
from memos_grpc.store.lexical import lexical_text
from memos_grpc.store.rows import CubeRow, to_datetime
from memos_grpc.store.visibility import cube_access


def catalog_entries(rows: list[CubeRow], reindex: bool = True) -> list[CatalogRow]:
    """What the search catalog keeps of each row that has a vector.

    Without ``reindex`` the rows carry no text, so the lexical index keeps what it has: for changes
    that leave the text as it was (usage, lifecycle state).
    """
    return [
        CatalogRow(
            vec_id=r.vec_id,
            cube_pb=r.serialized(),
            expire_time=to_datetime(r.cube.expire_time),
            access=cube_access(r.cube),
            text=lexical_text(r.cube) if reindex else None,
        )
        for r in rows
        if r.vec_id is not None
    ]


def rows_committed(catalog: SearchCatalog, space_id: str, rows: list[CubeRow], *, reindex: bool = True) -> None:
    """Gives the catalog the committed rows of a space (rows without a vector are not in it)."""
    catalog.put(space_id, catalog_entries(rows, reindex=reindex))
