"""The access log: one JSON line per finished call, with the status the caller got, whatever ended the call."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from memos_test_support import admin_token, authorized_channel, start_server, wait_until

from memos_grpc._proto.memos.v1 import (
    governance_service_pb2,
    governance_service_pb2_grpc,
    interchange_service_pb2,
    interchange_service_pb2_grpc,
    vault_service_pb2,
    vault_service_pb2_grpc,
)
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import MemosServer

GOVERNANCE = "/memos.v1.GovernanceService/"


@pytest.fixture
def logged(tmp_path: Path, embedder: Embedder) -> Iterator[tuple[MemosServer, Path]]:
    path = tmp_path / "access.jsonl"
    server = start_server(tmp_path / "data", embedder, access_log_file=str(path))
    yield server, path
    server.stop(grace=1)


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_call_is_one_line_with_the_status_the_caller_got(logged: tuple[MemosServer, Path]) -> None:
    server, path = logged
    with authorized_channel(server.address, admin_token(server)) as channel:
        governance = governance_service_pb2_grpc.GovernanceServiceStub(channel)
        governance.CreateSpace(governance_service_pb2.CreateSpaceRequest(space_id="logged"))
        with pytest.raises(grpc.RpcError) as missing:
            governance.GetSpace(governance_service_pb2.GetSpaceRequest(name="spaces/absent"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with grpc.insecure_channel(server.address) as anonymous:
        with pytest.raises(grpc.RpcError) as refused:
            governance_service_pb2_grpc.GovernanceServiceStub(anonymous).ListSpaces(
                governance_service_pb2.ListSpacesRequest()
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    records = _records(path)
    assert [(r["method"], r["code"]) for r in records] == [
        (GOVERNANCE + "CreateSpace", "OK"),
        (GOVERNANCE + "GetSpace", "NOT_FOUND"),
        (GOVERNANCE + "ListSpaces", "UNAUTHENTICATED"),
    ]
    for record in records:
        assert set(record) == {"time", "method", "code", "ms", "peer", "user_agent"}
        assert str(record["user_agent"]).startswith("grpc-python/")
        assert str(record["peer"]).startswith("ipv4:127.0.0.1:")
        assert isinstance(record["ms"], float) and record["ms"] >= 0
    # No request data and no credential: the space id and the token appear nowhere.
    text = path.read_text(encoding="utf-8")
    assert "logged" not in text and admin_token(server) not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_streams_are_logged_when_they_end(logged: tuple[MemosServer, Path]) -> None:
    server, path = logged
    with authorized_channel(server.address, admin_token(server)) as channel:
        governance_service_pb2_grpc.GovernanceServiceStub(channel).CreateSpace(
            governance_service_pb2.CreateSpaceRequest(space_id="streamed")
        )
        vault = vault_service_pb2_grpc.VaultServiceStub(channel)
        vault.CreateCube(
            vault_service_pb2.CreateCubeRequest(
                parent="spaces/streamed", cube_id="a", cube={"plaintext": {"text": "a fact to export"}}
            )
        )
        export = interchange_service_pb2_grpc.InterchangeServiceStub(channel).ExportBundle
        chunks = list(export(interchange_service_pb2.ExportBundleRequest(parent="spaces/streamed")))
        assert chunks
        with pytest.raises(grpc.RpcError) as refused:
            list(export(interchange_service_pb2.ExportBundleRequest(parent="spaces/absent")))
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND

    def export_lines() -> list[dict[str, object]] | None:
        lines = [r for r in _records(path) if str(r["method"]).endswith("/ExportBundle")]
        return lines if len(lines) == 2 else None

    # A stream's line is written before its status is sent; waiting on the file costs nothing when it is there.
    exports = wait_until(export_lines, 10, "both export lines")
    assert [r["code"] for r in exports] == ["OK", "NOT_FOUND"]


def test_no_setting_no_file(tmp_path: Path, embedder: Embedder) -> None:
    server = start_server(tmp_path / "data", embedder)
    try:
        with authorized_channel(server.address, admin_token(server)) as channel:
            governance_service_pb2_grpc.GovernanceServiceStub(channel).ListSpaces(
                governance_service_pb2.ListSpacesRequest()
            )
    finally:
        server.stop(grace=1)
    assert not list(tmp_path.rglob("*access*"))
