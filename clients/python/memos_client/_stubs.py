"""Typed views of the generated gRPC stubs of memos.v1.

The generated ``*_pb2_grpc`` modules carry no annotations; these wrappers give
each method its request and response types so that the client type-checks.
"""

from __future__ import annotations

import grpc
from google.protobuf import empty_pb2

from memos_grpc._proto.memos.v1 import (
    cube_pb2,
    governance_service_pb2,
    governance_service_pb2_grpc,
    held_license_service_pb2,
    held_license_service_pb2_grpc,
    interchange_service_pb2,
    interchange_service_pb2_grpc,
    marketplace_service_pb2,
    marketplace_service_pb2_grpc,
    principal_pb2,
    scheduler_service_pb2,
    scheduler_service_pb2_grpc,
    space_pb2,
    transparency_log_service_pb2,
    transparency_log_service_pb2_grpc,
    trust_pb2,
    vault_service_pb2,
    vault_service_pb2_grpc,
    witness_service_pb2,
    witness_service_pb2_grpc,
)

_v = vault_service_pb2
_s = scheduler_service_pb2
_g = governance_service_pb2
_i = interchange_service_pb2
_m = marketplace_service_pb2
_t = transparency_log_service_pb2
_w = witness_service_pb2
_h = held_license_service_pb2


class VaultStub:
    """``memos.v1.VaultService``."""

    def __init__(self, channel: grpc.Channel) -> None:
        stub = vault_service_pb2_grpc.VaultServiceStub(channel)  # type: ignore[no-untyped-call]
        self.CreateCube: grpc.UnaryUnaryMultiCallable[_v.CreateCubeRequest, cube_pb2.MemCube] = stub.CreateCube
        self.BatchCreateCubes: grpc.UnaryUnaryMultiCallable[_v.BatchCreateCubesRequest, _v.BatchCreateCubesResponse] = (
            stub.BatchCreateCubes
        )
        self.GetCube: grpc.UnaryUnaryMultiCallable[_v.GetCubeRequest, cube_pb2.MemCube] = stub.GetCube
        self.ListCubes: grpc.UnaryUnaryMultiCallable[_v.ListCubesRequest, _v.ListCubesResponse] = stub.ListCubes
        self.UpdateCube: grpc.UnaryUnaryMultiCallable[_v.UpdateCubeRequest, cube_pb2.MemCube] = stub.UpdateCube
        self.DeleteCube: grpc.UnaryUnaryMultiCallable[_v.DeleteCubeRequest, empty_pb2.Empty] = stub.DeleteCube
        self.SearchCubes: grpc.UnaryUnaryMultiCallable[_v.SearchCubesRequest, _v.SearchCubesResponse] = stub.SearchCubes
        self.WritePayload: grpc.StreamUnaryMultiCallable[_v.WritePayloadRequest, _v.WritePayloadResponse] = (
            stub.WritePayload
        )
        self.ReadPayload: grpc.UnaryStreamMultiCallable[_v.ReadPayloadRequest, _v.ReadPayloadResponse] = (
            stub.ReadPayload
        )
        self.ListCubeVersions: grpc.UnaryUnaryMultiCallable[_v.ListCubeVersionsRequest, _v.ListCubeVersionsResponse] = (
            stub.ListCubeVersions
        )
        self.RollbackCube: grpc.UnaryUnaryMultiCallable[_v.RollbackCubeRequest, cube_pb2.MemCube] = stub.RollbackCube
        self.FreezeCube: grpc.UnaryUnaryMultiCallable[_v.FreezeCubeRequest, cube_pb2.MemCube] = stub.FreezeCube
        self.UnfreezeCube: grpc.UnaryUnaryMultiCallable[_v.UnfreezeCubeRequest, cube_pb2.MemCube] = stub.UnfreezeCube
        self.ArchiveCube: grpc.UnaryUnaryMultiCallable[_v.ArchiveCubeRequest, cube_pb2.MemCube] = stub.ArchiveCube
        self.MergeCubes: grpc.UnaryUnaryMultiCallable[_v.MergeCubesRequest, cube_pb2.MemCube] = stub.MergeCubes


class SchedulerStub:
    """``memos.v1.SchedulerService``."""

    def __init__(self, channel: grpc.Channel) -> None:
        stub = scheduler_service_pb2_grpc.SchedulerServiceStub(channel)  # type: ignore[no-untyped-call]
        self.Recall: grpc.UnaryUnaryMultiCallable[_s.RecallRequest, _s.RecallPlan] = stub.Recall
        self.TransformCube: grpc.UnaryUnaryMultiCallable[_s.TransformCubeRequest, _s.Operation] = stub.TransformCube
        self.GetOperation: grpc.UnaryUnaryMultiCallable[_s.GetOperationRequest, _s.Operation] = stub.GetOperation
        self.WatchOperation: grpc.UnaryStreamMultiCallable[_s.WatchOperationRequest, _s.Operation] = stub.WatchOperation
        self.CancelOperation: grpc.UnaryUnaryMultiCallable[_s.CancelOperationRequest, _s.Operation] = (
            stub.CancelOperation
        )
        self.GetModel: grpc.UnaryUnaryMultiCallable[_s.GetModelRequest, _s.ModelInfo] = stub.GetModel


