"""ErasePrincipalData removes what a principal owns from every store and reports it."""

from __future__ import annotations

import numpy as np
from memos_test_support import admin_token, authorized_channel

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.server.app import MemosServer


def unit(seed: int) -> v.Vector:
    vector = np.random.default_rng(seed).normal(size=384)
    return v.Vector(values=list(vector / np.linalg.norm(vector)))


def test_erasure_removes_owned_spaces_created_cubes_roles_and_orphan_blobs(fresh_server: MemosServer) -> None:
    admin_channel = authorized_channel(fresh_server.address, admin_token(fresh_server))
    admin, admin_vault = GovernanceServiceStub(admin_channel), VaultServiceStub(admin_channel)
    admin.CreatePrincipal(g.CreatePrincipalRequest(principal_id="leaver", principal=principal_pb2.Principal()))
    token = admin.CreateCredential(g.CreateCredentialRequest(parent="principals/leaver")).token
    leaver_channel = authorized_channel(fresh_server.address, token)
    leaver, leaver_vault = GovernanceServiceStub(leaver_channel), VaultServiceStub(leaver_channel)

    # A space the leaver alone owns, holding a text cube and a blob cube.
    leaver.CreateSpace(g.CreateSpaceRequest(space_id="leavers"))
    leaver_vault.CreateCube(
        v.CreateCubeRequest(
            parent="spaces/leavers",
            cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="a")),
            vector=unit(1),
        )
    )
    blob = leaver_vault.WritePayload(iter([v.WritePayloadRequest(parent="spaces/leavers", data=b"adapter")])).blob
    leaver_vault.CreateCube(
        v.CreateCubeRequest(
            parent="spaces/leavers",
            cube=cube_pb2.MemCube(parametric=cube_pb2.ParametricPayload(blob=blob, model_fingerprint="base@sha256:0")),
        )
    )
    # A shared space the admin owns, where the leaver is an editor and wrote one cube.
    admin.CreateSpace(g.CreateSpaceRequest(space_id="team"))
    admin.SetAccessPolicy(
        g.SetAccessPolicyRequest(
            resource="spaces/team",
            policy=access_pb2.AccessPolicy(
                bindings=[
                    access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/admin"]),
                    access_pb2.AccessBinding(role=access_pb2.ROLE_EDITOR, members=["principals/leaver"]),
                ]
            ),
        )
    )
    theirs = leaver_vault.CreateCube(
        v.CreateCubeRequest(
            parent="spaces/team", cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="b")), vector=unit(2)
        )
    )
    ours = admin_vault.CreateCube(
        v.CreateCubeRequest(
            parent="spaces/team", cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="c")), vector=unit(3)
        )
    )

    report = admin.ErasePrincipalData(g.ErasePrincipalDataRequest(name="principals/leaver"))
    assert (report.spaces_removed, report.cubes_removed, report.vectors_removed) == (1, 3, 2)
    assert (report.blobs_removed, report.roles_removed) == (1, 1)

    assert [s.name for s in admin.ListSpaces(g.ListSpacesRequest()).spaces] == ["spaces/team"]
    remaining = [c.name for c in admin_vault.ListCubes(v.ListCubesRequest(parent="spaces/team")).cubes]
    assert remaining == [ours.name] and theirs.name not in remaining
    hits = admin_vault.SearchCubes(v.SearchCubesRequest(parent="spaces/team", vector=unit(2), top_k=5)).results
    assert [h.cube.name for h in hits] == [ours.name]
    assert fresh_server.vault is not None
    assert not fresh_server.vault.context.blobs.exists(blob.digest)
    assert not leaver.ListSpaces(g.ListSpacesRequest()).spaces  # its roles went too; it still exists
    assert admin.GetPrincipal(g.GetPrincipalRequest(name="principals/leaver")).name == "principals/leaver"
    admin_channel.close()
    leaver_channel.close()
