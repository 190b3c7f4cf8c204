"""gRPC servicer of SchedulerService: Recall, a thin translation onto the vault's scheduler."""

from __future__ import annotations

import grpc

from memos_grpc._proto.memos.v1 import scheduler_service_pb2, scheduler_service_pb2_grpc
from memos_grpc.governance import caller
from memos_grpc.server.services import VaultSlot


class SchedulerServicer(scheduler_service_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, slot: VaultSlot) -> None:
        self._slot = slot

    def Recall(
        self, request: scheduler_service_pb2.RecallRequest, context: grpc.ServicerContext
    ) -> scheduler_service_pb2.RecallPlan:
        return self._slot.get().scheduler.recall(request, caller.current())
