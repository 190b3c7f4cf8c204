"""Retention: a space's default TTL, and the sweeper purging expired cubes (through their tombstones, as
tests/vault/test_expiry.py shows in detail) and orphan blobs from every store."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from memos_test_support import admin_token, authorized_channel, reason_of, start_server

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.vault.context import utc_now
from memos_grpc.vault.retention import sweep


def test_default_ttl_and_sweeper_purge_every_store(tmp_path: Path, embedder: Embedder) -> None:
    # The sweeper's own thread never runs here (an hour apart): the test moves the vault's clock past the
    # cube's TTL and the blob's grace period and sweeps, so no step races the machine's speed.
    server = start_server(
        tmp_path / "data", embedder, sweep_interval_seconds=3600, blob_grace_seconds=60, expired_retention_seconds=120
    )
    assert server.vault is not None
    context = server.vault.context
    try:
        channel = authorized_channel(server.address, admin_token(server))
        governance, vault = GovernanceServiceStub(channel), VaultServiceStub(channel)
        space = space_pb2.Space(default_ttl=duration_pb2.Duration(seconds=2))
        assert governance.CreateSpace(g.CreateSpaceRequest(space_id="brief", space=space)).default_ttl.seconds == 2
        governance.CreateSpace(g.CreateSpaceRequest(space_id="kept"))

        text = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="a passing thought"))
        brief = vault.CreateCube(v.CreateCubeRequest(parent="spaces/brief", cube_id="thought", cube=text))
        assert brief.expire_time.seconds - brief.create_time.seconds in (1, 2)
        assert brief.expire_time_setter == "spaces/brief", "the space's default TTL set it"
        kept = vault.CreateCube(v.CreateCubeRequest(parent="spaces/kept", cube_id="thought", cube=text))
        assert not kept.HasField("expire_time")

        data = b"kv cache bytes"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        uploaded = vault.WritePayload(iter([v.WritePayloadRequest(parent="spaces/brief", data=data)]))
        assert uploaded.blob.digest == digest
        kv = cube_pb2.MemCube(
            activation=cube_pb2.ActivationPayload(blob=cube_pb2.BlobRef(digest=digest), model_fingerprint="m@sha256:0")
        )
        vault.CreateCube(v.CreateCubeRequest(parent="spaces/brief", cube_id="cache", cube=kv))
        assert context.blobs.exists(digest)

        past_ttl = utc_now() + timedelta(seconds=3)
        context.clock = lambda: past_ttl
        with pytest.raises(grpc.RpcError) as gone:
            vault.GetCube(v.GetCubeRequest(name=brief.name))  # expired: gone from reads at once
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        report = sweep(context)
        assert (report.expired, report.cubes, report.blobs) == (2, 0, 0), (
            "emptied into tombstones; the fresh upload keeps the blob through its grace period"
        )
        assert context.blobs.exists(digest)
        past_grace = utc_now() + timedelta(seconds=61)
        context.clock = lambda: past_grace
        assert sweep(context).blobs == 1
        assert context.catalog.size("brief") == 0 and not context.blobs.exists(digest)
        with context.database.read() as cursor:
            assert cursor.execute("SELECT count(*) FROM cubes WHERE space_id = 'brief' AND state = 6").fetchone() == (
                2,
            ), "two tombstones"
            assert cursor.execute("SELECT count(*) FROM blobs").fetchone() == (0,)
        past_retention = utc_now() + timedelta(seconds=2 + 120)
        context.clock = lambda: past_retention
        assert sweep(context).cubes == 2
        with context.database.read() as cursor:
            assert cursor.execute("SELECT count(*) FROM cubes WHERE space_id = 'brief'").fetchone() == (0,)
        if context.indexes.derived:  # hnswlib marks deleted labels; on PostgreSQL the rows were the index
            index = context.indexes.get("brief")
            assert index.labels(), "the index held the cube's vector"
            assert index.delete(index.labels()) == 0, "the sweeper left a live vector in the index"
        hits = vault.SearchCubes(v.SearchCubesRequest(parent="spaces/brief", text="a passing thought")).results
        assert not hits
        assert vault.GetCube(v.GetCubeRequest(name=kept.name)).name == kept.name
        channel.close()
    finally:
        server.stop(grace=1)


def test_a_fresh_upload_waits_out_the_grace_period(tmp_path: Path, embedder: Embedder) -> None:
    server = start_server(tmp_path / "data", embedder, sweep_interval_seconds=3600, blob_grace_seconds=3600)
    assert server.vault is not None
    try:
        channel = authorized_channel(server.address, admin_token(server))
        GovernanceServiceStub(channel).CreateSpace(g.CreateSpaceRequest(space_id="uploads"))
        blob = VaultServiceStub(channel).WritePayload(iter([v.WritePayloadRequest(parent="spaces/uploads", data=b"x")]))
        assert sweep(server.vault.context).blobs == 0
        assert server.vault.context.blobs.exists(blob.blob.digest)
        channel.close()
    finally:
        server.stop(grace=1)


def test_an_upload_lets_its_uploader_name_the_blob_only_within_the_grace_period(
    tmp_path: Path, embedder: Embedder
) -> None:
    """Past ``blob_grace_seconds`` an upload no longer lets anyone name the blob, and the sweeper removes the
    upload record and then the blob; the vault's clock is moved on instead of waiting."""
    server = start_server(tmp_path / "data", embedder, sweep_interval_seconds=3600, blob_grace_seconds=60)
    assert server.vault is not None
    context = server.vault.context
    try:
        channel = authorized_channel(server.address, admin_token(server))
        GovernanceServiceStub(channel).CreateSpace(g.CreateSpaceRequest(space_id="late"))
        vault = VaultServiceStub(channel)
        digests = [
            vault.WritePayload(iter([v.WritePayloadRequest(parent="spaces/late", data=data)])).blob.digest
            for data in (b"named in time", b"named too late")
        ]

        def cube(digest: str) -> v.CreateCubeRequest:
            payload = cube_pb2.ActivationPayload(blob=cube_pb2.BlobRef(digest=digest), model_fingerprint="m@sha256:0")
            return v.CreateCubeRequest(parent="spaces/late", cube=cube_pb2.MemCube(activation=payload))

        vault.CreateCube(cube(digests[0]))
        later = utc_now() + timedelta(seconds=61)
        context.clock = lambda: later
        with pytest.raises(grpc.RpcError) as refused:
            vault.CreateCube(cube(digests[1]))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason_of(refused.value) == "BLOB_NOT_FOUND"

        sweep(context)
        with context.database.read() as cursor:
            assert cursor.execute("SELECT count(*) FROM blob_uploads").fetchone() == (0,)
            kept = {str(d) for (d,) in cursor.execute("SELECT digest FROM blobs").fetchall()}
        assert kept == {digests[0]}, "the named blob stays, the other goes with its upload record"
        assert context.blobs.exists(digests[0])
        assert not context.blobs.exists(digests[1])
        channel.close()
    finally:
        server.stop(grace=1)
