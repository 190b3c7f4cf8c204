"""Builds and runs the gRPC server: services, health, reflection, limits and graceful shutdown.

The port opens first with health NOT_SERVING while the vault opens (loading
the embedder, repairing indexes); health turns SERVING only once the vault
is open. SIGTERM or SIGINT turn health back to NOT_SERVING, drain in-flight
calls for the grace period, then close the vault, which finishes queued
writes and saves the vector indexes.
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from types import FrameType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import (
    governance_service_pb2,
    governance_service_pb2_grpc,
    held_license_service_pb2,
    held_license_service_pb2_grpc,
    interchange_service_pb2,
    interchange_service_pb2_grpc,
    marketplace_service_pb2,
    marketplace_service_pb2_grpc,
    scheduler_service_pb2,
    scheduler_service_pb2_grpc,
    transparency_log_service_pb2,
    transparency_log_service_pb2_grpc,
    vault_service_pb2,
    vault_service_pb2_grpc,
    witness_service_pb2,
    witness_service_pb2_grpc,
)
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.node import Node
from memos_grpc.server.access_log import AccessLog, AccessLogInterceptor
from memos_grpc.server.enforcement import PolicyInterceptor
from memos_grpc.server.health import HealthServicer
from memos_grpc.server.held_licenses import HeldLicenseServicer
from memos_grpc.server.interceptors import ServerInterceptor
from memos_grpc.server.interchange import InterchangeServicer
from memos_grpc.server.marketplace import MarketplaceServicer
from memos_grpc.server.scheduler import SchedulerServicer
from memos_grpc.server.services import GovernanceServicer, VaultServicer, VaultSlot
from memos_grpc.server.status import ErrorMappingInterceptor
from memos_grpc.server.tls import server_credentials
from memos_grpc.server.transparency import TransparencyLogServicer
from memos_grpc.server.witness import WitnessServicer
from memos_grpc.settings import Settings

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    vault_service_pb2.DESCRIPTOR.services_by_name["VaultService"].full_name,
    governance_service_pb2.DESCRIPTOR.services_by_name["GovernanceService"].full_name,
    interchange_service_pb2.DESCRIPTOR.services_by_name["InterchangeService"].full_name,
    scheduler_service_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name,
    witness_service_pb2.DESCRIPTOR.services_by_name["WitnessService"].full_name,
    transparency_log_service_pb2.DESCRIPTOR.services_by_name["TransparencyLogService"].full_name,
    marketplace_service_pb2.DESCRIPTOR.services_by_name["MarketplaceService"].full_name,
    held_license_service_pb2.DESCRIPTOR.services_by_name["HeldLicenseService"].full_name,
)
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
#: Every service the server hosts: its own, health and reflection. Reflection lists exactly
#: these, and the fuzz tests take their methods from here.
REGISTERED_SERVICES = (*SERVICE_NAMES, HEALTH_SERVICE, reflection.SERVICE_NAME)


class MemosServer:
    """One running server: the gRPC server, its health state and its vault."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self.slot = VaultSlot()
        self.health = HealthServicer()
        self._stopped = threading.Event()
        self.vault: Node | None = None
        credentials = server_credentials(settings)  # bad TLS files stop us before any thread starts
        #: Authentication, authorization, audit and the per-principal stream limit of every call.
        self.policy = PolicyInterceptor(
            self.slot,
            allow_anonymous=settings.allow_anonymous,
            max_streams_per_principal=settings.max_streams_per_principal,
        )
        self._access_log = AccessLog(settings.access_log_file) if settings.access_log_file else None
        # The error mapping is outside the policy so that policy refusals are mapped like any error; the access
        # log is outermost so that it sees every call end with the status the caller gets.
        interceptors: list[ServerInterceptor] = [ErrorMappingInterceptor(), self.policy]
        if self._access_log is not None:
            interceptors.insert(0, AccessLogInterceptor(self._access_log))
        self.grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
                ("grpc.max_send_message_length", settings.max_send_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        vault_service_pb2_grpc.add_VaultServiceServicer_to_server(  # type: ignore[no-untyped-call]
            VaultServicer(self.slot), self.grpc_server
        )
        governance_service_pb2_grpc.add_GovernanceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            GovernanceServicer(self.slot), self.grpc_server
        )
        interchange_service_pb2_grpc.add_InterchangeServiceServicer_to_server(  # type: ignore[no-untyped-call]
            InterchangeServicer(self.slot), self.grpc_server
        )
        scheduler_service_pb2_grpc.add_SchedulerServiceServicer_to_server(  # type: ignore[no-untyped-call]
            SchedulerServicer(self.slot), self.grpc_server
        )
        transparency_log_service_pb2_grpc.add_TransparencyLogServiceServicer_to_server(  # type: ignore[no-untyped-call]
            TransparencyLogServicer(self.slot), self.grpc_server
        )
        marketplace_service_pb2_grpc.add_MarketplaceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            MarketplaceServicer(self.slot), self.grpc_server
        )
        witness_service_pb2_grpc.add_WitnessServiceServicer_to_server(  # type: ignore[no-untyped-call]
            WitnessServicer(self.slot), self.grpc_server
        )
        held_license_service_pb2_grpc.add_HeldLicenseServiceServicer_to_server(  # type: ignore[no-untyped-call]
            HeldLicenseServicer(self.slot), self.grpc_server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc_server)
        reflection.enable_server_reflection(REGISTERED_SERVICES, self.grpc_server)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        try:
            if credentials is None:
                self.port = self.grpc_server.add_insecure_port(settings.listen)
            else:
                self.port = self.grpc_server.add_secure_port(settings.listen, credentials)
        except RuntimeError as exc:  # grpcio raises when the address is taken or malformed
            raise InvalidArgumentError(
                f"cannot listen on {settings.listen}: {exc}; is another server using that port?",
                reason=reasons.LISTEN_FAILED,
            ) from exc
        if self.port == 0:
            raise InvalidArgumentError(f"cannot listen on {settings.listen}", reason=reasons.LISTEN_FAILED)

    @property
    def address(self) -> str:
        host = self.settings.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for service in ("", *SERVICE_NAMES):
            self.health.set(service, status)

    def start(self) -> None:
        """Opens the port, then the vault; SERVING once both are up."""
        self.grpc_server.start()
        log.info("listening on %s (NOT_SERVING until the vault is open)", self.address)
        self.vault = Node(self.settings, self._embedder)
        self.slot.set(self.vault)
        # Logged before health says so: whoever sees SERVING finds the line in the log already.
        log.info("serving on %s", self.address)
        self._set_health(health_pb2.HealthCheckResponse.SERVING)
        # A replica whose memory no longer matches its database refuses calls (``VaultSlot``) until restarted; a
        # callback registered after SERVING runs at once if it has diverged already.
        self.vault.when_diverged(lambda: self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING))

    def stop(self, grace: float | None = None) -> None:
        """Drains in-flight calls, then closes the vault (flushing its indexes)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        log.info("shutting down: draining in-flight calls for up to %.1fs", grace)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.grpc_server.stop(grace).wait()
        self.slot.set(None)
        if self.vault is not None:
            self.vault.close()
        if self._access_log is not None:
            self._access_log.close()
        log.info("shutdown complete")

    def wait_for_termination(self) -> None:
        """Blocks until SIGTERM or SIGINT, then stops gracefully."""
        requested = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s", signal.Signals(signum).name)
            requested.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not requested.wait(1.0):
            pass
        self.stop()
