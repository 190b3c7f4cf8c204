"""gRPC servicers: VaultService and GovernanceService, thin translations onto the vault.

Handlers only unpack requests and pack responses; checks live in the vault,
and errors are mapped by ``memos_grpc.server.status``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
from google.protobuf import empty_pb2

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import (
    access_pb2,
    cube_pb2,
    governance_service_pb2,
    governance_service_pb2_grpc,
    principal_pb2,
    space_pb2,
    trust_pb2,
    vault_service_pb2,
    vault_service_pb2_grpc,
)
from memos_grpc.errors import UnavailableError
from memos_grpc.governance import caller
from memos_grpc.governance.erasure import erase_principal_data
from memos_grpc.node import Node
from memos_grpc.vault.search import SearchQuery


class VaultSlot:
    """Holds the vault once it is open; calls before that (or after close) get UNAVAILABLE."""

    def __init__(self) -> None:
        self._vault: Node | None = None
        self._lock = threading.Lock()

    def set(self, vault: Node | None) -> None:
        with self._lock:
            self._vault = vault

    def get(self) -> Node:
        vault = self._vault
        if vault is None:
            raise UnavailableError(
                "the vault is not open yet (or is closing); retry shortly", reason=reasons.VAULT_NOT_OPEN
            )
        if vault.diverged:
            raise UnavailableError(vault.diverged, reason=reasons.REPLICA_DIVERGED)
        return vault


class VaultServicer(vault_service_pb2_grpc.VaultServiceServicer):
    """VaultService: MemCube CRUD, search, payloads and lifecycle (versions, freeze, archive, merge), to the vault.

    Holds nothing but the ``VaultSlot``; access checks were done by ``PolicyInterceptor`` and domain checks
    are the vault's. ``MemosError``s raised below become statuses in ``status.ErrorMappingInterceptor``.
    """

    def __init__(self, slot: VaultSlot) -> None:
        self._slot = slot

    def CreateCube(
        self, request: vault_service_pb2.CreateCubeRequest, context: grpc.ServicerContext
    ) -> cube_pb2.MemCube:
        return self._slot.get().cubes.create(request.parent, request, caller.current())

    def BatchCreateCubes(
        self, request: vault_service_pb2.BatchCreateCubesRequest, context: grpc.ServicerContext
    ) -> vault_service_pb2.BatchCreateCubesResponse:
        cubes = self._slot.get().cubes.batch_create(request, caller.current())
        return vault_service_pb2.BatchCreateCubesResponse(cubes=cubes)

    def GetCube(self, request: vault_service_pb2.GetCubeRequest, context: grpc.ServicerContext) -> cube_pb2.MemCube:
        vault = self._slot.get()
        if "/versions/" in request.name:
            return vault.lifecycle.get_version(request.name, caller.current())
        return vault.cubes.get(request.name, caller.current())

    def ListCubes(
        self, request: vault_service_pb2.ListCubesRequest, context: grpc.ServicerContext
    ) -> vault_service_pb2.ListCubesResponse:
        cubes, token = self._slot.get().cubes.list(request, caller.current())
        return vault_service_pb2.ListCubesResponse(cubes=cubes, next_page_token=token)

    def UpdateCube(
        self, request: vault_service_pb2.UpdateCubeRequest, context: grpc.ServicerContext
    ) -> cube_pb2.MemCube:
        return self._slot.get().cubes.update(request, caller.current())

    def DeleteCube(
        self, request: vault_service_pb2.DeleteCubeRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        self._slot.get().cubes.delete(request.name, request.etag, caller.current())
        return empty_pb2.Empty()

    def SearchCubes(
        self, request: vault_service_pb2.SearchCubesRequest, context: grpc.ServicerContext
    ) -> vault_service_pb2.SearchCubesResponse:
        hits = self._slot.get().search.search(SearchQuery.from_request(request), caller.current())
        return vault_service_pb2.SearchCubesResponse(
            results=[vault_service_pb2.ScoredCube(cube=h.cube, score=h.score) for h in hits]
        )

    def WritePayload(
        self, request_iterator: Iterator[vault_service_pb2.WritePayloadRequest], context: grpc.ServicerContext
    ) -> vault_service_pb2.WritePayloadResponse:
        return vault_service_pb2.WritePayloadResponse(
            blob=self._slot.get().payloads.write(request_iterator, caller.current())
        )

    def ReadPayload(
        self, request: vault_service_pb2.ReadPayloadRequest, context: grpc.ServicerContext
    ) -> Iterator[vault_service_pb2.ReadPayloadResponse]:
        for chunk in self._slot.get().payloads.read(request, caller.current()):
            yield vault_service_pb2.ReadPayloadResponse(data=chunk)

    def ListCubeVersions(
        self, request: vault_service_pb2.ListCubeVersionsRequest, context: grpc.ServicerContext
    ) -> vault_service_pb2.ListCubeVersionsResponse:
        versions, token = self._slot.get().lifecycle.list_versions(request, caller.current())
        return vault_service_pb2.ListCubeVersionsResponse(versions=versions, next_page_token=token)

    def RollbackCube(
        self, request: vault_service_pb2.RollbackCubeRequest, context: grpc.ServicerContext
    ) -> cube_pb2.MemCube:
        return self._slot.get().lifecycle.rollback(request, caller.current())

    def FreezeCube(
        self, request: vault_service_pb2.FreezeCubeRequest, context: grpc.ServicerContext
    ) -> cube_pb2.MemCube:
        return self._slot.get().lifecycle.freeze(request, caller.current())

    def UnfreezeCube(
        self, request: vault_service_pb2.UnfreezeCubeRequest, context: grpc.ServicerContext
    ) -> cube_pb2.MemCube:
        return self._slot.get().lifecycle.unfreeze(request, caller.current())

    def ArchiveCube(
        self, request: vault_service_pb2.ArchiveCubeRequest, context: grpc.ServicerContext
    ) -> cube_pb2.MemCube:
        return self._slot.get().lifecycle.archive(request, caller.current())

    def MergeCubes(
        self, request: vault_service_pb2.MergeCubesRequest, context: grpc.ServicerContext
    ) -> cube_pb2.MemCube:
        who = caller.current()
        return self._slot.get().lifecycle.merge(request, who, who.principal)


class GovernanceServicer(governance_service_pb2_grpc.GovernanceServiceServicer):
    """GovernanceService: spaces, access policies, principals, credentials, audit log and trust root, to the vault.

    Holds nothing but the ``VaultSlot``; who may call what is decided by ``PolicyInterceptor`` beforehand.
    """

    def __init__(self, slot: VaultSlot) -> None:
        self._slot = slot

    def CreateSpace(
        self, request: governance_service_pb2.CreateSpaceRequest, context: grpc.ServicerContext
    ) -> space_pb2.Space:
        return self._slot.get().spaces.create(request.space_id, request.space, caller.current().principal)

    def GetSpace(
        self, request: governance_service_pb2.GetSpaceRequest, context: grpc.ServicerContext
    ) -> space_pb2.Space:
        return self._slot.get().spaces.get(request.name)

    def ListSpaces(
        self, request: governance_service_pb2.ListSpacesRequest, context: grpc.ServicerContext
    ) -> governance_service_pb2.ListSpacesResponse:
        who = caller.current()
        member = None if who.admin else who.principal
        spaces, token = self._slot.get().spaces.list(request.page_size, request.page_token, member)
        return governance_service_pb2.ListSpacesResponse(spaces=spaces, next_page_token=token)

    def UpdateSpace(
        self, request: governance_service_pb2.UpdateSpaceRequest, context: grpc.ServicerContext
    ) -> space_pb2.Space:
        return self._slot.get().spaces.update(request.space, list(request.update_mask.paths))

    def DeleteSpace(
        self, request: governance_service_pb2.DeleteSpaceRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        self._slot.get().spaces.delete(request.name, force=request.force, etag=request.etag)
        return empty_pb2.Empty()

    def GetAccessPolicy(
        self, request: governance_service_pb2.GetAccessPolicyRequest, context: grpc.ServicerContext
    ) -> access_pb2.AccessPolicy:
        return self._slot.get().spaces.get_policy(request.resource)

    def SetAccessPolicy(
        self, request: governance_service_pb2.SetAccessPolicyRequest, context: grpc.ServicerContext
    ) -> access_pb2.AccessPolicy:
        vault = self._slot.get()
        return vault.spaces.set_policy(request.resource, request.policy, vault.principals.names())

    def CreatePrincipal(
        self, request: governance_service_pb2.CreatePrincipalRequest, context: grpc.ServicerContext
    ) -> principal_pb2.Principal:
        return self._slot.get().principals.create(request.principal_id, request.principal)

    def GetPrincipal(
        self, request: governance_service_pb2.GetPrincipalRequest, context: grpc.ServicerContext
    ) -> principal_pb2.Principal:
        return self._slot.get().principals.get(request.name)

    def ListPrincipals(
        self, request: governance_service_pb2.ListPrincipalsRequest, context: grpc.ServicerContext
    ) -> governance_service_pb2.ListPrincipalsResponse:
        principals, token = self._slot.get().principals.list(request.page_size, request.page_token)
        return governance_service_pb2.ListPrincipalsResponse(principals=principals, next_page_token=token)

    def DeletePrincipal(
        self, request: governance_service_pb2.DeletePrincipalRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        vault = self._slot.get()
        vault.principals.delete(request.name)
        vault.signers.forget(request.name)
        return empty_pb2.Empty()

    def CreateCredential(
        self, request: governance_service_pb2.CreateCredentialRequest, context: grpc.ServicerContext
    ) -> principal_pb2.Credential:
        return self._slot.get().principals.create_credential(request.parent, request.credential)

    def RevokeCredential(
        self, request: governance_service_pb2.RevokeCredentialRequest, context: grpc.ServicerContext
    ) -> principal_pb2.Credential:
        return self._slot.get().principals.revoke_credential(request.name)

    def ErasePrincipalData(
        self, request: governance_service_pb2.ErasePrincipalDataRequest, context: grpc.ServicerContext
    ) -> governance_service_pb2.ErasePrincipalDataResponse:
        vault = self._slot.get()
        return erase_principal_data(vault.context, vault.principals, request.name)

    def ListAuditEvents(
        self, request: governance_service_pb2.ListAuditEventsRequest, context: grpc.ServicerContext
    ) -> governance_service_pb2.ListAuditEventsResponse:
        events, token = self._slot.get().audit.list(request.page_size, request.page_token, request.filter)
        return governance_service_pb2.ListAuditEventsResponse(events=events, next_page_token=token)

    def VerifyAuditLog(
        self, request: governance_service_pb2.VerifyAuditLogRequest, context: grpc.ServicerContext
    ) -> governance_service_pb2.VerifyAuditLogResponse:
        result = self._slot.get().audit.verify()
        return governance_service_pb2.VerifyAuditLogResponse(
            verified=result.verified,
            events_checked=result.events_checked,
            first_broken_sequence=result.first_broken_sequence,
            problem=result.problem,
        )

    def GetTrustRoot(
        self, request: governance_service_pb2.GetTrustRootRequest, context: grpc.ServicerContext
    ) -> trust_pb2.TrustRoot:
        return self._slot.get().trust.message()

    def UpdateTrustRoot(
        self, request: governance_service_pb2.UpdateTrustRootRequest, context: grpc.ServicerContext
    ) -> trust_pb2.TrustRoot:
        return self._slot.get().trust.update(request.signed_envelope, request.add_node_signature)

    def CreateSigningKey(
        self, request: governance_service_pb2.CreateSigningKeyRequest, context: grpc.ServicerContext
    ) -> principal_pb2.PublicKey:
        return self._slot.get().signers.create_for(request.parent)

    def RegisterPublicKey(
        self, request: governance_service_pb2.RegisterPublicKeyRequest, context: grpc.ServicerContext
    ) -> principal_pb2.PublicKey:
        return self._slot.get().principals.add_public_key(request.parent, request.public_key)
