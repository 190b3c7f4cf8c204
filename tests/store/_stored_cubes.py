"""Cube rows for the store's tests: a few fields that decide what the store's queries find, and nothing else."""

from __future__ import annotations

from datetime import datetime

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.database import Database
from memos_grpc.store.rows import CubeRow, insert_rows, set_timestamp


def cube_row(
    space_id: str,
    cube_id: str,
    *,
    created: datetime,
    expires: datetime | None = None,
    state: int = cube_pb2.LIFECYCLE_STATE_ACTIVATED,
    owner: str = "",
    scope: int = cube_pb2.CubeAccess.SCOPE_SPACE,
    blob: str = "",
    labels: tuple[str, ...] = (),
) -> CubeRow:
    """A plaintext cube (an activation naming ``blob`` if given) of ``owner``, live until ``expires``."""
    cube = cube_pb2.MemCube(
        name=f"spaces/{space_id}/cubes/{cube_id}",
        state=state,  # type: ignore[arg-type]
        version=1,
        access=cube_pb2.CubeAccess(scope=scope, owner=owner),  # type: ignore[arg-type]
        sensitivity_labels=labels,
    )
    if blob:
        cube.activation.blob.digest = blob
    else:
        cube.plaintext.text = f"the text of {cube_id}"
    set_timestamp(cube.create_time, created)
    set_timestamp(cube.update_time, created)
    if expires is not None:
        set_timestamp(cube.expire_time, expires)
    return CubeRow(space_id, cube_id, cube, None, None)


def insert_cubes(database: Database, rows: list[CubeRow]) -> None:
    """Stores the rows (with their first versions) in one write."""
    database.write(lambda cursor: insert_rows(cursor, rows))
