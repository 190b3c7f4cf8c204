"""What the search catalog costs Python per cube: one object the garbage collector tracks, and access values shared
between the cubes that have the same (``CubeAccess.shared``)."""

from __future__ import annotations

import gc
import types
import weakref

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.catalog import CubeAccess, SearchCatalog
from memos_grpc.store.catalog_rows import catalog_entries
from memos_grpc.store.rows import CubeRow

CUBES = 2_000
#: What ``_tracked_from`` does not walk: objects the whole process shares.
SHARED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def _row(n: int, owner: str, labels: list[str]) -> CubeRow:
    cube = cube_pb2.MemCube(name=f"spaces/s1/cubes/c{n}", sensitivity_labels=labels, tags=[f"t{n % 7}"])
    cube.plaintext.text = f"memory {n}"
    cube.access.scope, cube.access.owner = cube_pb2.CubeAccess.SCOPE_OWNER, owner
    cube.labels["team"] = f"team-{n % 3}"
    return CubeRow("s1", f"c{n}", cube, n, None)


def test_cubes_with_the_same_access_share_one_value() -> None:
    rows = [_row(n, owner=f"alice-{n % 2}", labels=["pii"] if n % 2 else []) for n in range(10)]
    accesses = [entry.access for entry in catalog_entries(rows)]
    assert len({id(access) for access in accesses}) == 2  # made from ten separate messages
    assert accesses[1] == CubeAccess(cube_pb2.CubeAccess.SCOPE_OWNER, "alice-1", frozenset(), frozenset({"pii"}))
    assert CubeAccess.shared(1, "bob", ["x", "y"]) is CubeAccess.shared(1, "bob", ("y", "x", "y"))  # sets, in any order
    assert CubeAccess.shared(1, "bob", ["x"]) is not CubeAccess.shared(1, "bob", ["x"], archived=True)


def test_a_shared_access_goes_when_no_cube_holds_it() -> None:
    access = CubeAccess.shared(3, "carol", ["principals/dave"], ["secret"], False, "lic-9")
    gone = weakref.ref(access)
    del access
    gc.collect()
    assert gone() is None


def _tracked_from(root: object) -> int:
    """The objects the collector tracks that ``root`` holds, directly or through others (types, modules and
    functions are shared with the rest of the process, and not walked)."""
    seen, stack, tracked = {id(root)}, [root], 0
    while stack:
        held = stack.pop()
        tracked += gc.is_tracked(held)
        for referent in gc.get_referents(held):
            if id(referent) not in seen and not isinstance(referent, SHARED):
                seen.add(id(referent))
                stack.append(referent)
    return tracked


def test_the_catalog_keeps_one_tracked_object_a_cube() -> None:
    """Python's full collections walk every object the collector tracks, holding the GIL while they do: the
    catalog's share of that work grows with its cubes, so it stays at one object each (the entry itself)."""
    catalog = SearchCatalog()
    catalog.put("s1", catalog_entries([_row(n, owner="alice", labels=["pii"]) for n in range(10)]))
    gc.collect()
    gc.collect()  # a tuple of tuples (a label pair's posting key) is untracked once its members are
    few = _tracked_from(catalog)
    catalog.put("s1", catalog_entries([_row(n, owner="alice", labels=["pii"]) for n in range(10, CUBES)]))
    gc.collect()
    gc.collect()
    assert _tracked_from(catalog) - few <= (CUBES - 10) * 1.01
    assert len(catalog.live("s1", list(range(CUBES)), 0.0, lambda access: True)) == CUBES