class GovernanceStub:
    """``memos.v1.GovernanceService``."""

    def __init__(self, channel: grpc.Channel) -> None:
        stub = governance_service_pb2_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
        self.CreateSpace: grpc.UnaryUnaryMultiCallable[_g.CreateSpaceRequest, space_pb2.Space] = stub.CreateSpace
        self.GetSpace: grpc.UnaryUnaryMultiCallable[_g.GetSpaceRequest, space_pb2.Space] = stub.GetSpace
        self.ListSpaces: grpc.UnaryUnaryMultiCallable[_g.ListSpacesRequest, _g.ListSpacesResponse] = stub.ListSpaces
        self.DeleteSpace: grpc.UnaryUnaryMultiCallable[_g.DeleteSpaceRequest, empty_pb2.Empty] = stub.DeleteSpace
        self.CreatePrincipal: grpc.UnaryUnaryMultiCallable[_g.CreatePrincipalRequest, principal_pb2.Principal] = (
            stub.CreatePrincipal
        )
        self.GetPrincipal: grpc.UnaryUnaryMultiCallable[_g.GetPrincipalRequest, principal_pb2.Principal] = (
            stub.GetPrincipal
        )
        self.ListPrincipals: grpc.UnaryUnaryMultiCallable[_g.ListPrincipalsRequest, _g.ListPrincipalsResponse] = (
            stub.ListPrincipals
        )
        self.DeletePrincipal: grpc.UnaryUnaryMultiCallable[_g.DeletePrincipalRequest, empty_pb2.Empty] = (
            stub.DeletePrincipal
        )
        self.CreateCredential: grpc.UnaryUnaryMultiCallable[_g.CreateCredentialRequest, principal_pb2.Credential] = (
            stub.CreateCredential
        )
        self.RevokeCredential: grpc.UnaryUnaryMultiCallable[_g.RevokeCredentialRequest, principal_pb2.Credential] = (
            stub.RevokeCredential
        )
        self.ListAuditEvents: grpc.UnaryUnaryMultiCallable[_g.ListAuditEventsRequest, _g.ListAuditEventsResponse] = (
            stub.ListAuditEvents
        )
        self.VerifyAuditLog: grpc.UnaryUnaryMultiCallable[_g.VerifyAuditLogRequest, _g.VerifyAuditLogResponse] = (
            stub.VerifyAuditLog
        )
        self.GetTrustRoot: grpc.UnaryUnaryMultiCallable[_g.GetTrustRootRequest, trust_pb2.TrustRoot] = stub.GetTrustRoot
        self.UpdateTrustRoot: grpc.UnaryUnaryMultiCallable[_g.UpdateTrustRootRequest, trust_pb2.TrustRoot] = (
            stub.UpdateTrustRoot
        )
        self.CreateSigningKey: grpc.UnaryUnaryMultiCallable[_g.CreateSigningKeyRequest, principal_pb2.PublicKey] = (
            stub.CreateSigningKey
        )
        self.RegisterPublicKey: grpc.UnaryUnaryMultiCallable[_g.RegisterPublicKeyRequest, principal_pb2.PublicKey] = (
            stub.RegisterPublicKey
        )


class InterchangeStub:
    """``memos.v1.InterchangeService``."""

    def __init__(self, channel: grpc.Channel) -> None:
        stub = interchange_service_pb2_grpc.InterchangeServiceStub(channel)  # type: ignore[no-untyped-call]
        self.ExportBundle: grpc.UnaryStreamMultiCallable[_i.ExportBundleRequest, _i.ExportBundleResponse] = (
            stub.ExportBundle
        )
        self.ImportBundle: grpc.StreamUnaryMultiCallable[_i.ImportBundleRequest, _i.ImportBundleResponse] = (
            stub.ImportBundle
        )
        self.VerifyBundle: grpc.StreamUnaryMultiCallable[_i.VerifyBundleRequest, _i.VerifyBundleResponse] = (
            stub.VerifyBundle
        )
        self.ImportFromPeer: grpc.UnaryUnaryMultiCallable[_i.ImportFromPeerRequest, _i.ImportBundleResponse] = (
            stub.ImportFromPeer
        )


