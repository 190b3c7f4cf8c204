"""Servers sharing one PostgreSQL database through failures: a server killed mid-write, and a database restart.

A server killed with SIGKILL in the middle of a stream of writes loses none it acknowledged (the others read every
one), and the other servers keep serving, writing and verifying the audit chain; started again, it serves
everything. A database that restarts ends every session of every server: each server's writer, readers and
change follower reconnect, and what one server writes after the restart the others find. Servers run as child
processes (``tests/server/_process.py``) when they are killed, in this process otherwise; every check waits on
a condition (an acknowledged count, a change number, a health check), never for a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from memos_test_support import admin_token, authorized_channel, caught_up, start_replica
from postgres_support import SeparateServer
from server._process import ServerFactory, ServerProcess, wait_until

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder

#: The child servers' vectors (``FAST_ENV``: no embedder, clients send 384-dimensional vectors).
DIMENSION = 384
#: Writes the first server acknowledges before it is killed.
BEFORE_KILL = 25
#: Seconds a check waits for what another server or the database does (each is woken as it happens).
WITHIN = 60.0


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path)
    yield factory
    factory.close()


def _vector(rng: np.random.Generator) -> v.Vector:
    values = rng.normal(size=DIMENSION).astype(np.float32)
    return v.Vector(values=(values / np.linalg.norm(values)).tolist())


def _request(space: str, text: str, rng: np.random.Generator) -> v.CreateCubeRequest:
    cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text))
    return v.CreateCubeRequest(parent=space, cube=cube, vector=_vector(rng))


class Writer:
    """Writes cubes to one server until a call fails or it is told to stop; keeps the names it got back."""

    def __init__(self, server: ServerProcess, token: str, space: str, seed: int) -> None:
        self.acknowledged: list[str] = []
        self.error: grpc.RpcError | None = None
        self._server, self._token, self._space, self._seed = server, token, space, seed
        self._counted = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def _run(self) -> None:
        rng = np.random.default_rng(self._seed)
        with authorized_channel(self._server.address, self._token) as channel:
            vault = VaultServiceStub(channel)
            number = 0
            while not self._stop.is_set():
                try:
                    name = vault.CreateCube(_request(self._space, f"writer {self._seed} note {number}", rng)).name
                except grpc.RpcError as error:
                    self.error = error
                    break
                number += 1
                with self._counted:
                    self.acknowledged.append(name)
                    self._counted.notify_all()
        with self._counted:
            self._stop.set()
            self._counted.notify_all()

    def wait_for(self, count: int) -> None:
        with self._counted:
            assert self._counted.wait_for(lambda: len(self.acknowledged) >= count or self._stop.is_set(), WITHIN)
        assert len(self.acknowledged) >= count, f"the writer stopped early: {self.error}"

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join()
        return list(self.acknowledged)


def _readable(server: ServerProcess, token: str, names: list[str]) -> list[str]:
    """The names ``server`` cannot read (an empty list when it reads every one)."""
    missing = []
    with authorized_channel(server.address, token) as channel:
        vault = VaultServiceStub(channel)
        for name in names:
            try:
                vault.GetCube(v.GetCubeRequest(name=name))
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND, error
                missing.append(name)
    return missing


def test_a_server_killed_mid_write_loses_no_acknowledged_write_and_the_others_keep_serving(
    tmp_path: Path, url: str, servers: ServerFactory
) -> None:
    env = {"MEMOS_POSTGRES_URL": url, "MEMOS_KEYS_DIR": str(tmp_path / "keys")}
    first = servers.start(tmp_path / "a", env)
    second = servers.start(tmp_path / "b", env)
    token = (first.data_dir / "admin.token").read_text().strip()
    with authorized_channel(first.address, token) as channel:
        space = GovernanceServiceStub(channel).CreateSpace(g.CreateSpaceRequest(space_id="busy")).name

    doomed = Writer(first, token, space, seed=1).start()
    survivor = Writer(second, token, space, seed=2).start()
    doomed.wait_for(BEFORE_KILL)
    survivor.wait_for(1)
    first.kill9()
    lost_with_it = doomed.stop()
    # The second server writes on after the first is gone.
    after = len(survivor.acknowledged)
    survivor.wait_for(after + BEFORE_KILL)
    kept = survivor.stop()
    assert survivor.error is None, survivor.error

    assert _readable(second, token, lost_with_it) == []
    with authorized_channel(second.address, token) as channel:
        assert GovernanceServiceStub(channel).VerifyAuditLog(g.VerifyAuditLogRequest()).verified

    # Started again on its data directory, the first server serves every acknowledged write, its own and the
    # second server's.
    again = servers.start(tmp_path / "a", env)
    assert _readable(again, token, lost_with_it + kept) == []
    with authorized_channel(again.address, token) as channel:
        vault = VaultServiceStub(channel)
        listed = wait_until(
            lambda: len(vault.ListCubes(v.ListCubesRequest(parent=space, page_size=1000)).cubes) or None,
            WITHIN,
            "a listing",
        )
        assert listed >= len(lost_with_it) + len(kept)


@pytest.fixture
def own_database() -> Iterator[SeparateServer]:
    server = SeparateServer()
    yield server
    server.close()


def _texts(vault: VaultServiceStub, space: str, text: str) -> list[str]:
    results = vault.SearchCubes(v.SearchCubesRequest(parent=space, text=text, top_k=3)).results
    return [result.cube.plaintext.text for result in results]


def test_servers_reconnect_after_a_database_restart_and_catch_up(
    tmp_path: Path, embedder: Embedder, own_database: SeparateServer
) -> None:
    url = own_database.database()
    first = start_replica(tmp_path / "a", url, embedder)
    second = start_replica(tmp_path / "b", url, embedder)
    try:
        token = admin_token(first)
        with authorized_channel(first.address, token) as one, authorized_channel(second.address, token) as two:
            space = GovernanceServiceStub(one).CreateSpace(g.CreateSpaceRequest(space_id="steady")).name
            before = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="the heron waits at dawn"))
            VaultServiceStub(one).CreateCube(v.CreateCubeRequest(parent=space, cube=before))
            caught_up(first, second)

            own_database.restart()

            # Every session of both servers ended: the next write and the next reads reconnect.
            after = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="the otter dives at dusk"))
            written = VaultServiceStub(two).CreateCube(v.CreateCubeRequest(parent=space, cube=after))
            assert VaultServiceStub(one).GetCube(v.GetCubeRequest(name=written.name)).plaintext.text == (
                "the otter dives at dusk"
            )
            caught_up(second, first)
            assert _texts(VaultServiceStub(one), space, "otter at dusk")[0] == "the otter dives at dusk"
            assert _texts(VaultServiceStub(two), space, "heron at dawn")[0] == "the heron waits at dawn"
            for channel in (one, two):
                assert GovernanceServiceStub(channel).VerifyAuditLog(g.VerifyAuditLogRequest()).verified
    finally:
        second.stop(grace=1)
        first.stop(grace=1)
