"""What an export reads: the live cubes of one space that a caller may see, selected by name and filter."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.cubes import LIVE
from memos_grpc.store.database import IDS, Connection, id_list
from memos_grpc.store.filter import CompiledFilter
from memos_grpc.store.visibility import CubeVisibility

#: Rows fetched at a time: a selection is read in batches, never held whole.
BATCH_ROWS = 1000


def exported_cubes(
    cursor: Connection,
    space_id: str,
    now: datetime,
    visibility: CubeVisibility,
    cube_ids: Sequence[str],
    matching: CompiledFilter,
) -> Iterator[tuple[cube_pb2.MemCube, bytes | None]]:
    """The space's cubes live at ``now`` that ``visibility`` lets its caller see and ``matching`` selects, in id
    order, each with its stored embedding (``rows.vector_from_bytes`` reads it; None without a vector).

    ``cube_ids`` narrows the selection to those ids; empty, it is every cube. The rows are fetched in batches
    of ``BATCH_ROWS`` as the iterator is consumed, on ``cursor``, which must stay open until then.
    """
    visibility_sql, visibility_params = visibility.sql()
    names_sql = f"cube_id IN {IDS}" if cube_ids else "TRUE"
    names_params: list[Any] = [id_list(cube_ids)] if cube_ids else []
    result = cursor.execute(
        f"SELECT cube_pb, embedding FROM cubes WHERE space_id = ? AND {LIVE} AND {visibility_sql} "
        f"AND {names_sql} AND ({matching.sql}) ORDER BY cube_id",
        [space_id, now, *visibility_params, *names_params, *matching.params],
    )
    while batch := result.fetchmany(BATCH_ROWS):
        for cube_pb, embedding in batch:
            yield cube_pb2.MemCube.FromString(cube_pb), None if embedding is None else bytes(embedding)
