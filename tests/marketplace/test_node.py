"""The marketplace node over gRPC: keys made at first start, published checkpoints, proofs and entries.

A real server with ``marketplace_enabled`` and no witnesses (each checkpoint is published as soon as the
log signs it); everything the TransparencyLogService returns is checked the way a buyer checks it
offline, with the log's key and the merkle, note and tlog-proof modules. Witnessed publication is in
tests/witness.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from memos_test_support import admin_token, authorized_channel, reason_of, start_server

from memos_grpc._proto.memos.v1 import transparency_log_service_pb2 as t
from memos_grpc._proto.memos.v1.transparency_log_service_pb2_grpc import TransparencyLogServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.marketplace.entries import Entry
from memos_grpc.marketplace.node import MarketplaceNode
from memos_grpc.server.app import MemosServer
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.note import open_note
from memos_grpc.transparency.policy import parse_policy
from memos_grpc.transparency.proof import verify_proof


def entry(n: int) -> bytes:
    return Entry("publish", f"sha256:{n:064x}", f"sha256:{n + 1:064x}", "a" * 64).encode()


def node_of(server: MemosServer) -> MarketplaceNode:
    assert server.vault is not None and server.vault.marketplace is not None
    return server.vault.marketplace


@pytest.fixture
def market(tmp_path: Path, embedder: Embedder) -> Iterator[MemosServer]:
    server = start_server(
        tmp_path / "data", embedder, marketplace_enabled=True, marketplace_log_origin="market.test/log"
    )
    yield server
    server.stop(grace=1)


def stub(server: MemosServer) -> TransparencyLogServiceStub:
    return TransparencyLogServiceStub(authorized_channel(server.address, admin_token(server)))


def test_keys_are_made_at_first_start_private_and_kept(tmp_path: Path, embedder: Embedder) -> None:
    server = start_server(tmp_path / "data", embedder, marketplace_enabled=True)
    node = node_of(server)
    keys = (node.log_key.key_id, node.marketplace_key.key_id, node.origin)
    server.stop(grace=1)
    for name in ("log.key", "marketplace.key"):
        assert stat.S_IMODE((tmp_path / "data" / "keys" / name).stat().st_mode) == 0o600
    assert keys[2] == f"memos-grpc.local/log/{keys[0][:16]}"
    again = start_server(tmp_path / "data", embedder, marketplace_enabled=True)
    try:
        node = node_of(again)
        assert (node.log_key.key_id, node.marketplace_key.key_id, node.origin) == keys
    finally:
        again.stop(grace=1)


def test_a_node_that_is_no_marketplace_says_so(fresh_server: MemosServer) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        stub(fresh_server).GetCheckpoint(t.GetCheckpointRequest())
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(refused.value) == "MARKETPLACE_DISABLED"


def test_published_checkpoints_proofs_and_entries_verify_offline(market: MemosServer) -> None:
    node, log = node_of(market), stub(market)
    verifier = node.log_verifier
    sizes = []
    for batch in ([entry(0)], [entry(n) for n in range(1, 6)], [entry(n) for n in range(6, 13)]):
        indexes = node.append(batch)
        node.wait_published(indexes[-1] + 1)
        checkpoint = log.GetCheckpoint(t.GetCheckpointRequest())
        opened = open_note(checkpoint.note, [verifier])
        assert Checkpoint.parse(opened.text) == Checkpoint("market.test/log", checkpoint.size, checkpoint.root_hash, ())
        sizes.append((checkpoint.size, checkpoint.root_hash))
    assert [size for size, _ in sizes] == [1, 6, 13]
    root = sizes[-1][1]
    policy = parse_policy(node.policy_text())
    for index in range(13):
        proof = log.GetInclusionProof(t.GetInclusionProofRequest(index=index))
        assert proof.entry == entry(index) and proof.tree_size == 13
        merkle.verify_inclusion(merkle.leaf_hash(proof.entry), index, 13, list(proof.hashes), root)
        report = verify_proof(proof.entry, proof.tlog_proof, verifier, policy, {}, datetime.now(UTC), 600)
        assert report, report.shortfalls
        older = log.GetInclusionProof(t.GetInclusionProofRequest(index=0, tree_size=6))
        merkle.verify_inclusion(merkle.leaf_hash(entry(0)), 0, 6, list(older.hashes), sizes[1][1])
        assert not older.tlog_proof  # only the latest published size comes with a proof file
    for old_size, old_root in sizes:
        consistency = log.GetConsistencyProof(t.GetConsistencyProofRequest(old_size=old_size))
        merkle.verify_consistency(old_size, 13, old_root, root, list(consistency.hashes))
    entries = log.GetEntries(t.GetEntriesRequest(start_index=4, max_entries=5))
    assert [(e.index, e.data) for e in entries.entries] == [(n, entry(n)) for n in range(4, 9)]
    assert entries.tree_size == 13
    assert log.GetEntries(t.GetEntriesRequest(start_index=13)).entries == []


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        ("inclusion past the size", "INDEX_OUT_OF_RANGE"),
        ("inclusion in an unpublished size", "SIZE_OUT_OF_RANGE"),
        ("negative index", "INDEX_OUT_OF_RANGE"),
        ("consistency from past the size", "SIZE_OUT_OF_RANGE"),
        ("entries past the size", "INDEX_OUT_OF_RANGE"),
        ("negative max_entries", "INVALID_PAGE_SIZE"),
    ],
)
def test_requests_outside_the_published_tree_are_refused(market: MemosServer, call: str, reason: str) -> None:
    node, log = node_of(market), stub(market)
    node.wait_published(node.append([entry(n) for n in range(3)])[-1] + 1)
    requests = {
        "inclusion past the size": lambda: log.GetInclusionProof(t.GetInclusionProofRequest(index=3)),
        "inclusion in an unpublished size": lambda: log.GetInclusionProof(
            t.GetInclusionProofRequest(index=0, tree_size=4)
        ),
        "negative index": lambda: log.GetInclusionProof(t.GetInclusionProofRequest(index=-1)),
        "consistency from past the size": lambda: log.GetConsistencyProof(
            t.GetConsistencyProofRequest(old_size=4, new_size=3)
        ),
        "entries past the size": lambda: log.GetEntries(t.GetEntriesRequest(start_index=4)),
        "negative max_entries": lambda: log.GetEntries(t.GetEntriesRequest(max_entries=-1)),
    }
    with pytest.raises(grpc.RpcError) as refused:
        requests[call]()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == reason


def test_a_restart_serves_the_published_checkpoint_and_signs_nothing_again(tmp_path: Path, embedder: Embedder) -> None:
    server = start_server(tmp_path / "data", embedder, marketplace_enabled=True)
    node = node_of(server)
    node.wait_published(node.append([entry(n) for n in range(4)])[-1] + 1)
    before = stub(server).GetCheckpoint(t.GetCheckpointRequest())
    server.stop(grace=1)
    again = start_server(tmp_path / "data", embedder, marketplace_enabled=True)
    try:
        assert stub(again).GetCheckpoint(t.GetCheckpointRequest()) == before
        assert node_of(again).log.latest_checkpoint() is not None
        with again.vault.context.database.read() as cursor:  # type: ignore[union-attr]
            signed = cursor.execute("SELECT count(*) FROM tlog_checkpoints WHERE tree_size = 4").fetchone()
        assert signed == (1,)
    finally:
        again.stop(grace=1)
