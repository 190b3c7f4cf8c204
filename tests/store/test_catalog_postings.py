"""The search catalog's postings as sorted arrays: the same labels as its sets, expired ones left out, in step."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.catalog import CatalogRow, CubeAccess, SearchCatalog
from memos_grpc.store.filter import AllOf, AnyOf, Not, Plan, Postings

NOW = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
PAST = datetime(2029, 1, 1, tzinfo=UTC)
LATER = datetime(2031, 1, 1, tzinfo=UTC)
OPEN = CubeAccess(0, "", frozenset())

RED, BLUE = Postings("tags", "red"), Postings("tags", "blue")
PLANS: list[Plan] = [
    RED,
    Not(RED),
    AnyOf((RED, BLUE)),
    AllOf((RED, BLUE)),
    AllOf((RED, Not(BLUE))),
    AllOf(()),
    AnyOf(()),
    Postings("tags", "absent"),
    Not(Postings("tags", "absent")),
]


def _row(label: int, tags: list[str], expires: datetime | None = None) -> CatalogRow:
    cube = cube_pb2.MemCube(name=f"spaces/s1/cubes/c{label}", tags=tags)
    return CatalogRow(label, cube.SerializeToString(), expires, OPEN, None)


def _agree(catalog: SearchCatalog) -> None:
    for plan in PLANS:
        expected = catalog.admitted("s1", catalog.matching("s1", plan), NOW, None)
        found = catalog.matching_array("s1", plan, NOW)
        assert found.tolist() == sorted(expected), plan


def test_matching_arrays_follow_puts_removals_and_expiry() -> None:
    catalog = SearchCatalog()
    catalog.add_space("s1", {}, {})
    rows = [_row(i, [t for t, d in (("red", 2), ("blue", 3)) if i % d == 0]) for i in range(1, 40)]
    catalog.put("s1", rows)
    _agree(catalog)
    red = catalog.matching_array("s1", RED, NOW)
    assert red.tolist() == list(range(2, 40, 2))
    assert not red.flags.writeable  # a posting's own array, shared with later searches
    # A retagged cube moves between postings, an expired one leaves every answer, a lasting one stays.
    catalog.put("s1", [_row(2, ["blue"]), _row(4, ["red"], PAST), _row(6, ["red"], LATER)])
    _agree(catalog)
    found = catalog.matching_array("s1", RED, NOW)
    assert 2 not in found and 4 not in found and 6 in found
    catalog.remove("s1", [8, 9])
    _agree(catalog)
    assert 8 not in catalog.matching_array("s1", Not(BLUE), NOW)
    assert np.array_equal(catalog.matching_array("s1", AnyOf(()), NOW), np.empty(0, dtype=np.int64))
