"""memos_client: the typed Python client of a memos-grpc server.

``MemosClient`` manages spaces and MemCubes, streams payloads, moves signed
bundles and uses a marketplace (listings, releases, licenses, events, its
transparency log and witnesses) and, on a buyer's node, imports licensed
releases and shows the licenses it holds; results are frozen dataclasses (``Space``, ``Cube``, ...) and failures
``MemosError`` subclasses.
"""

from memos_client.bundle_types import (
    AppliedRedaction,
    BundleVerification,
    ImportedCube,
    ImportResult,
    PublicKey,
    SignatureCheck,
    TrustedKey,
    TrustRole,
    TrustRoot,
)
from memos_client.client import DEFAULT_TARGET, MemosClient
from memos_client.drafts import CubeDraft
from memos_client.errors import (
    AbortedError,
    AlreadyExistsError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    MemosError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    from_rpc_error,
)
from memos_client.governance import AuditEvent, AuditVerification, Credential, Principal
from memos_client.held_licenses import held_license_name
from memos_client.interchange import release_info
from memos_client.lifecycle import RecallItem, RecallPlan
from memos_client.market_types import (
    ActionUse,
    ConsistencyProof,
    Cosignatures,
    FollowedLog,
    HeldLicense,
    InclusionProof,
    License,
    Listing,
    LogCheckpoint,
    LogEntries,
    LogEntry,
    MarketEvent,
    PublishResult,
    Release,
    Revocation,
    ScoredListing,
    Terms,
    TermsConstraint,
    TermsPermission,
    Yank,
)
from memos_client.marketplace import EVENT_TYPES, license_name, listing_name
from memos_client.models import ModelInfo, Operation
from memos_client.names import cube_name, space_name
from memos_client.types import (
    BlobRef,
    Cube,
    CubeLicense,
    LifecycleState,
    MemoryType,
    ScoredCube,
    SemanticType,
    Source,
    Space,
)

__all__ = [
    "DEFAULT_TARGET",
    "EVENT_TYPES",
    "AbortedError",
    "ActionUse",
    "AlreadyExistsError",
    "AppliedRedaction",
    "AuditEvent",
    "AuditVerification",
    "BlobRef",
    "BundleVerification",
    "CancelledError",
    "ConsistencyProof",
    "Cosignatures",
    "Credential",
    "Cube",
    "CubeDraft",
    "CubeLicense",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FollowedLog",
    "HeldLicense",
    "ImportResult",
    "ImportedCube",
    "InclusionProof",
    "InvalidArgumentError",
    "License",
    "LifecycleState",
    "Listing",
    "LogCheckpoint",
    "LogEntries",
    "LogEntry",
    "MarketEvent",
    "MemoryType",
    "MemosClient",
    "MemosError",
    "ModelInfo",
    "NotFoundError",
    "Operation",
    "PermissionDeniedError",
    "Principal",
    "PublicKey",
    "PublishResult",
    "RecallItem",
    "RecallPlan",
    "Release",
    "ResourceExhaustedError",
    "Revocation",
    "ScoredCube",
    "ScoredListing",
    "SemanticType",
    "SignatureCheck",
    "Source",
    "Space",
    "Terms",
    "TermsConstraint",
    "TermsPermission",
    "TrustRole",
    "TrustRoot",
    "TrustedKey",
    "UnauthenticatedError",
    "UnavailableError",
    "Yank",
    "cube_name",
    "from_rpc_error",
    "held_license_name",
    "license_name",
    "listing_name",
    "release_info",
    "space_name",
]
