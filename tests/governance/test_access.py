"""Access policies: sharing a space by role and taking it back, and a cube's own access narrowing it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from memos_test_support import admin_token, authorized_channel, reason_of

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.server.app import MemosServer

SPACE = "spaces/shared"


@dataclass
class Actor:
    name: str
    governance: GovernanceServiceStub
    vault: VaultServiceStub


def unit(seed: int) -> v.Vector:
    vector = np.random.default_rng(seed).normal(size=384)
    return v.Vector(values=list(vector / np.linalg.norm(vector)))


@pytest.fixture
def actors(fresh_server: MemosServer) -> Iterator[dict[str, Actor]]:
    admin_channel = authorized_channel(fresh_server.address, admin_token(fresh_server))
    admin = GovernanceServiceStub(admin_channel)
    found = {"admin": Actor("principals/admin", admin, VaultServiceStub(admin_channel))}
    for name in ("owner", "editor", "other-editor", "viewer", "stranger"):
        admin.CreatePrincipal(
            g.CreatePrincipalRequest(
                principal_id=name, principal=principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER)
            )
        )
        token = admin.CreateCredential(g.CreateCredentialRequest(parent=f"principals/{name}")).token
        channel = authorized_channel(fresh_server.address, token)
        found[name] = Actor(f"principals/{name}", GovernanceServiceStub(channel), VaultServiceStub(channel))
    found["owner"].governance.CreateSpace(g.CreateSpaceRequest(space_id="shared"))
    yield found
    admin_channel.close()


def share(actors: dict[str, Actor], **roles: list[str]) -> access_pb2.AccessPolicy:
    policy = actors["owner"].governance.GetAccessPolicy(g.GetAccessPolicyRequest(resource=SPACE))
    bindings = [access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/owner"])]
    for role, members in roles.items():
        value = access_pb2.Role.Value(f"ROLE_{role.upper()}")
        bindings.append(access_pb2.AccessBinding(role=value, members=[f"principals/{m}" for m in members]))
    wanted = access_pb2.AccessPolicy(bindings=bindings, etag=policy.etag)
    return actors["owner"].governance.SetAccessPolicy(g.SetAccessPolicyRequest(resource=SPACE, policy=wanted))


def create(actor: Actor, cube_id: str, seed: int, access: cube_pb2.CubeAccess | None = None) -> cube_pb2.MemCube:
    cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=f"memory {cube_id}"))
    if access is not None:
        cube.access.CopyFrom(access)
    return actor.vault.CreateCube(v.CreateCubeRequest(parent=SPACE, cube_id=cube_id, cube=cube, vector=unit(seed)))


def code_of(call: object) -> tuple[grpc.StatusCode, str]:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as error:
        return error.code(), reason_of(error)
    return grpc.StatusCode.OK, ""


def test_roles_share_and_take_back(actors: dict[str, Actor]) -> None:
    create(actors["owner"], "first", 1)
    viewer, editor, stranger = actors["viewer"], actors["editor"], actors["stranger"]
    get_first = v.GetCubeRequest(name=f"{SPACE}/cubes/first")
    assert code_of(lambda: viewer.vault.GetCube(get_first)) == (grpc.StatusCode.NOT_FOUND, "SPACE_NOT_FOUND")

    policy = share(actors, viewer=["viewer"], editor=["editor"])
    assert [(b.role, list(b.members)) for b in policy.bindings] == [
        (access_pb2.ROLE_OWNER, ["principals/owner"]),
        (access_pb2.ROLE_EDITOR, ["principals/editor"]),
        (access_pb2.ROLE_VIEWER, ["principals/viewer"]),
    ]
    assert viewer.vault.GetCube(get_first).plaintext.text == "memory first"
    assert [s.name for s in viewer.governance.ListSpaces(g.ListSpacesRequest()).spaces] == [SPACE]
    hits = viewer.vault.SearchCubes(v.SearchCubesRequest(parent=SPACE, vector=unit(1), top_k=1)).results
    assert hits[0].cube.name == f"{SPACE}/cubes/first"
    assert code_of(lambda: create(viewer, "nope", 2)) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")
    assert create(editor, "by-editor", 3).access.owner == "principals/editor"
    assert code_of(lambda: editor.governance.DeleteSpace(g.DeleteSpaceRequest(name=SPACE, force=True)))[1] == (
        "ROLE_REQUIRED"
    )
    assert code_of(lambda: stranger.vault.GetCube(get_first)) == (grpc.StatusCode.NOT_FOUND, "SPACE_NOT_FOUND")

    share(actors, editor=["editor"])  # the viewer's access is taken back
    assert code_of(lambda: viewer.vault.GetCube(get_first)) == (grpc.StatusCode.NOT_FOUND, "SPACE_NOT_FOUND")
    assert not viewer.governance.ListSpaces(g.ListSpacesRequest()).spaces


def test_policy_changes_are_checked(actors: dict[str, Actor]) -> None:
    owner = actors["owner"].governance
    stale = access_pb2.AccessPolicy(
        bindings=[access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/owner"])], etag="stale"
    )
    assert code_of(lambda: owner.SetAccessPolicy(g.SetAccessPolicyRequest(resource=SPACE, policy=stale))) == (
        grpc.StatusCode.ABORTED,
        "ETAG_MISMATCH",
    )
    ownerless = access_pb2.AccessPolicy(
        bindings=[access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=["principals/owner"])]
    )
    assert code_of(lambda: owner.SetAccessPolicy(g.SetAccessPolicyRequest(resource=SPACE, policy=ownerless)))[1] == (
        "NO_OWNER"
    )
    ghost = access_pb2.AccessPolicy(
        bindings=[
            access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/owner", "principals/ghost"])
        ]
    )
    assert code_of(lambda: owner.SetAccessPolicy(g.SetAccessPolicyRequest(resource=SPACE, policy=ghost)))[1] == (
        "UNKNOWN_MEMBER"
    )
    assert code_of(lambda: actors["stranger"].governance.GetAccessPolicy(g.GetAccessPolicyRequest(resource=SPACE))) == (
        grpc.StatusCode.NOT_FOUND,
        "SPACE_NOT_FOUND",
    )


def test_a_cube_can_narrow_who_sees_it(actors: dict[str, Actor]) -> None:
    share(actors, editor=["editor", "other-editor"], viewer=["viewer"])
    editor, other, viewer = actors["editor"], actors["other-editor"], actors["viewer"]
    private = create(editor, "private", 10, cube_pb2.CubeAccess(scope=cube_pb2.CubeAccess.SCOPE_OWNER))
    listed = create(
        editor,
        "listed",
        11,
        cube_pb2.CubeAccess(scope=cube_pb2.CubeAccess.SCOPE_PRINCIPALS, principals=["principals/viewer"]),
    )
    create(editor, "open", 12)

    def visible(actor: Actor, filter_text: str = "") -> set[str]:
        names = {c.name.rsplit("/", 1)[1] for c in actor.vault.ListCubes(v.ListCubesRequest(parent=SPACE)).cubes}
        found = actor.vault.SearchCubes(
            v.SearchCubesRequest(parent=SPACE, vector=unit(10), top_k=10, filter=filter_text)
        )
        assert {r.cube.name.rsplit("/", 1)[1] for r in found.results} == names
        return names

    assert visible(editor) == {"private", "listed", "open"}
    assert visible(actors["owner"]) == {"private", "listed", "open"}
    assert visible(other) == {"open"}
    assert visible(other, "priority >= 0") == {"open"}
    assert visible(other, "-tags:absent") == {"open"}
    assert visible(viewer, "-tags:absent") == {"listed", "open"}
    assert visible(viewer) == {"listed", "open"}
    for name in (private.name, listed.name):
        assert code_of(lambda n=name: other.vault.GetCube(v.GetCubeRequest(name=n))) == (  # type: ignore[misc]
            grpc.StatusCode.NOT_FOUND,
            "CUBE_NOT_FOUND",
        )
    assert code_of(lambda: other.vault.DeleteCube(v.DeleteCubeRequest(name=private.name)))[1] == "CUBE_NOT_FOUND"
    assert viewer.vault.GetCube(v.GetCubeRequest(name=listed.name)).name == listed.name


def test_a_deleted_principal_takes_its_roles_along(fresh_server: MemosServer, actors: dict[str, Actor]) -> None:
    share(actors, viewer=["viewer"])
    admin = actors["admin"].governance
    admin.DeletePrincipal(g.DeletePrincipalRequest(name="principals/viewer"))
    admin.CreatePrincipal(g.CreatePrincipalRequest(principal_id="viewer", principal=principal_pb2.Principal()))
    token = admin.CreateCredential(g.CreateCredentialRequest(parent="principals/viewer")).token
    reborn = GovernanceServiceStub(authorized_channel(fresh_server.address, token))
    assert not reborn.ListSpaces(g.ListSpacesRequest()).spaces
    policy = actors["owner"].governance.GetAccessPolicy(g.GetAccessPolicyRequest(resource=SPACE))
    assert all("principals/viewer" not in b.members for b in policy.bindings)


def test_the_first_policy_change_is_conditional_too(actors: dict[str, Actor]) -> None:
    owner = actors["owner"].governance
    read = owner.GetAccessPolicy(g.GetAccessPolicyRequest(resource=SPACE))
    assert read.etag, "a space whose policy was never set still has a policy etag"
    assert owner.GetAccessPolicy(g.GetAccessPolicyRequest(resource=SPACE)).etag == read.etag
    share(actors, viewer=["viewer"])  # someone else changes the policy after it was read
    lost_update = access_pb2.AccessPolicy(
        bindings=[access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/owner"])], etag=read.etag
    )
    assert code_of(lambda: owner.SetAccessPolicy(g.SetAccessPolicyRequest(resource=SPACE, policy=lost_update))) == (
        grpc.StatusCode.ABORTED,
        "ETAG_MISMATCH",
    )
    roles = owner.GetAccessPolicy(g.GetAccessPolicyRequest(resource=SPACE)).bindings
    assert [b.role for b in roles] == [access_pb2.ROLE_OWNER, access_pb2.ROLE_VIEWER]
