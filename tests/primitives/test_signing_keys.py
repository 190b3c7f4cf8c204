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
from memos_grpc.interchange.bundle import ENVELOPE_NAME
from memos_grpc.interchange.dsse import parse_envelope
from memos_grpc.interchange.tarstream import END_OF_ARCHIVE, TarLimits, TarReader, file_entry
from memos_grpc.primitives.keys import SigningKey
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


def test_a_registered_key_names_its_principal_and_belongs_to_it_alone(server: MemosServer) -> None:
    admin = authorized_channel(server.address, admin_token(server))
    governance = GovernanceServiceStub(admin)
    try:
        names = []
        for _ in range(2):
            user = principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER)
            request = g.CreatePrincipalRequest(principal_id="p" + uuid.uuid4().hex[:10], principal=user)
            names.append(governance.CreatePrincipal(request).name)
        held = SigningKey.generate()  # a key the first principal holds itself, offline
        offered = principal_pb2.PublicKey(public_key=held.public_key)
        registered = governance.RegisterPublicKey(g.RegisterPublicKeyRequest(parent=names[0], public_key=offered))
        assert (registered.key_id, registered.algorithm) == (held.key_id, "ed25519")
        again = governance.RegisterPublicKey(g.RegisterPublicKeyRequest(parent=names[0], public_key=offered))
        assert again.key_id == held.key_id  # registering twice is a no-op
        keys = governance.GetPrincipal(g.GetPrincipalRequest(name=names[0])).public_keys
        assert [k.key_id for k in keys] == [held.key_id]
        with pytest.raises(grpc.RpcError) as caught:
            governance.RegisterPublicKey(g.RegisterPublicKeyRequest(parent=names[1], public_key=offered))
        assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.ALREADY_EXISTS, "PUBLIC_KEY_IN_USE")
        with pytest.raises(grpc.RpcError) as bad:
            short = principal_pb2.PublicKey(public_key=b"\x01" * 31)
            governance.RegisterPublicKey(g.RegisterPublicKeyRequest(parent=names[1], public_key=short))
        assert reason_of(bad.value) == "INVALID_PUBLIC_KEY"

        # A bundle signed by that key (offline) is reported with the principal's name.
        space = governance.CreateSpace(g.CreateSpaceRequest(space_id="s" + uuid.uuid4().hex[:10])).name
        stub = InterchangeServiceStub(admin)
        bundle = b"".join(r.chunk for r in stub.ExportBundle(i.ExportBundleRequest(parent=space)))
        envelope_at = bundle.index(b'{"payload"')
        end = bundle.index(b"\x00", envelope_at)
        envelope = parse_envelope(bundle[envelope_at:end]).signed_by(held)
        report = stub.VerifyBundle(
            iter([i.VerifyBundleRequest(chunk=rebuild_with_envelope(bundle, envelope.to_json()))])
        ).verification
        assert report.valid and [s.principal for s in report.signatures] == ["principals/node", names[0]]
    finally:
        admin.close()


def rebuild_with_envelope(bundle: bytes, envelope: bytes) -> bytes:
    """The same bundle with another envelope (the statement is the same, so every digest still holds)."""
    reader = TarReader([bundle], TarLimits(1 << 40, 1 << 40, 1 << 20))
    parts = [b"".join(file_entry(e.name, e.size, [e.read_all(1 << 30)])) for e in reader.entries()]
    parts[1] = b"".join(file_entry(ENVELOPE_NAME, len(envelope), [envelope]))
    return b"".join(parts) + END_OF_ARCHIVE
