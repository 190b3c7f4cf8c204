"""gRPC servicer of SchedulerService: Recall, transforms and their operations, thin translations onto the vault."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from memos_grpc._proto.memos.v1 import scheduler_service_pb2, scheduler_service_pb2_grpc
from memos_grpc.governance import caller
from memos_grpc.server.services import VaultSlot

Operation = scheduler_service_pb2.Operation


class SchedulerServicer(scheduler_service_pb2_grpc.SchedulerServiceServicer):
    """SchedulerService: Recall plans, TransformCube and the long-running operations it starts, plus model info.

    Stateless: each call is forwarded to the vault's scheduler, transformer or operations registry.
    """

    def __init__(self, slot: VaultSlot) -> None:
        self._slot = slot

    def Recall(
        self, request: scheduler_service_pb2.RecallRequest, context: grpc.ServicerContext
    ) -> scheduler_service_pb2.RecallPlan:
        return self._slot.get().scheduler.recall(request, caller.current())

    def TransformCube(
        self, request: scheduler_service_pb2.TransformCubeRequest, context: grpc.ServicerContext
    ) -> Operation:
        return self._slot.get().transformer.transform(request, caller.current())

    def GetOperation(
        self, request: scheduler_service_pb2.GetOperationRequest, context: grpc.ServicerContext
    ) -> Operation:
        return self._slot.get().operations.get(request.name, caller.current())

    def WatchOperation(
        self, request: scheduler_service_pb2.WatchOperationRequest, context: grpc.ServicerContext
    ) -> Iterator[Operation]:
        yield from self._slot.get().operations.watch(request.name, caller.current(), context.is_active)

    def CancelOperation(
        self, request: scheduler_service_pb2.CancelOperationRequest, context: grpc.ServicerContext
    ) -> Operation:
        return self._slot.get().operations.cancel(request.name, caller.current())

    def GetModel(
        self, request: scheduler_service_pb2.GetModelRequest, context: grpc.ServicerContext
    ) -> scheduler_service_pb2.ModelInfo:
        return self._slot.get().transformer.model_info()
