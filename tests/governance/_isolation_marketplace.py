"""The isolation matrix's rows for the marketplace's transparency log.

The world's server is a marketplace (no witnesses, so each checkpoint is published as soon as the log
signs it) whose log holds one entry, appended when the world is made. Every authenticated caller may
read the log; the checks of what comes back are the offline verifications a buyer runs.
"""

from __future__ import annotations

from typing import Any

from _isolation_world import Access, Row, Target, Who, World

from memos_grpc._proto.memos.v1 import transparency_log_service_pb2 as tlog
from memos_grpc.marketplace.entries import Entry
from memos_grpc.transparency import merkle
from memos_grpc.transparency.note import open_note

_T = "/memos.v1.TransparencyLogService/"
#: The entry the world's log holds (a publish event of a release nobody needs to fetch).
WORLD_LOG_ENTRY = Entry("publish", "sha256:" + "1" * 64, "sha256:" + "2" * 64, "3" * 64).encode()


def _node(w: World) -> Any:
    assert w.server.vault is not None and w.server.vault.marketplace is not None
    return w.server.vault.marketplace


def _is_the_checkpoint(w: World, _who: Who, reply: tlog.Checkpoint) -> None:
    node = _node(w)
    opened = open_note(reply.note, [node.log_verifier])
    assert opened.text.startswith(f"{node.origin}\n{reply.size}\n") and reply.size >= 1


def _proves_the_entry(w: World, _who: Who, reply: tlog.InclusionProof) -> None:
    merkle.verify_inclusion(
        merkle.leaf_hash(reply.entry), reply.index, reply.tree_size, list(reply.hashes), reply.checkpoint.root_hash
    )
    assert reply.tlog_proof.startswith("c2sp.org/tlog-proof@v1\n")


def _is_consistent(w: World, _who: Who, reply: tlog.ConsistencyProof) -> None:
    assert reply.new_size >= 1 and list(reply.hashes) == []  # from 0: nothing to prove


def _has_the_entry(w: World, _who: Who, reply: tlog.GetEntriesResponse) -> None:
    assert [e.index for e in reply.entries][:1] == [0] and reply.entries[0].data == _node(w).log.entries(0, 1)[0]


MARKETPLACE_ROWS = [
    Row(
        _T + "GetCheckpoint",
        Access.AUTHENTICATED,
        False,
        lambda _w, _c: Target(tlog.GetCheckpointRequest()),
        _is_the_checkpoint,
    ),
    Row(
        _T + "GetInclusionProof",
        Access.AUTHENTICATED,
        False,
        lambda _w, _c: Target(tlog.GetInclusionProofRequest(index=0)),
        _proves_the_entry,
    ),
    Row(
        _T + "GetConsistencyProof",
        Access.AUTHENTICATED,
        False,
        lambda _w, _c: Target(tlog.GetConsistencyProofRequest(old_size=0)),
        _is_consistent,
    ),
    Row(
        _T + "GetEntries",
        Access.AUTHENTICATED,
        False,
        lambda _w, _c: Target(tlog.GetEntriesRequest(start_index=0, max_entries=1)),
        _has_the_entry,
    ),
]
