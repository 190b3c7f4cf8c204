"""Export, verify and import through a real server: round trips, conflicts, redaction, re-embedding."""

from __future__ import annotations

import uuid

import grpc
import pytest

from memos_grpc._proto.memos.v1 import (
    cube_pb2,
    governance_service_pb2,
    governance_service_pb2_grpc,
    interchange_service_pb2,
    interchange_service_pb2_grpc,
    space_pb2,
    vault_service_pb2,
    vault_service_pb2_grpc,
)
from memos_grpc.server.app import MemosServer
from tests.memos_test_support import reason_of

Action = interchange_service_pb2.ImportedCube.Action


@pytest.fixture
def interchange_stub(channel: grpc.Channel) -> interchange_service_pb2_grpc.InterchangeServiceStub:
    return interchange_service_pb2_grpc.InterchangeServiceStub(channel)


def new_space(governance: governance_service_pb2_grpc.GovernanceServiceStub, **fields: object) -> str:
    space_id = "s" + uuid.uuid4().hex[:12]
    request = governance_service_pb2.CreateSpaceRequest(space_id=space_id, space=space_pb2.Space(**fields))
    return governance.CreateSpace(request).name


def add_texts(vault: vault_service_pb2_grpc.VaultServiceStub, parent: str, texts: list[str], **fields: object) -> list[cube_pb2.MemCube]:
    requests = [
        vault_service_pb2.CreateCubeRequest(cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=t), **fields))
        for t in texts
    ]
    return list(vault.BatchCreateCubes(vault_service_pb2.BatchCreateCubesRequest(parent=parent, requests=requests)).cubes)


def export(stub: interchange_service_pb2_grpc.InterchangeServiceStub, parent: str, **fields: object) -> bytes:
    request = interchange_service_pb2.ExportBundleRequest(parent=parent, **fields)
    return b"".join(r.chunk for r in stub.ExportBundle(request))


def import_bundle(
    stub: interchange_service_pb2_grpc.InterchangeServiceStub,
    parent: str,
    bundle: bytes,
    conflict: int = interchange_service_pb2.CONFLICT_POLICY_SKIP,
    chunk: int = 65536,
) -> interchange_service_pb2.ImportBundleResponse:
    def requests():  # type: ignore[no-untyped-def]
        yield interchange_service_pb2.ImportBundleRequest(parent=parent, conflict_policy=conflict)
        for offset in range(0, len(bundle), chunk):
            yield interchange_service_pb2.ImportBundleRequest(chunk=bundle[offset : offset + chunk])

    return stub.ImportBundle(requests())


def test_round_trip(
    server: MemosServer,
    vault_stub: vault_service_pb2_grpc.VaultServiceStub,
    governance_stub: governance_service_pb2_grpc.GovernanceServiceStub,
    interchange_stub: interchange_service_pb2_grpc.InterchangeServiceStub,
) -> None:
    source = new_space(governance_stub)
    cubes = add_texts(vault_stub, source, ["the cat sat on the mat", "paris is the capital of france"], tags=["x"])
    bundle = export(interchange_stub, source)
    verification = interchange_stub.VerifyBundle(
        iter([interchange_service_pb2.VerifyBundleRequest(chunk=bundle)])
    ).verification
    assert verification.valid, verification.message
    assert verification.cube_count == 2
    target = new_space(governance_stub)
    response = import_bundle(interchange_stub, target, bundle)
    assert response.created_count == 2 and response.verification.valid
    listed = vault_stub.ListCubes(vault_service_pb2.ListCubesRequest(parent=target)).cubes
    assert sorted(c.plaintext.text for c in listed) == sorted(c.plaintext.text for c in cubes)
    assert {c.provenance_id for c in listed} == {c.provenance_id for c in cubes}
    hits = vault_stub.SearchCubes(vault_service_pb2.SearchCubesRequest(parent=target, text="french capital", top_k=1))
    assert hits.results[0].cube.plaintext.text == "paris is the capital of france"
    again = import_bundle(interchange_stub, target, bundle)
    assert again.skipped_count == 2 and again.created_count == 0
    flipped = bytearray(bundle)
    flipped[len(bundle) // 2] ^= 1
    with pytest.raises(grpc.RpcError) as caught:
        import_bundle(interchange_stub, new_space(governance_stub), bytes(flipped))
    assert reason_of(caught.value).startswith("BUNDLE_")
