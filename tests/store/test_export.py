"""memos_grpc.store.export on a real database: the cubes an export reads, as its caller may see them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, space_pb2
from memos_grpc.store.catalog import SearchCatalog
from memos_grpc.store.database import Database
from memos_grpc.store.export import BATCH_ROWS, exported_cubes
from memos_grpc.store.filter import CompiledFilter, compile_filter
from memos_grpc.store.rows import CubeRow, insert_rows, set_timestamp, vector_bytes
from memos_grpc.store.visibility import Caller, CubeVisibility

NOW = datetime(2030, 1, 1, tzinfo=UTC)
ADMIN = Caller("root", admin=True, method="token")
VIEWER = Caller("vera", admin=False, method="token")
EVERYTHING = compile_filter("")


@pytest.fixture
def catalog() -> SearchCatalog:
    """Space s1, where vera is a viewer for whom the label "secret" is withheld."""
    catalog = SearchCatalog()
    withhold = space_pb2.RedactionRule.ACTION_WITHHOLD
    catalog.add_space("s1", {"olga": access_pb2.ROLE_OWNER, "vera": access_pb2.ROLE_VIEWER}, {"secret": withhold})
    return catalog


def _row(space_id: str, cube_id: str, *, vector: bool = True, expired: bool = False) -> CubeRow:
    cube = cube_pb2.MemCube(name=f"spaces/{space_id}/cubes/{cube_id}", version=1)
    cube.plaintext.text = f"the text of {cube_id}"
    set_timestamp(cube.create_time, NOW - timedelta(days=2))
    set_timestamp(cube.update_time, NOW - timedelta(days=2))
    if expired:
        set_timestamp(cube.expire_time, NOW - timedelta(days=1))
    embedding = np.full(4, len(cube_id), dtype=np.float32) if vector else None
    return CubeRow(space_id, cube_id, cube, None, embedding)


def _insert(database: Database, rows: list[CubeRow]) -> None:
    database.write(lambda cursor: insert_rows(cursor, rows))


def _exported(
    database: Database,
    catalog: SearchCatalog,
    caller: Caller,
    cube_ids: list[str] | None = None,
    matching: CompiledFilter = EVERYTHING,
) -> list[tuple[cube_pb2.MemCube, bytes | None]]:
    visibility = CubeVisibility(caller, catalog, "s1")
    with database.read() as cursor:
        return list(exported_cubes(cursor, "s1", NOW, visibility, cube_ids or [], matching))


def test_the_live_cubes_of_the_space_in_id_order_with_their_embeddings(
    database: Database, catalog: SearchCatalog
) -> None:
    plain, unembedded = _row("s1", "b"), _row("s1", "a", vector=False)
    _insert(database, [plain, unembedded, _row("s1", "gone", expired=True), _row("s2", "c")])
    assert _exported(database, catalog, ADMIN) == [
        (unembedded.cube, None),
        (plain.cube, vector_bytes(np.full(4, 1, dtype=np.float32))),
    ]


def test_names_and_the_filter_narrow_the_selection(database: Database, catalog: SearchCatalog) -> None:
    tagged = _row("s1", "b")
    tagged.cube.tags.append("keep")
    _insert(database, [_row("s1", "a"), tagged, _row("s1", "c")])
    assert [cube.name for cube, _ in _exported(database, catalog, ADMIN, ["c", "a", "x"])] == [
        "spaces/s1/cubes/a",
        "spaces/s1/cubes/c",
    ]
    assert [cube.name for cube, _ in _exported(database, catalog, ADMIN, matching=compile_filter('tags:"keep"'))] == [
        "spaces/s1/cubes/b"
    ]


def test_a_viewer_reads_neither_others_private_cubes_nor_withheld_ones(
    database: Database, catalog: SearchCatalog
) -> None:
    private, secret, own = _row("s1", "private"), _row("s1", "secret"), _row("s1", "own")
    private.cube.access.scope, private.cube.access.owner = cube_pb2.CubeAccess.SCOPE_OWNER, "olga"
    own.cube.access.scope, own.cube.access.owner = cube_pb2.CubeAccess.SCOPE_OWNER, "vera"
    secret.cube.sensitivity_labels.append("secret")
    _insert(database, [private, secret, own, _row("s1", "shared")])
    assert [cube.name.rpartition("/")[2] for cube, _ in _exported(database, catalog, VIEWER)] == ["own", "shared"]
    assert len(_exported(database, catalog, ADMIN)) == 4


def test_a_selection_larger_than_a_batch_is_read_whole(database: Database, catalog: SearchCatalog) -> None:
    ids = [f"c{n:05d}" for n in range(BATCH_ROWS * 2 + 7)]
    _insert(database, [_row("s1", cube_id, vector=False) for cube_id in ids])
    assert [cube.name.rpartition("/")[2] for cube, _ in _exported(database, catalog, ADMIN)] == ids
