"""Anonymous access: refused by default, and when an operator allows it, a non-admin principal only."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from memos_test_support import admin_token, authorized_channel, start_server

from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc.embedding.embedder import Embedder


def test_anonymous_calls_are_refused_unless_allowed(tmp_path: Path, embedder: Embedder) -> None:
    closed = start_server(tmp_path / "closed", embedder)
    try:
        with grpc.insecure_channel(closed.address) as channel, pytest.raises(grpc.RpcError) as refused:
            GovernanceServiceStub(channel).ListSpaces(g.ListSpacesRequest())
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        closed.stop(grace=1)

    open_server = start_server(tmp_path / "open", embedder, allow_anonymous=True)
    try:
        with grpc.insecure_channel(open_server.address) as channel:
            anonymous = GovernanceServiceStub(channel)
            space = anonymous.CreateSpace(g.CreateSpaceRequest(space_id="public-notes"))
            assert space.owner == "principals/anonymous"
            with pytest.raises(grpc.RpcError) as not_admin:
                anonymous.ListPrincipals(g.ListPrincipalsRequest())
            assert not_admin.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with authorized_channel(open_server.address, admin_token(open_server)) as admin_channel:
            admin = GovernanceServiceStub(admin_channel)
            admin.CreateSpace(g.CreateSpaceRequest(space_id="admins-own"))
            with grpc.insecure_channel(open_server.address) as channel, pytest.raises(grpc.RpcError) as hidden:
                GovernanceServiceStub(channel).GetSpace(g.GetSpaceRequest(name="spaces/admins-own"))
            assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
            with grpc.insecure_channel(open_server.address) as channel, pytest.raises(grpc.RpcError) as bad_token:
                GovernanceServiceStub(channel).ListSpaces(
                    g.ListSpacesRequest(), metadata=(("authorization", "Bearer nonsense"),)
                )
            assert bad_token.value.code() == grpc.StatusCode.UNAUTHENTICATED  # a bad token never falls back
    finally:
        open_server.stop(grace=1)
