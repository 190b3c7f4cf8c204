"""Keys the server keeps for principals: created once (0600), co-signing that principal's exports, gone with it."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from memos_test_support import admin_token, authorized_channel, reason_of

from memos_grpc._proto.memos.v1 import access_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc.server.app import MemosServer

Status = i.SignatureCheck.Status


def test_a_kept_key_co_signs_its_principals_exports(server: MemosServer) -> None:
    admin = authorized_channel(server.address, admin_token(server))
    governance = GovernanceServiceStub(admin)
    name = "p" + uuid.uuid4().hex[:10]
    principal = governance.CreatePrincipal(
        g.CreatePrincipalRequest(
            principal_id=name, principal=principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER)
        )
    ).name
    token = governance.CreateCredential(g.CreateCredentialRequest(parent=principal)).token
    space = governance.CreateSpace(g.CreateSpaceRequest(space_id="s" + uuid.uuid4().hex[:10])).name
    policy = access_pb2.AccessPolicy(
        bindings=[
            access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/admin"]),
            access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=[principal]),
        ]
    )
    governance.SetAccessPolicy(g.SetAccessPolicyRequest(resource=space, policy=policy))
    own = authorized_channel(server.address, token)
    try:
        key = GovernanceServiceStub(own).CreateSigningKey(g.CreateSigningKeyRequest(parent=principal))
        key_file = server.settings.key_dir / "principals" / f"{name}.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert [k.key_id for k in governance.GetPrincipal(g.GetPrincipalRequest(name=principal)).public_keys] == [
            key.key_id
        ]
        with pytest.raises(grpc.RpcError) as caught:
            GovernanceServiceStub(own).CreateSigningKey(g.CreateSigningKeyRequest(parent=principal))
        assert reason_of(caught.value) == "SIGNING_KEY_EXISTS"

        stub = InterchangeServiceStub(own)
        bundle = b"".join(r.chunk for r in stub.ExportBundle(i.ExportBundleRequest(parent=space)))
        report = stub.VerifyBundle(iter([i.VerifyBundleRequest(chunk=bundle)])).verification
        assert report.valid and json.loads(report.statement)["predicate"]["exporter"]["principal"] == principal
        # Under the node role only the node key counts; the principal's key signed too, and is named.
        assert [(s.key_id_hint, s.status, s.principal) for s in report.signatures] == [
            (report.exporter_node, Status.STATUS_COUNTED, "principals/node"),
            (key.key_id, Status.STATUS_UNKNOWN_KEY, principal),
        ]

        governance.DeletePrincipal(g.DeletePrincipalRequest(name=principal))
        assert not key_file.exists()
    finally:
        own.close()
        admin.close()
