"""memos_client: the typed Python client of a memos-grpc server.

``MemosClient`` manages spaces and MemCubes, streams payloads and moves signed
bundles; results are frozen dataclasses (``Space``, ``Cube``, ...) and failures
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
from memos_client.lifecycle import RecallItem, RecallPlan
from memos_client.models import ModelInfo, Operation
from memos_client.names import cube_name, space_name
from memos_client.types import (
    BlobRef,
    Cube,
    LifecycleState,
    MemoryType,
    ScoredCube,
    SemanticType,
    Source,
    Space,
)

__all__ = [
    "DEFAULT_TARGET",
    "AbortedError",
    "AlreadyExistsError",
    "AppliedRedaction",
    "AuditEvent",
    "AuditVerification",
    "BlobRef",
    "BundleVerification",
    "CancelledError",
    "Credential",
    "Cube",
    "CubeDraft",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "ImportResult",
    "ImportedCube",
    "InvalidArgumentError",
    "LifecycleState",
    "MemoryType",
    "MemosClient",
    "MemosError",
    "ModelInfo",
    "NotFoundError",
    "Operation",
    "PermissionDeniedError",
    "Principal",
    "PublicKey",
    "RecallItem",
    "RecallPlan",
    "ResourceExhaustedError",
    "ScoredCube",
    "SemanticType",
    "SignatureCheck",
    "Source",
    "Space",
    "TrustRole",
    "TrustRoot",
    "TrustedKey",
    "UnauthenticatedError",
    "UnavailableError",
    "cube_name",
    "from_rpc_error",
    "space_name",
]
