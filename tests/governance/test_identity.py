"""Principals and credentials: tokens shown once and stored hashed, revocation and deletion take effect at once."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from memos_test_support import admin_token, authorized_channel, reason_of

from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import principal_pb2
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc.server.app import MemosServer


@pytest.fixture
def admin(fresh_server: MemosServer) -> Iterator[GovernanceServiceStub]:
    with authorized_channel(fresh_server.address, admin_token(fresh_server)) as channel:
        yield GovernanceServiceStub(channel)


def as_principal(server: MemosServer, token: str) -> GovernanceServiceStub:
    return GovernanceServiceStub(authorized_channel(server.address, token))


def new_principal(admin: GovernanceServiceStub, principal_id: str, **fields: object) -> str:
    principal = principal_pb2.Principal(kind=principal_pb2.Principal.KIND_AGENT, **fields)  # type: ignore[arg-type]
    admin.CreatePrincipal(g.CreatePrincipalRequest(principal_id=principal_id, principal=principal))
    created = admin.CreateCredential(g.CreateCredentialRequest(parent=f"principals/{principal_id}"))
    return created.token


def test_token_is_shown_once_and_stored_only_as_its_hash(
    fresh_server: MemosServer, admin: GovernanceServiceStub
) -> None:
    token = new_principal(admin, "alice")
    assert token.startswith("mgt_")
    assert as_principal(fresh_server, token).GetPrincipal(g.GetPrincipalRequest(name="principals/alice")).name
    assert fresh_server.vault is not None
    with fresh_server.vault.context.database.read() as cursor:
        rows = cursor.execute("SELECT * FROM credentials").fetchall()
    stored = " ".join(str(value) for row in rows for value in row)
    # mgt_<credential id>_<secret>: the secret is base64url and may itself hold underscores.
    secret = token.split("_", 2)[2]
    assert token not in stored and secret not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    listed = admin.ListPrincipals(g.ListPrincipalsRequest())
    assert token not in str(listed)


def test_revocation_takes_effect_on_the_next_call(fresh_server: MemosServer, admin: GovernanceServiceStub) -> None:
    token = new_principal(admin, "bob")
    bob = as_principal(fresh_server, token)
    bob.CreateSpace(g.CreateSpaceRequest(space_id="bobs"))
    assert fresh_server.vault is not None
    with fresh_server.vault.context.database.read() as cursor:
        row = cursor.execute("SELECT credential_id FROM credentials WHERE principal_id = 'bob'").fetchone()
    assert row is not None
    credential_name = f"principals/bob/credentials/{row[0]}"
    revoked = bob.RevokeCredential(g.RevokeCredentialRequest(name=credential_name))
    assert revoked.revoke_time.seconds > 0 and not revoked.token
    with pytest.raises(grpc.RpcError) as refused:
        bob.ListSpaces(g.ListSpacesRequest())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(refused.value) == "TOKEN_REVOKED"


def test_deleting_a_principal_ends_its_tokens_but_not_the_last_admin(
    fresh_server: MemosServer, admin: GovernanceServiceStub
) -> None:
    token = new_principal(admin, "carol")
    admin.DeletePrincipal(g.DeletePrincipalRequest(name="principals/carol"))
    with pytest.raises(grpc.RpcError) as refused:
        as_principal(fresh_server, token).ListSpaces(g.ListSpacesRequest())
    assert reason_of(refused.value) == "INVALID_TOKEN"
    with pytest.raises(grpc.RpcError) as last:
        admin.DeletePrincipal(g.DeletePrincipalRequest(name="principals/admin"))
    assert last.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(last.value) == "LAST_ADMIN"


def test_public_keys_get_their_protocol_key_id(admin: GovernanceServiceStub) -> None:
    public = Ed25519PrivateKey.generate().public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    created = admin.CreatePrincipal(
        g.CreatePrincipalRequest(
            principal_id="peer-b",
            principal=principal_pb2.Principal(
                kind=principal_pb2.Principal.KIND_PEER_NODE, public_keys=[principal_pb2.PublicKey(public_key=raw)]
            ),
        )
    )
    assert created.public_keys[0].key_id == hashlib.sha256(der).hexdigest()
    assert created.public_keys[0].algorithm == "ed25519"
    with pytest.raises(grpc.RpcError) as bad:
        admin.CreatePrincipal(
            g.CreatePrincipalRequest(
                principal_id="peer-c",
                principal=principal_pb2.Principal(public_keys=[principal_pb2.PublicKey(public_key=b"short")]),
            )
        )
    assert reason_of(bad.value) == "INVALID_PUBLIC_KEY"


#: Keys no signature may be checked against: the identity point and a point of order 8 (small order), and the
#: identity again with y written as y + p (not canonical).
WEAK_KEYS = [
    bytes([1]) + bytes(31),
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    (2**255 - 19 + 1).to_bytes(32, "little"),
]


@pytest.mark.parametrize("raw", WEAK_KEYS, ids=["identity", "order-8", "non-canonical"])
def test_weak_public_keys_are_refused_and_nothing_is_registered(admin: GovernanceServiceStub, raw: bytes) -> None:
    with pytest.raises(grpc.RpcError) as created:
        admin.CreatePrincipal(
            g.CreatePrincipalRequest(
                principal_id="peer-weak",
                principal=principal_pb2.Principal(
                    kind=principal_pb2.Principal.KIND_PEER_NODE, public_keys=[principal_pb2.PublicKey(public_key=raw)]
                ),
            )
        )
    assert created.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(created.value) == "INVALID_PUBLIC_KEY"
    assert "small order" in (created.value.details() or "")
    names = [p.name for p in admin.ListPrincipals(g.ListPrincipalsRequest()).principals]
    assert "principals/peer-weak" not in names
    new_principal(admin, "dave")
    with pytest.raises(grpc.RpcError) as registered:
        admin.RegisterPublicKey(
            g.RegisterPublicKeyRequest(parent="principals/dave", public_key=principal_pb2.PublicKey(public_key=raw))
        )
    assert registered.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(registered.value) == "INVALID_PUBLIC_KEY"
    assert not admin.GetPrincipal(g.GetPrincipalRequest(name="principals/dave")).public_keys


def test_a_principal_sees_only_its_own_spaces(fresh_server: MemosServer, admin: GovernanceServiceStub) -> None:
    dave = as_principal(fresh_server, new_principal(admin, "dave"))
    erin = as_principal(fresh_server, new_principal(admin, "erin"))
    dave.CreateSpace(g.CreateSpaceRequest(space_id="daves"))
    erin.CreateSpace(g.CreateSpaceRequest(space_id="erins"))
    assert [s.name for s in dave.ListSpaces(g.ListSpacesRequest()).spaces] == ["spaces/daves"]
    assert dave.GetSpace(g.GetSpaceRequest(name="spaces/daves")).owner == "principals/dave"
    with pytest.raises(grpc.RpcError) as hidden:
        dave.GetSpace(g.GetSpaceRequest(name="spaces/erins"))
    with pytest.raises(grpc.RpcError) as absent:
        dave.GetSpace(g.GetSpaceRequest(name="spaces/nobody-has-this"))
    assert hidden.value.code() == absent.value.code() == grpc.StatusCode.NOT_FOUND
    assert hidden.value.details() == "space spaces/erins does not exist"
    assert {s.name for s in admin.ListSpaces(g.ListSpacesRequest()).spaces} == {"spaces/daves", "spaces/erins"}
