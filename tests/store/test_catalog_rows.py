"""memos_grpc.store.catalog_rows: what the search catalog keeps of cube rows, with and without their text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.catalog import CatalogRow, CubeAccess, SearchCatalog
from memos_grpc.store.catalog_rows import catalog_entries, rows_committed
from memos_grpc.store.lexical import LexicalIndex
from memos_grpc.store.rows import CubeRow, set_timestamp

EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)
OWNER_ONLY = cube_pb2.CubeAccess.SCOPE_OWNER


@pytest.fixture
def lexical() -> Iterator[LexicalIndex]:
    index = LexicalIndex(refresh_seconds=3600)  # refreshed by the tests themselves
    yield index
    index.close()


def _row(cube_id: str, vec_id: int | None, text: str) -> CubeRow:
    cube = cube_pb2.MemCube(name=f"spaces/s1/cubes/{cube_id}", sensitivity_labels=["pii"])
    cube.plaintext.text = text
    cube.access.scope, cube.access.owner = OWNER_ONLY, "alice"
    set_timestamp(cube.expire_time, EXPIRES)
    return CubeRow("s1", cube_id, cube, vec_id, None)


def test_entries_are_kept_for_rows_with_a_vector_and_carry_text_only_when_reindexed() -> None:
    row = _row("a", 4, "walnut orchards in autumn")
    access = CubeAccess(OWNER_ONLY, "alice", frozenset(), frozenset({"pii"}))
    assert catalog_entries([row, _row("b", None, "no vector")]) == [
        CatalogRow(4, row.serialized(), EXPIRES, access, "walnut orchards in autumn")
    ]
    assert catalog_entries([row], reindex=False) == [CatalogRow(4, row.serialized(), EXPIRES, access, None)]


def test_rows_committed_reindexes_the_text_unless_told_not_to(lexical: LexicalIndex) -> None:
    catalog = SearchCatalog()
    catalog.lexical = lexical
    rows_committed(catalog, "s1", [_row("a", 1, "walnut orchards")])
    lexical.refresh()
    assert [label for label, _ in lexical.search("s1", "walnut", 10)] == [1]

    rows_committed(catalog, "s1", [_row("a", 1, "granite quarries")], reindex=False)
    lexical.refresh()

    live = catalog.live("s1", [1], 0.0, lambda access: True)
    assert cube_pb2.MemCube.FromString(live[1]).plaintext.text == "granite quarries"  # the catalog's copy is new
    assert [label for label, _ in lexical.search("s1", "walnut", 10)] == [1]  # the lexical index kept its text
    assert lexical.search("s1", "granite", 10) == []
