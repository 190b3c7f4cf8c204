"""MemLifecycle through a real server: versions, rollback, freeze, unfreeze, archive, merge; the transition table."""

from __future__ import annotations

import itertools
import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2
from memos_test_support import reason_of

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.errors import FailedPreconditionError
from memos_grpc.vault.lifecycle import TRANSITIONS, check_transition

S = cube_pb2.LifecycleState


def text(value: str) -> cube_pb2.MemCube:
    return cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=value))


def create(vault: VaultServiceStub, space: str, value: str) -> cube_pb2.MemCube:
    return vault.CreateCube(v.CreateCubeRequest(parent=space, cube=text(value)))


def set_text(vault: VaultServiceStub, name: str, value: str) -> cube_pb2.MemCube:
    cube = cube_pb2.MemCube(name=name, plaintext=cube_pb2.PlaintextPayload(text=value))
    mask = field_mask_pb2.FieldMask(paths=["plaintext.text"])
    return vault.UpdateCube(v.UpdateCubeRequest(cube=cube, update_mask=mask))


def refused(call: object, *args: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.code(), reason_of(caught.value)


def top(vault: VaultServiceStub, space: str, query: str, **fields: object) -> list[str]:
    hits = vault.SearchCubes(v.SearchCubesRequest(parent=space, text=query, top_k=5, **fields)).results
    return [h.cube.name for h in hits]


def test_every_change_is_a_version_and_any_version_can_come_back(vault_stub: VaultServiceStub, space: str) -> None:
    first = create(vault_stub, space, "the meeting room is on the third floor")
    set_text(vault_stub, first.name, "the meeting room moved to the basement")
    listed = vault_stub.ListCubeVersions(v.ListCubeVersionsRequest(name=first.name)).versions
    assert [(c.name, c.version) for c in listed] == [(f"{first.name}/versions/2", 2), (f"{first.name}/versions/1", 1)]
    old = vault_stub.GetCube(v.GetCubeRequest(name=f"{first.name}/versions/1"))
    assert old.plaintext.text == "the meeting room is on the third floor"

    back = vault_stub.RollbackCube(v.RollbackCubeRequest(name=first.name, version=1))
    assert (back.version, back.plaintext.text) == (3, "the meeting room is on the third floor")
    assert back.provenance_id == first.provenance_id and back.create_time == first.create_time
    assert top(vault_stub, space, "which floor is the meeting room on")[0] == first.name
    history = vault_stub.ListCubeVersions(v.ListCubeVersionsRequest(name=first.name, page_size=2))
    assert [c.version for c in history.versions] == [3, 2] and history.next_page_token
    rest = vault_stub.ListCubeVersions(
        v.ListCubeVersionsRequest(name=first.name, page_size=2, page_token=history.next_page_token)
    )
    assert [c.version for c in rest.versions] == [1] and not rest.next_page_token

    assert refused(vault_stub.RollbackCube, v.RollbackCubeRequest(name=first.name, version=9))[1] == "VERSION_NOT_FOUND"
    assert refused(vault_stub.GetCube, v.GetCubeRequest(name=f"{first.name}/versions/9"))[1] == "VERSION_NOT_FOUND"
    assert refused(vault_stub.GetCube, v.GetCubeRequest(name=f"{first.name}/versions/x"))[1] == "INVALID_NAME"
    stale = v.RollbackCubeRequest(name=first.name, version=1, etag=first.etag)
    assert refused(vault_stub.RollbackCube, stale)[1] == "ETAG_MISMATCH"


def test_a_frozen_cube_refuses_every_change_until_unfrozen(vault_stub: VaultServiceStub, space: str) -> None:
    cube = create(vault_stub, space, "a settled fact")
    frozen = vault_stub.FreezeCube(v.FreezeCubeRequest(name=cube.name))
    assert (frozen.state, frozen.version) == (S.LIFECYCLE_STATE_FROZEN, 2)
    precondition = (grpc.StatusCode.FAILED_PRECONDITION, "CUBE_FROZEN")
    assert refused(set_text, vault_stub, cube.name, "changed") == precondition
    assert refused(vault_stub.DeleteCube, v.DeleteCubeRequest(name=cube.name)) == precondition
    assert refused(vault_stub.RollbackCube, v.RollbackCubeRequest(name=cube.name, version=1)) == precondition
    assert refused(vault_stub.ArchiveCube, v.ArchiveCubeRequest(name=cube.name)) == precondition
    assert refused(vault_stub.FreezeCube, v.FreezeCubeRequest(name=cube.name)) == precondition
    thawed = vault_stub.UnfreezeCube(v.UnfreezeCubeRequest(name=cube.name))
    assert (thawed.state, thawed.version, thawed.plaintext.text) == (S.LIFECYCLE_STATE_GENERATED, 3, "a settled fact")
    again = refused(vault_stub.UnfreezeCube, v.UnfreezeCubeRequest(name=cube.name))
    assert again == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_TRANSITION")
    assert set_text(vault_stub, cube.name, "changed after all").version == 4


def test_an_archived_cube_is_left_out_of_search_unless_asked_for(vault_stub: VaultServiceStub, space: str) -> None:
    kept = create(vault_stub, space, "penguins live in antarctica")
    shelved = create(vault_stub, space, "penguins cannot fly")
    assert set(top(vault_stub, space, "penguins")) == {kept.name, shelved.name}
    archived = vault_stub.ArchiveCube(v.ArchiveCubeRequest(name=shelved.name))
    assert archived.state == S.LIFECYCLE_STATE_ARCHIVED
    assert top(vault_stub, space, "penguins") == [kept.name]
    assert top(vault_stub, space, "penguins", filter="priority >= 0") == [kept.name]
    assert set(top(vault_stub, space, "penguins", include_archived=True)) == {kept.name, shelved.name}
    assert vault_stub.GetCube(v.GetCubeRequest(name=shelved.name)).state == S.LIFECYCLE_STATE_ARCHIVED


def test_merge_makes_a_new_cube_and_marks_its_sources(vault_stub: VaultServiceStub, space: str) -> None:
    a = create(vault_stub, space, "alice likes tea")
    b = create(vault_stub, space, "alice drinks tea every morning")
    merged = vault_stub.MergeCubes(
        v.MergeCubesRequest(parent=space, names=[a.name, b.name], cube=text("alice drinks tea every morning"))
    )
    assert list(merged.merged_from) == [a.name, b.name] and merged.state == S.LIFECYCLE_STATE_GENERATED
    for source in (a, b):
        now = vault_stub.GetCube(v.GetCubeRequest(name=source.name))
        assert (now.state, now.version) == (S.LIFECYCLE_STATE_MERGED, 2)
    assert merged.name in top(vault_stub, space, "what does alice drink")
    c = create(vault_stub, space, "bob likes coffee")
    twice = v.MergeCubesRequest(parent=space, names=[a.name, c.name], cube=text("x"))
    assert refused(vault_stub.MergeCubes, twice) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_TRANSITION")
    assert vault_stub.GetCube(v.GetCubeRequest(name=c.name)).state == S.LIFECYCLE_STATE_GENERATED  # all or nothing
    one = v.MergeCubesRequest(parent=space, names=[c.name], cube=text("x"))
    assert refused(vault_stub.MergeCubes, one)[1] == "INVALID_MERGE"
    elsewhere = v.MergeCubesRequest(parent=space, names=[c.name, f"spaces/other{uuid.uuid4().hex[:6]}/cubes/x"])
    assert refused(vault_stub.MergeCubes, elsewhere)[1] == "PARENT_MISMATCH"


STATES = [s for s in S.values() if s != S.LIFECYCLE_STATE_UNSPECIFIED]


@pytest.mark.parametrize(("current", "target"), list(itertools.product(STATES, STATES)))
def test_the_transition_table_is_what_check_transition_enforces(current: int, target: int) -> None:
    allowed = target in TRANSITIONS[current]
    if allowed:
        check_transition("spaces/s/cubes/c", current, target)
        return
    with pytest.raises(FailedPreconditionError) as caught:
        check_transition("spaces/s/cubes/c", current, target)
    assert caught.value.reason == ("CUBE_FROZEN" if current == S.LIFECYCLE_STATE_FROZEN else "INVALID_TRANSITION")


def test_the_table_allows_what_the_lifecycle_needs() -> None:
    g, a, m, r, f, e = (
        S.LIFECYCLE_STATE_GENERATED,
        S.LIFECYCLE_STATE_ACTIVATED,
        S.LIFECYCLE_STATE_MERGED,
        S.LIFECYCLE_STATE_ARCHIVED,
        S.LIFECYCLE_STATE_FROZEN,
        S.LIFECYCLE_STATE_EXPIRED,
    )
    assert {(x, y) for x in TRANSITIONS for y in TRANSITIONS[x]} == {
        (g, a), (g, m), (g, r), (g, f), (g, e),
        (a, m), (a, r), (a, f), (a, e),
        (m, r), (m, f), (m, e),
        (r, a), (r, f), (r, e),
    }  # fmt: skip
