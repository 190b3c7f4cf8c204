"""gRPC servicer of TransparencyLogService: a marketplace node's published checkpoints, proofs and entries.

Only what the latest published checkpoint covers is served (``MarketplaceNode``); a node whose marketplace
is off answers FAILED_PRECONDITION ``MARKETPLACE_DISABLED``.
"""

from __future__ import annotations

import grpc

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import transparency_log_service_pb2 as t
from memos_grpc._proto.memos.v1 import transparency_log_service_pb2_grpc
from memos_grpc.errors import FailedPreconditionError
from memos_grpc.marketplace.node import MarketplaceNode
from memos_grpc.marketplace.publisher import PublishedCheckpoint
from memos_grpc.server.services import VaultSlot
from memos_grpc.transparency.proof import TlogProof


def marketplace_of(slot: VaultSlot) -> MarketplaceNode:
    """The node's marketplace, or MARKETPLACE_DISABLED."""
    node = slot.get().marketplace
    if node is None:
        raise FailedPreconditionError(
            "this node is not a marketplace: its operator turns it on with marketplace_enabled",
            reason=reasons.MARKETPLACE_DISABLED,
        )
    return node


def checkpoint_message(published: PublishedCheckpoint) -> t.Checkpoint:
    return t.Checkpoint(
        origin=published.checkpoint.origin,
        size=published.checkpoint.size,
        root_hash=published.checkpoint.root,
        note=published.note,
        cosigners=list(published.cosigners),
    )


class TransparencyLogServicer(transparency_log_service_pb2_grpc.TransparencyLogServiceServicer):
    """TransparencyLogService on a marketplace node: checkpoints, inclusion and consistency proofs, log entries.

    Serves only what the latest published checkpoint covers; a node without a marketplace answers
    FAILED_PRECONDITION ``MARKETPLACE_DISABLED``.
    """

    def __init__(self, slot: VaultSlot) -> None:
        self._slot = slot

    def GetCheckpoint(self, request: t.GetCheckpointRequest, context: grpc.ServicerContext) -> t.Checkpoint:
        return checkpoint_message(marketplace_of(self._slot).require_published())

    def GetInclusionProof(self, request: t.GetInclusionProofRequest, context: grpc.ServicerContext) -> t.InclusionProof:
        size, entry, path, published = marketplace_of(self._slot).inclusion(request.index, request.tree_size)
        reply = t.InclusionProof(index=request.index, tree_size=size, entry=entry, hashes=path)
        if published is not None:
            reply.checkpoint.CopyFrom(checkpoint_message(published))
            reply.tlog_proof = TlogProof(request.index, tuple(path), published.note).text()
        return reply

    def GetConsistencyProof(
        self, request: t.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> t.ConsistencyProof:
        size, path, published = marketplace_of(self._slot).consistency(request.old_size, request.new_size)
        reply = t.ConsistencyProof(old_size=request.old_size, new_size=size, hashes=path)
        if published is not None:
            reply.checkpoint.CopyFrom(checkpoint_message(published))
        return reply

    def GetEntries(self, request: t.GetEntriesRequest, context: grpc.ServicerContext) -> t.GetEntriesResponse:
        size, entries = marketplace_of(self._slot).entries(request.start_index, request.max_entries)
        return t.GetEntriesResponse(
            entries=[t.LogEntry(index=request.start_index + n, data=data) for n, data in enumerate(entries)],
            tree_size=size,
        )
