"""The one error hierarchy of memos-grpc.

Every error a caller can act on is a ``MemosError`` with a stable
UPPER_SNAKE ``reason`` (sent as ``google.rpc.ErrorInfo``) and a message a
person can act on. Each subclass fixes its gRPC status code; the mapping to
the wire lives in one place, ``memos_grpc.server.status``. Handlers raise,
never call ``context.abort`` themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from memos_grpc import reasons

#: The ErrorInfo domain of every error the server raises.
ERROR_DOMAIN = "memos-grpc.dev"


class MemosError(Exception):
    """Base of every error the server reports to a caller."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason = reasons.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})
        #: Set by the policy when the error refuses access (recorded as DENIED in the audit log).
        self.denied = False


class InvalidArgumentError(MemosError):
    """The request is malformed: a bad name, field, filter, token or size."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = reasons.INVALID_ARGUMENT


class NotFoundError(MemosError):
    """The named resource does not exist (or the caller may not know it does)."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = reasons.NOT_FOUND


class AlreadyExistsError(MemosError):
    """A resource with that name already exists."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = reasons.ALREADY_EXISTS


class EtagMismatchError(MemosError):
    """The etag sent is not the resource's current one (AIP-154)."""

    code = grpc.StatusCode.ABORTED
    default_reason = reasons.ETAG_MISMATCH


class FailedPreconditionError(MemosError):
    """The system is not in a state that allows the call."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = reasons.FAILED_PRECONDITION


class ModelMismatchError(FailedPreconditionError):
    """A KV cache or adapter belongs to another model than the one it is loaded into."""

    default_reason = reasons.MODEL_MISMATCH


class AbortedError(MemosError):
    """The work was cut short and nothing was committed; running it again is safe."""

    code = grpc.StatusCode.ABORTED
    default_reason = reasons.ABORTED


class CancelledError(MemosError):
    """The operation was cancelled by a caller before it finished."""

    code = grpc.StatusCode.CANCELLED
    default_reason = reasons.OPERATION_CANCELLED


class ResourceExhaustedError(MemosError):
    """A limit was reached (message size, batch size, concurrency)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = reasons.RESOURCE_EXHAUSTED


class UnavailableError(MemosError):
    """The server cannot serve the call now (starting or shutting down)."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = reasons.UNAVAILABLE


class StorageError(MemosError):
    """The vault's storage failed in a way the caller cannot fix."""

    code = grpc.StatusCode.INTERNAL
    default_reason = reasons.STORAGE_FAILURE


class UnauthenticatedError(MemosError):
    """The call carries no valid credential."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = reasons.UNAUTHENTICATED


class PermissionDeniedError(MemosError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = reasons.PERMISSION_DENIED


class BundleError(InvalidArgumentError):
    """A bundle failed one of the verification steps of docs/protocol.md; ``reason`` says which."""

    default_reason = reasons.BUNDLE_MALFORMED


class TrustRootError(InvalidArgumentError):
    """A trust root update was refused (rollback, freeze, too few signatures, bad form)."""

    default_reason = reasons.TRUST_ROOT_MALFORMED
