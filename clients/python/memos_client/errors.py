"""The client's error hierarchy: every failed call raises a ``MemosError`` subclass.

``from_rpc_error`` turns a ``grpc.RpcError`` into the subclass for its status
code, with the ``reason`` and ``metadata`` of the server's ``google.rpc.ErrorInfo``.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class MemosError(Exception):
    """A call to a memos-grpc server failed.

    ``code`` is the gRPC status code, ``reason`` the server's stable
    UPPER_SNAKE reason ("" when the server sent none), ``message`` the
    human-readable message and ``metadata`` the ErrorInfo's key/value details.
    """

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})

    def __str__(self) -> str:
        return f"{self.reason or self.code.name}: {self.message}"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code.name}, reason={self.reason!r}, message={self.message!r})"


class InvalidArgumentError(MemosError):
    """The request is malformed: a bad name, field, filter, page token or size."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(MemosError):
    """The named space, cube or blob does not exist."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(MemosError):
    """A space or cube with that name already exists."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class AbortedError(MemosError):
    """The call was aborted, typically because the etag sent is stale (reason ``ETAG_MISMATCH``)."""

    default_code = grpc.StatusCode.ABORTED


class FailedPreconditionError(MemosError):
    """The server is not in a state that allows the call (e.g. deleting a non-empty space)."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhaustedError(MemosError):
    """A limit was reached: message size, batch size or concurrency."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class PermissionDeniedError(MemosError):
    """The caller may not do this."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class UnauthenticatedError(MemosError):
    """The call carried no valid credentials."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class UnavailableError(MemosError):
    """The server is unreachable, starting or shutting down; the call may be retried."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(MemosError):
    """The call did not finish within its timeout."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class CancelledError(MemosError):
    """The operation was cancelled before it finished (a transform that was cancelled changed nothing)."""

    default_code = grpc.StatusCode.CANCELLED


_BY_CODE: dict[grpc.StatusCode, type[MemosError]] = {
    cls.default_code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        AbortedError,
        FailedPreconditionError,
        ResourceExhaustedError,
        PermissionDeniedError,
        UnauthenticatedError,
        UnavailableError,
        DeadlineExceededError,
        CancelledError,
    )
}


def _error_info(error: grpc.RpcError) -> tuple[str, dict[str, str]]:
    """The reason and metadata of the ErrorInfo in the status details trailer, if any."""
    if not isinstance(error, grpc.Call):
        return "", {}
    try:
        status = rpc_status.from_call(error)
    except (ValueError, TypeError):
        return "", {}
    if status is None:
        return "", {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason), {str(k): str(v) for k, v in info.metadata.items()}
    return "", {}


def from_rpc_error(error: grpc.RpcError) -> MemosError:
    """Returns the ``MemosError`` subclass matching the status code of ``error``.

    Codes without a subclass of their own (INTERNAL, UNKNOWN, CANCELLED, ...)
    give a plain ``MemosError`` that still carries the code.
    """
    code_fn = getattr(error, "code", None)
    code = code_fn() if callable(code_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details_fn = getattr(error, "details", None)
    details = details_fn() if callable(details_fn) else None
    message = str(details) if details else code.name.lower().replace("_", " ")
    reason, metadata = _error_info(error)
    cls = _BY_CODE.get(code, MemosError)
    return cls(message, code=code, reason=reason, metadata=metadata)
