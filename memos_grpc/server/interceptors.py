"""One way for a server interceptor to wrap a method's behaviour, whatever the method's streaming kind.

grpcio hands an interceptor a ``RpcMethodHandler`` with one of four behaviours set; wrapping means building a new
handler of the same kind around a wrapped behaviour. ``rewrap`` does that once, for the error mapping, the
policy and the access log, which all derive from ``ServerInterceptor``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

if TYPE_CHECKING:
    ServerInterceptor = grpc.ServerInterceptor[Any, Any]
else:  # grpcio's class is not subscriptable at run time; its stubs' is
    ServerInterceptor = grpc.ServerInterceptor

Behavior = Callable[..., Any]
#: Given a behaviour and whether its request and its response are streams, the behaviour to serve instead.
Wrap = Callable[[Behavior, bool, bool], Behavior]


def rewrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    wrap: Wrap,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of ``handler``'s kind serving ``wrap`` of its behaviour (and ``request_deserializer``, if given)."""
    deserializer = request_deserializer or handler.request_deserializer
    kinds: tuple[tuple[Behavior | None, Callable[..., grpc.RpcMethodHandler[Any, Any]], bool, bool], ...] = (
        (handler.unary_unary, grpc.unary_unary_rpc_method_handler, False, False),
        (handler.unary_stream, grpc.unary_stream_rpc_method_handler, False, True),
        (handler.stream_unary, grpc.stream_unary_rpc_method_handler, True, False),
        (handler.stream_stream, grpc.stream_stream_rpc_method_handler, True, True),
    )
    for behavior, make, streaming_request, streaming_response in kinds:
        if behavior:
            return make(
                wrap(behavior, streaming_request, streaming_response), deserializer, handler.response_serializer
            )
    return handler
