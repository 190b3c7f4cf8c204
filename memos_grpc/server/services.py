"""gRPC servicers: VaultService and GovernanceService, thin translations onto the vault.

Handlers only unpack requests and pack responses; checks live in the vault,
and errors are mapped by ``memos_grpc.server.status``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
from google.protobuf import empty_pb2

from memos_grpc._proto.memos.v1 import (
    cube_pb2,
    governance_service_pb2,
    governance_service_pb2_grpc,
    space_pb2,
    vault_service_pb2,
    vault_service_pb2_grpc,
)
from memos_grpc.errors import UnavailableError
from memos_grpc.vault.vault import Vault


class VaultSlot:
    """Holds the vault once it is open; calls before that (or after close) get UNAVAILABLE."""

    def __init__(self) -> None:
        self._vault: Vault | None = None
        self._lock = threading.Lock()

    def set(self, vault: Vault | None) -> None:
        with self._lock:
            self._vault = vault

    def get(self) -> Vault:
        vault = self._vault
        if vault is None:
            raise UnavailableError("the vault is not open yet (or is closing); retry shortly", reason="VAULT_NOT_OPEN")
        return vault


class VaultServicer(vault_service_pb2_grpc.VaultServiceServicer):
    def __init__(self, slot: VaultSlot) -> None:
        self._slot = slot

    def CreateCube(
        self, request: vault_service_pb2.CreateCubeRequest, context: grpc.ServicerContext
    ) -> cube_pb2.MemCube:
        return self._slot.get().cubes.create(request.parent, request)

    def BatchCreateCubes(
        self, request: vault_service_pb2.BatchCreateCubesRequest, context: grpc.ServicerContext
    ) -> vault_service_pb2.BatchCreateCubesResponse:
        return vault_service_pb2.BatchCreateCubesResponse(cubes=self._slot.get().cubes.batch_create(request))

    def GetCube(self, request: vault_service_pb2.GetCubeRequest, context: grpc.ServicerContext) -> cube_pb2.MemCube:
        return self._slot.get().cubes.get(request.name)

    def ListCubes(
        self, request: vault_service_pb2.ListCubesRequest, context: grpc.ServicerContext
    ) -> vault_service_pb2.ListCubesResponse:
        cubes, token = self._slot.get().cubes.list(request)
        return vault_service_pb2.ListCubesResponse(cubes=cubes, next_page_token=token)

    def UpdateCube(
        self, request: vault_service_pb2.UpdateCubeRequest, context: grpc.ServicerContext
    ) -> cube_pb2.MemCube:
        return self._slot.get().cubes.update(request)

    def DeleteCube(
        self, request: vault_service_pb2.DeleteCubeRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        self._slot.get().cubes.delete(request.name, request.etag)
        return empty_pb2.Empty()

    def SearchCubes(
        self, request: vault_service_pb2.SearchCubesRequest, context: grpc.ServicerContext
    ) -> vault_service_pb2.SearchCubesResponse:
        hits = self._slot.get().search.search(request)
        return vault_service_pb2.SearchCubesResponse(
            results=[vault_service_pb2.ScoredCube(cube=h.cube, score=h.score) for h in hits]
        )

    def WritePayload(
        self, request_iterator: Iterator[vault_service_pb2.WritePayloadRequest], context: grpc.ServicerContext
    ) -> vault_service_pb2.WritePayloadResponse:
        return vault_service_pb2.WritePayloadResponse(blob=self._slot.get().payloads.write(request_iterator))

    def ReadPayload(
        self, request: vault_service_pb2.ReadPayloadRequest, context: grpc.ServicerContext
    ) -> Iterator[vault_service_pb2.ReadPayloadResponse]:
        for chunk in self._slot.get().payloads.read(request):
            yield vault_service_pb2.ReadPayloadResponse(data=chunk)


class GovernanceServicer(governance_service_pb2_grpc.GovernanceServiceServicer):
    def __init__(self, slot: VaultSlot) -> None:
        self._slot = slot

    def CreateSpace(
        self, request: governance_service_pb2.CreateSpaceRequest, context: grpc.ServicerContext
    ) -> space_pb2.Space:
        return self._slot.get().spaces.create(request.space_id, request.space)

    def GetSpace(
        self, request: governance_service_pb2.GetSpaceRequest, context: grpc.ServicerContext
    ) -> space_pb2.Space:
        return self._slot.get().spaces.get(request.name)

    def ListSpaces(
        self, request: governance_service_pb2.ListSpacesRequest, context: grpc.ServicerContext
    ) -> governance_service_pb2.ListSpacesResponse:
        spaces, token = self._slot.get().spaces.list(request.page_size, request.page_token)
        return governance_service_pb2.ListSpacesResponse(spaces=spaces, next_page_token=token)

    def DeleteSpace(
        self, request: governance_service_pb2.DeleteSpaceRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        self._slot.get().spaces.delete(request.name, force=request.force, etag=request.etag)
        return empty_pb2.Empty()
