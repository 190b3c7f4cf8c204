"""grpc.health.v1 as the server answers it: Check and Watch from grpcio's servicer, and List.

grpcio-health-checking's servicer leaves ``List`` (added to health.proto
later) unimplemented; this one answers it from the same statuses ``Check``
reads, so every method reflection lists works, without a token.
"""

from __future__ import annotations

import threading
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2

ServingStatus: TypeAlias = health_pb2.HealthCheckResponse.ServingStatus


class HealthServicer(health.HealthServicer):
    """The server's grpc.health.v1 endpoint, owned by ``MemosServer`` for the life of the process.

    ``set`` (called as the vault opens and as the server drains) updates both grpcio's table, which Check and
    Watch read, and the copy List answers from, under one lock so the two never disagree.
    """

    def __init__(self) -> None:
        super().__init__()
        self._listed_lock = threading.Lock()
        # What ``set`` was told, for List; the parent's table is private. It starts as the parent's does.
        self._listed: dict[str, ServingStatus] = {health.OVERALL_HEALTH: health_pb2.HealthCheckResponse.SERVING}

    def set(self, service: str, status: ServingStatus) -> None:
        with self._listed_lock:
            super().set(service, status)
            self._listed[service] = status

    def List(
        self, request: health_pb2.HealthListRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthListResponse:
        """A snapshot of every registered service's status ("" is the server as a whole)."""
        with self._listed_lock:
            statuses: dict[str, Any] = {
                name: health_pb2.HealthCheckResponse(status=status) for name, status in self._listed.items()
            }
        return health_pb2.HealthListResponse(statuses=statuses)
