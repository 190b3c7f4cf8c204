"""The one place where errors become gRPC statuses.

``ErrorMappingInterceptor`` wraps every handler: a ``MemosError`` becomes its
status code, its message, and a ``google.rpc.ErrorInfo`` detail with its
reason (AIP-193); anything else is logged with its traceback and answered
INTERNAL without leaking internals. Request bytes that do not decode, for
any service (health and reflection included, streams message by message),
are INVALID_ARGUMENT ``MALFORMED_REQUEST``, never grpcio's own INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from memos_grpc import reasons
from memos_grpc.errors import ERROR_DOMAIN, InvalidArgumentError, MemosError
from memos_grpc.server.interceptors import Behavior, ServerInterceptor, rewrap

log = logging.getLogger(__name__)


def to_status(error: MemosError) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=error.code.value[0], message=error.message, details=[detail])
    return rpc_status.to_status(status)


def _internal() -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=reasons.INTERNAL, domain=ERROR_DOMAIN)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=code_pb2.INTERNAL, message="internal error; the server log has the details", details=[detail]
    )
    return rpc_status.to_status(status)


def abort(context: grpc.ServicerContext, exc: BaseException, method: str) -> None:
    """Ends the call with the status that ``exc`` maps to (never returns)."""
    if isinstance(exc, MemosError):
        log.info("%s -> %s %s: %s", method, exc.code.name, exc.reason, exc.message)
        context.abort_with_status(to_status(exc))
    log.error("%s failed", method, exc_info=exc)
    context.abort_with_status(_internal())


class Undecodable:
    """Stands in for request bytes that do not parse, so the refusal goes through the error mapping.

    grpcio answers INTERNAL when a deserializer raises; a request that is not a message is the
    caller's mistake, so it must be INVALID_ARGUMENT like any other.
    """

    def __init__(self, error: Exception) -> None:
        self.error = error


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError and whatever else the bytes provoke
            return Undecodable(exc)

    return parse


def _decoded(message: Any) -> Any:
    if isinstance(message, Undecodable):
        raise InvalidArgumentError(
            f"the request is not a valid protobuf message of this method's type: {message.error}",
            reason=reasons.MALFORMED_REQUEST,
        )
    return message


def _decoded_stream(messages: Iterator[Any]) -> Iterator[Any]:
    for message in messages:
        yield _decoded(message)


def _wrap_unary(behavior: Callable[..., Any], method: str, streaming_request: bool = False) -> Callable[..., Any]:
    def handler(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
        try:
            request = _decoded_stream(request_or_iterator) if streaming_request else _decoded(request_or_iterator)
            return behavior(request, context)
        except Exception as exc:
            if _is_abort(exc, context):
                raise
            abort(context, exc, method)

    return handler


def _wrap_stream(
    behavior: Callable[..., Iterator[Any]], method: str, streaming_request: bool = False
) -> Callable[..., Iterator[Any]]:
    def handler(request_or_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            request = _decoded_stream(request_or_iterator) if streaming_request else _decoded(request_or_iterator)
            yield from behavior(request, context)
        except Exception as exc:
            if _is_abort(exc, context):
                raise
            abort(context, exc, method)

    return handler


def _is_abort(exc: Exception, context: grpc.ServicerContext) -> bool:
    # context.abort() raises a bare Exception after setting the status: let it through.
    code: Callable[[], object] = getattr(context, "code", lambda: None)
    return type(exc) is Exception and code() is not None


class ErrorMappingInterceptor(ServerInterceptor):
    """Applies the error mapping to every method of every service."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        def wrap(behavior: Behavior, streaming_request: bool, streaming_response: bool) -> Behavior:
            # Server reflection is the one bidirectional stream: its bytes are decoded like any request's.
            if streaming_response:
                return _wrap_stream(behavior, method, streaming_request)
            return _wrap_unary(behavior, method, streaming_request)

        return rewrap(handler, wrap, tolerant(handler.request_deserializer))
