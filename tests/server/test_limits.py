"""Limits: past one, a call fails with the limit named, and the server stays healthy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from _process import wait_until
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from memos_test_support import admin_token, authorized_channel, start_server

from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.governance.identity import ADMIN_ID, principal_name


def test_payload_streams_per_principal_are_capped(tmp_path: Path, embedder: Embedder) -> None:
    server = start_server(tmp_path / "data", embedder, max_streams_per_principal=2)
    release = threading.Event()
    try:
        channel = authorized_channel(server.address, admin_token(server))
        GovernanceServiceStub(channel).CreateSpace(g.CreateSpaceRequest(space_id="limits"))
        vault = VaultServiceStub(channel)

        def slow_upload() -> Iterator[v.WritePayloadRequest]:
            yield v.WritePayloadRequest(parent="spaces/limits", data=b"first chunk")
            release.wait(timeout=30)
            yield v.WritePayloadRequest(data=b"last chunk")

        held = [vault.WritePayload.future(slow_upload(), timeout=60) for _ in range(2)]
        admin = principal_name(ADMIN_ID)
        wait_until(lambda: server.policy.open_streams() == {admin: 2}, timeout=30, what="both uploads holding a slot")
        with pytest.raises(grpc.RpcError) as refused:
            vault.WritePayload(iter([v.WritePayloadRequest(parent="spaces/limits", data=b"x")]), timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(refused.value)  # type: ignore[arg-type]
        assert status is not None
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info)
        assert info.reason == "TOO_MANY_STREAMS" and info.metadata["limit"] == "2"
        assert "max_streams_per_principal" in refused.value.details()
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        release.set()
        assert all(f.result().blob.size_bytes == len(b"first chunklast chunk") for f in held)
        assert server.policy.open_streams() == {}, "a finished upload still holds its slot"
        again = vault.WritePayload(iter([v.WritePayloadRequest(parent="spaces/limits", data=b"after")]), timeout=10)
        assert again.blob.size_bytes == 5
        channel.close()
    finally:
        release.set()
        server.stop(grace=1)
