"""Helpers shared by the tests: authenticating as a test server's bootstrap admin, waiting on a condition."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from postgres_support import database_for

from memos_grpc._proto.memos.v1 import access_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.node import Node
from memos_grpc.server.app import MemosServer
from memos_grpc.settings import Settings
from memos_grpc.store.postgres.changes import last_number

T = TypeVar("T")

#: The environment variable that runs the tests' servers on PostgreSQL ("postgres") instead of DuckDB.
BACKEND_VARIABLE = "MEMOS_TEST_BACKEND"
TESTS = Path(__file__).parent
#: Test folders and modules that never open a store, so the PostgreSQL run leaves them out; tests/store is here
#: because its tests run on both backends in every run.
BACKEND_FREE = (
    "store/",
    "transparency/",
    "codegen/",
    "embedding/",
    "interop/test_vectors.py",
    "interop/test_protocol.py",
    "interop/test_differential.py",
    "primitives/test_key_files.py",
    "test_backends.py",
    "test_docs.py",
    "test_docstrings.py",
    "test_layers.py",
    "test_lock.py",
    "test_settings.py",
)


#: Test folders of several servers sharing one PostgreSQL database (they make their own databases): only the
#: PostgreSQL run runs them.
SHARED_DATABASE = ("replicas/",)


def admin_token(server: MemosServer) -> str:
    """The bootstrap admin's token, as the server wrote it to DATA_DIR/admin.token."""
    return (server.settings.data_dir / "admin.token").read_text().strip()


class BearerToken(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
):
    """Adds ``authorization: Bearer <token>`` to every call of a channel."""

    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        metadata = [*(details.metadata or []), self._metadata]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)


def authorized_channel(address: str, token: str) -> grpc.Channel:
    return grpc.intercept_channel(grpc.insecure_channel(address), BearerToken(token))


def reason_of(error: grpc.RpcError) -> str:
    """The ErrorInfo reason the server sent with a failed call (asserts there is one)."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status in {error}"
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    raise AssertionError(f"no ErrorInfo in {error}")


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02) -> T:
    """Polls ``predicate`` until it returns something truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def start_server(data_dir: Path, embedder: Embedder, **overrides: object) -> MemosServer:
    """A server on a free 127.0.0.1 port over ``data_dir``, started; ``overrides`` are settings."""
    if os.environ.get(BACKEND_VARIABLE) == "postgres" and "postgres_url" not in overrides:
        overrides = {**overrides, "postgres_url": database_for(data_dir)}
    settings = Settings.from_mapping({"data_dir": data_dir, "listen": "127.0.0.1:0", "workers": 8, **overrides})
    server = MemosServer(settings, embedder)
    server.start()
    return server


def start_replica(data_dir: Path, url: str, embedder: Embedder, **overrides: object) -> MemosServer:
    """A server sharing the PostgreSQL database at ``url``, started: its own data directory, and the key directory
    beside it (``data_dir.parent / "keys"``), which every replica of a test shares."""
    return start_server(data_dir, embedder, postgres_url=url, keys_dir=str(data_dir.parent / "keys"), **overrides)


def share_with_viewer_and_editor(governance: GovernanceServiceStub, space: str) -> dict[str, str]:
    """Creates principals ``viewer`` and ``editor``, gives them those roles on ``space`` (the admin owns it) and
    returns their bearer tokens by name."""
    tokens = {}
    for name in ("viewer", "editor"):
        governance.CreatePrincipal(g.CreatePrincipalRequest(principal_id=name, principal=principal_pb2.Principal()))
        tokens[name] = governance.CreateCredential(g.CreateCredentialRequest(parent=f"principals/{name}")).token
    policy = access_pb2.AccessPolicy(
        bindings=[
            access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/admin"]),
            access_pb2.AccessBinding(role=access_pb2.ROLE_EDITOR, members=["principals/editor"]),
            access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=["principals/viewer"]),
        ]
    )
    governance.SetAccessPolicy(g.SetAccessPolicyRequest(resource=space, policy=policy))
    return tokens


def stored_blobs(server: MemosServer) -> set[str]:
    """The digests whose bytes the server's blob store holds: files under the data directory on the embedded
    backend, chunks in the database on PostgreSQL (whose data directory holds none)."""
    assert server.vault is not None
    if not server.settings.postgres_url:
        root = server.settings.blob_dir / "sha256"
        return {f"sha256:{path.name}" for path in root.rglob("*") if path.is_file()}
    with server.vault.context.database.read() as cursor:
        return {str(digest) for (digest,) in cursor.execute("SELECT DISTINCT digest FROM blob_chunks").fetchall()}


#: Seconds a server sharing a PostgreSQL database may take to apply another's change (it is woken at the commit).
APPLIED_WITHIN = 30.0


def caught_up(writer: MemosServer | Node, reader: MemosServer | Node) -> None:
    """Waits until ``reader`` has applied every change committed so far to the database it shares with
    ``writer`` (by ``writer`` or any other server): the condition a check on another server waits on."""
    nodes = [server.vault if isinstance(server, MemosServer) else server for server in (writer, reader)]
    assert nodes[0] is not None and nodes[1] is not None
    with nodes[0].context.database.read() as cursor:
        number = last_number(cursor)
    follower = nodes[1].context.store.follower
    assert follower is not None and follower.wait_for(number, APPLIED_WITHIN), f"change {number} not applied"
