"""Usage counters: the cube rows a batch of recall uses is written to, and the write itself.

Use is bookkeeping, not a change of content: the counts go into the cube's current row in place (no new
version), and the search catalog takes the new messages without reindexing their text.
"""

from __future__ import annotations

from collections.abc import Collection

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.catalog import SearchCatalog
from memos_grpc.store.catalog_rows import rows_committed
from memos_grpc.store.cursor import CUBES
from memos_grpc.store.database import SPLIT_LIST, Connection, id_list
from memos_grpc.store.named import named_rows
from memos_grpc.store.rows import CubeRow


def countable_cubes(cursor: Connection, space_id: str, cube_ids: Collection[str]) -> list[CubeRow]:
    """The rows (without embeddings) of the named cubes that are still there and not emptied by expiry.

    Cubes deleted or expired since they were recalled are left out: their uses are not counted.
    """
    where, params = named_rows(cursor, "cubes", space_id, cube_ids)
    rows = cursor.execute(
        f"SELECT cube_id, cube_pb, vec_id FROM {where} AND state <> ?", [*params, cube_pb2.LIFECYCLE_STATE_EXPIRED]
    ).fetchall()
    return [
        CubeRow(space_id, cube_id, cube_pb2.MemCube.FromString(cube_pb), None if vec_id is None else int(vec_id), None)
        for cube_id, cube_pb, vec_id in rows
    ]


def overwrite_cubes(cursor: Connection, space_id: str, rows: list[CubeRow]) -> None:
    """Replaces the stored messages of a space's rows in place, in one statement (no new version).

    DuckDB spends milliseconds on each UPDATE it runs, so a row at a time (executemany) cost a busy server a
    third of its CPU. The new cubes travel as one hex string, which binds at once (see ``id_list``).
    """
    if not rows:
        return
    cursor.changed(CUBES, space_id, put=[r.vec_id for r in rows if r.vec_id is not None])
    cursor.execute(
        f"UPDATE cubes SET cube_pb = unhex(new.pb) FROM (SELECT unnest({SPLIT_LIST}) AS id, "
        f"unnest({SPLIT_LIST}) AS pb) AS new WHERE cubes.space_id = ? AND cubes.cube_id = new.id",
        [id_list(r.cube_id for r in rows), id_list(r.serialized().hex() for r in rows), space_id],
    )


def uses_committed(catalog: SearchCatalog, space_id: str, rows: list[CubeRow]) -> None:
    """Gives the catalog a space's rows with their new counts; the lexical index keeps the text it has."""
    rows_committed(catalog, space_id, rows, reindex=False)
