"""The isolation matrix's rows for the lifecycle RPCs (versions, rollback, freeze, unfreeze, archive, merge) and Recall.

Each mutating cell acts on cubes of its own in S (created by the owner), and
reads their state back as the admin to tell whether the call took effect.
"""

from __future__ import annotations

from typing import Any

from _isolation_world import (
    _V,
    CUBE,
    SPACE,
    Access,
    Row,
    Target,
    Who,
    World,
    assert_effect,
    owned_cube,
)
from google.protobuf import field_mask_pb2

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as sch
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v

State = cube_pb2.LifecycleState


def state_of(w: World, name: str) -> int:
    return int(w.vault.GetCube(v.GetCubeRequest(name=name), metadata=w.admin).state)


def _rollback(w: World, cell: str) -> Target:
    cube = owned_cube(w, cell)
    changed = cube_pb2.MemCube(name=cube.name, tags=["changed"])
    w.vault.UpdateCube(
        v.UpdateCubeRequest(cube=changed, update_mask=field_mask_pb2.FieldMask(paths=["tags"])), metadata=w.owner
    )

    def effect(allowed: bool) -> None:
        now = w.vault.GetCube(v.GetCubeRequest(name=cube.name), metadata=w.admin)
        assert_effect((now.version, list(now.tags)), (3, []) if allowed else (2, ["changed"]))

    return Target(v.RollbackCubeRequest(name=cube.name, version=1), effect)


def _to_state(request_type: Any, wanted: int, prepare: str = "") -> Any:
    def target(w: World, cell: str) -> Target:
        cube = owned_cube(w, cell)
        if prepare == "freeze":
            w.vault.FreezeCube(v.FreezeCubeRequest(name=cube.name), metadata=w.admin)
        before = state_of(w, cube.name)
        return Target(
            request_type(name=cube.name),
            lambda allowed: assert_effect(state_of(w, cube.name), wanted if allowed else before),
        )

    return target


def _merge(w: World, cell: str) -> Target:
    a, b = owned_cube(w, f"{cell}-a"), owned_cube(w, f"{cell}-b")
    request = v.MergeCubesRequest(
        parent=SPACE,
        names=[a.name, b.name],
        cube_id=cell,
        cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=f"merged {cell}")),
        vector=v.Vector(values=[1.0] + [0.0] * 383),
    )
    merged = State.LIFECYCLE_STATE_MERGED

    def effect(allowed: bool) -> None:
        assert_effect([state_of(w, a.name) == merged, state_of(w, b.name) == merged], [allowed, allowed])

    return Target(request, effect)


def _recalls_c(_w: World, _who: Who, response: sch.RecallPlan) -> None:
    assert CUBE in [item.cube.name for item in response.items]


def _versions_of_c(_w: World, _who: Who, response: v.ListCubeVersionsResponse) -> None:
    assert [c.name for c in response.versions] == [f"{CUBE}/versions/1"]


LIFECYCLE_ROWS: list[Row] = [
    Row(
        _V + "ListCubeVersions",
        Access.SPACE_READ,
        False,
        lambda _w, _c: Target(v.ListCubeVersionsRequest(name=CUBE)),
        _versions_of_c,
    ),
    Row(_V + "RollbackCube", Access.SPACE_WRITE, True, _rollback),
    Row(_V + "FreezeCube", Access.SPACE_WRITE, True, _to_state(v.FreezeCubeRequest, State.LIFECYCLE_STATE_FROZEN)),
    Row(
        _V + "UnfreezeCube",
        Access.SPACE_WRITE,
        True,
        _to_state(v.UnfreezeCubeRequest, State.LIFECYCLE_STATE_GENERATED, prepare="freeze"),
    ),
    Row(_V + "ArchiveCube", Access.SPACE_WRITE, True, _to_state(v.ArchiveCubeRequest, State.LIFECYCLE_STATE_ARCHIVED)),
    Row(_V + "MergeCubes", Access.SPACE_WRITE, True, _merge),
    Row(
        "/memos.v1.SchedulerService/Recall",
        Access.SPACE_READ,
        False,
        lambda _w, _c: Target(sch.RecallRequest(parent=SPACE, query="the owner's private memory", token_budget=10_000)),
        _recalls_c,
    ),
]
