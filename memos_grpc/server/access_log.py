"""The access log: one JSON line per finished call, for operators (setting ``access_log_file``).

Each line says when the call ended, its method, the status code it ended with, how long it took, the peer's
address and the caller's user agent, e.g.::

    {"time": "2026-12-03T06:10:00.123Z", "method": "/memos.v1.VaultService/GetCube", "code": "NOT_FOUND",
     "ms": 0.84, "peer": "ipv4:127.0.0.1:53122", "user_agent": "grpc-go/1.77.0"}

It holds no request data and no credential. Reasons and messages of refusals are in the server log; who did
what to which resource is in the audit log. The interceptor is outermost, so a call refused by authentication is
on record too. A line is written when the call ends: for a response stream, when its last message is sent, the
caller cancels, or it fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import grpc

from memos_grpc.server.interceptors import Behavior, ServerInterceptor, rewrap


class AccessLog:
    """An append-only JSON-lines file, shared by every serving thread; each line is flushed as written."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file: IO[str] = os.fdopen(fd, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, record: dict[str, object]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            if not self._file.closed:
                self._file.write(line)
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _user_agent(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == "user-agent":
            return str(value)
    return ""


class AccessLogInterceptor(ServerInterceptor):
    """Writes one access-log line per call of every method of every service."""

    def __init__(self, log: AccessLog) -> None:
        self._log = log

    def _record(self, method: str, context: grpc.ServicerContext, started: float, code: grpc.StatusCode) -> None:
        self._log.write(
            {
                "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "method": method,
                "code": code.name,
                "ms": round((time.perf_counter() - started) * 1000, 3),
                "peer": context.peer(),
                "user_agent": _user_agent(context),
            }
        )

    @staticmethod
    def _ended(context: grpc.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
        # code() is set by abort(), None when the handler returned normally; grpcio's stubs lack it.
        set_code = getattr(context, "code", lambda: None)()
        if isinstance(set_code, grpc.StatusCode):
            return set_code
        return grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN

    def _unary(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        def handler(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                response = behavior(request, context)
            except BaseException as error:
                self._record(method, context, started, self._ended(context, error))
                raise
            self._record(method, context, started, self._ended(context, None))
            return response

        return handler

    def _stream(self, behavior: Callable[..., Iterator[Any]], method: str) -> Callable[..., Iterator[Any]]:
        def handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.perf_counter()
            try:
                yield from behavior(request, context)
            except GeneratorExit:  # the caller went away mid-stream
                self._record(method, context, started, grpc.StatusCode.CANCELLED)
                raise
            except BaseException as error:
                self._record(method, context, started, self._ended(context, error))
                raise
            self._record(method, context, started, self._ended(context, None))

        return handler

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        def wrap(behavior: Behavior, _streaming_request: bool, streaming_response: bool) -> Behavior:
            return self._stream(behavior, method) if streaming_response else self._unary(behavior, method)

        return rewrap(handler, wrap)
