"""gRPC servicer of WitnessService: AddCheckpoint, a thin translation onto the vault's witness."""

from __future__ import annotations

import grpc

from memos_grpc._proto.memos.v1 import witness_service_pb2, witness_service_pb2_grpc
from memos_grpc.server.services import VaultSlot


class WitnessServicer(witness_service_pb2_grpc.WitnessServiceServicer):
    """WitnessService: AddCheckpoint, forwarded to the vault's ``Witness``, which checks and cosigns."""

    def __init__(self, slot: VaultSlot) -> None:
        self._slot = slot

    def AddCheckpoint(
        self, request: witness_service_pb2.AddCheckpointRequest, context: grpc.ServicerContext
    ) -> witness_service_pb2.AddCheckpointResponse:
        cosigned = self._slot.get().witness.add_checkpoint(
            request.old_size, list(request.consistency_proof), request.checkpoint
        )
        return witness_service_pb2.AddCheckpointResponse(cosignatures=cosigned.cosignatures, size=cosigned.size)