class MarketplaceStub:
    """``memos.v1.MarketplaceService``."""

    def __init__(self, channel: grpc.Channel) -> None:
        stub = marketplace_service_pb2_grpc.MarketplaceServiceStub(channel)  # type: ignore[no-untyped-call]
        self.CreateListing: grpc.UnaryUnaryMultiCallable[_m.CreateListingRequest, _m.Listing] = stub.CreateListing
        self.GetListing: grpc.UnaryUnaryMultiCallable[_m.GetListingRequest, _m.Listing] = stub.GetListing
        self.ListListings: grpc.UnaryUnaryMultiCallable[_m.ListListingsRequest, _m.ListListingsResponse] = (
            stub.ListListings
        )
        self.SearchListings: grpc.UnaryUnaryMultiCallable[_m.SearchListingsRequest, _m.SearchListingsResponse] = (
            stub.SearchListings
        )
        self.UpdateListing: grpc.UnaryUnaryMultiCallable[_m.UpdateListingRequest, _m.Listing] = stub.UpdateListing
        self.PublishRelease: grpc.StreamUnaryMultiCallable[_m.PublishReleaseRequest, _m.PublishReleaseResponse] = (
            stub.PublishRelease
        )
        self.GetRelease: grpc.UnaryUnaryMultiCallable[_m.GetReleaseRequest, _m.Release] = stub.GetRelease
        self.ListReleases: grpc.UnaryUnaryMultiCallable[_m.ListReleasesRequest, _m.ListReleasesResponse] = (
            stub.ListReleases
        )
        self.DownloadRelease: grpc.UnaryStreamMultiCallable[_m.DownloadReleaseRequest, _m.DownloadReleaseResponse] = (
            stub.DownloadRelease
        )
        self.YankRelease: grpc.UnaryUnaryMultiCallable[_m.YankReleaseRequest, _m.Release] = stub.YankRelease
        self.AcquireLicense: grpc.UnaryUnaryMultiCallable[_m.AcquireLicenseRequest, _m.License] = stub.AcquireLicense
        self.GetLicense: grpc.UnaryUnaryMultiCallable[_m.GetLicenseRequest, _m.License] = stub.GetLicense
        self.ListLicenses: grpc.UnaryUnaryMultiCallable[_m.ListLicensesRequest, _m.ListLicensesResponse] = (
            stub.ListLicenses
        )
        self.RevokeLicense: grpc.UnaryUnaryMultiCallable[_m.RevokeLicenseRequest, _m.License] = stub.RevokeLicense
        self.Subscribe: grpc.UnaryStreamMultiCallable[_m.SubscribeRequest, _m.MarketplaceEvent] = stub.Subscribe


class TransparencyLogStub:
    """``memos.v1.TransparencyLogService``."""

    def __init__(self, channel: grpc.Channel) -> None:
        stub = transparency_log_service_pb2_grpc.TransparencyLogServiceStub(channel)  # type: ignore[no-untyped-call]
        self.GetCheckpoint: grpc.UnaryUnaryMultiCallable[_t.GetCheckpointRequest, _t.Checkpoint] = stub.GetCheckpoint
        self.GetInclusionProof: grpc.UnaryUnaryMultiCallable[_t.GetInclusionProofRequest, _t.InclusionProof] = (
            stub.GetInclusionProof
        )
        self.GetConsistencyProof: grpc.UnaryUnaryMultiCallable[_t.GetConsistencyProofRequest, _t.ConsistencyProof] = (
            stub.GetConsistencyProof
        )
        self.GetEntries: grpc.UnaryUnaryMultiCallable[_t.GetEntriesRequest, _t.GetEntriesResponse] = stub.GetEntries


class WitnessStub:
    """``memos.v1.WitnessService``."""

    def __init__(self, channel: grpc.Channel) -> None:
        stub = witness_service_pb2_grpc.WitnessServiceStub(channel)  # type: ignore[no-untyped-call]
        self.AddCheckpoint: grpc.UnaryUnaryMultiCallable[_w.AddCheckpointRequest, _w.AddCheckpointResponse] = (
            stub.AddCheckpoint
        )


class HeldLicenseStub:
    """``memos.v1.HeldLicenseService``."""

    def __init__(self, channel: grpc.Channel) -> None:
        stub = held_license_service_pb2_grpc.HeldLicenseServiceStub(channel)  # type: ignore[no-untyped-call]
        self.GetHeldLicense: grpc.UnaryUnaryMultiCallable[_h.GetHeldLicenseRequest, _h.HeldLicense] = (
            stub.GetHeldLicense
        )
        self.ListHeldLicenses: grpc.UnaryUnaryMultiCallable[_h.ListHeldLicensesRequest, _h.ListHeldLicensesResponse] = (
            stub.ListHeldLicenses
        )
        self.ImportRelease: grpc.UnaryUnaryMultiCallable[_h.ImportReleaseRequest, _i.ImportBundleResponse] = (
            stub.ImportRelease
        )
        self.SyncMarketplaceLog: grpc.UnaryUnaryMultiCallable[_h.SyncMarketplaceLogRequest, _h.FollowedLog] = (
            stub.SyncMarketplaceLog
        )
        self.ListFollowedLogs: grpc.UnaryUnaryMultiCallable[_h.ListFollowedLogsRequest, _h.ListFollowedLogsResponse] = (
            stub.ListFollowedLogs
        )
