"""The policy enforcement point: every RPC is authenticated, authorized and audited here.

``PolicyInterceptor`` wraps every handler. It finds the caller (a bearer
token, or a client certificate over mTLS, or — only when the operator allows
it — anonymous), looks up the method's rule, authorizes the caller on the
resource the request names (peeking at the first message of a client
stream), runs the handler with the caller bound, and appends an audit event
for every mutating call, every export and every denied call.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import audit_pb2
from memos_grpc.errors import MemosError, ResourceExhaustedError, UnauthenticatedError
from memos_grpc.governance import caller as caller_context
from memos_grpc.governance.audit import AuditLog, AuditRecord
from memos_grpc.governance.caller import Caller
from memos_grpc.governance.identity import Principals
from memos_grpc.governance.policy import authorize
from memos_grpc.governance.rules import Check, Rule, rule_for
from memos_grpc.server.interceptors import Behavior, ServerInterceptor, rewrap
from memos_grpc.server.services import VaultSlot
from memos_grpc.store.group_commit import riding

log = logging.getLogger(__name__)

ANONYMOUS = "principals/anonymous"

#: The outcome recorded for a server stream the client abandoned before its end.
_CANCELLED = MemosError("the client cancelled the stream", reason=reasons.CANCELLED)
_CANCELLED.code = grpc.StatusCode.CANCELLED


class StreamSlots:
    """Counts each principal's open payload streams, refusing one past the limit."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, int]:
        """Open streams per principal (those with none are absent), as of this call."""
        with self._lock:
            return dict(self._open)

    @contextmanager
    def held_by(self, principal: str) -> Iterator[None]:
        with self._lock:
            if self._open.get(principal, 0) >= self._limit:
                raise ResourceExhaustedError(
                    f"{principal} already has {self._limit} payload streams open "
                    f"(max_streams_per_principal); finish one first",
                    reason=reasons.TOO_MANY_STREAMS,
                    metadata={"limit": str(self._limit)},
                )
            self._open[principal] = self._open.get(principal, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._open[principal] -= 1
                if not self._open[principal]:
                    del self._open[principal]


class PolicyInterceptor(ServerInterceptor):
    """The server's policy enforcement point, installed once per ``MemosServer`` inside the error mapping.

    For every call it authenticates the caller (bearer token, mTLS client certificate, or anonymous when the
    operator allows it), authorizes it against the method's ``Rule``, caps each principal's open payload
    streams, binds the caller for the handler and writes the audit event. It does not map errors to statuses
    (``status.ErrorMappingInterceptor`` does) and holds no per-call state; the stream count is locked.
    Refuses with UNAUTHENTICATED, PERMISSION_DENIED or RESOURCE_EXHAUSTED ``TOO_MANY_STREAMS``.
    """

    def __init__(self, slot: VaultSlot, *, allow_anonymous: bool, max_streams_per_principal: int) -> None:
        self._slot = slot
        self._allow_anonymous = allow_anonymous
        self._streams = StreamSlots(max_streams_per_principal)

    def open_streams(self) -> dict[str, int]:
        """Each principal's payload streams now holding a slot: what max_streams_per_principal counts.

        A stream holds its slot from its first message (read to authorize it) until its handler returns.
        """
        return self._streams.snapshot()

    # -- who is calling ----------------------------------------------------------

    def _authenticate(self, context: grpc.ServicerContext, principals: Principals) -> Caller:
        tokens = [v for k, v in context.invocation_metadata() if k == "authorization"]
        if len(tokens) > 1:
            raise UnauthenticatedError("send one authorization header, not several", reason=reasons.INVALID_TOKEN)
        if tokens:
            raw: object = tokens[0]
            value = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise UnauthenticatedError(
                    "the authorization header must read 'Bearer <token>'", reason=reasons.INVALID_TOKEN
                )
            identity = principals.authenticate_token(token.strip())
            return Caller(identity.principal, identity.admin, "token")
        certificates = context.auth_context().get("x509_pem_cert")
        if certificates:
            pem = certificates if isinstance(certificates, bytes) else next(iter(certificates))
            der = ssl.PEM_cert_to_DER_cert(pem.decode())
            identity_or_none = principals.authenticate_certificate(hashlib.sha256(der).hexdigest())
            if identity_or_none is None:
                raise UnauthenticatedError(
                    "the client certificate is not registered to any principal", reason=reasons.UNKNOWN_CERTIFICATE
                )
            return Caller(identity_or_none.principal, identity_or_none.admin, "certificate")
        if self._allow_anonymous:
            return Caller(ANONYMOUS, False, "anonymous")
        raise UnauthenticatedError(
            "this server needs a credential: send 'authorization: Bearer <token>'", reason=reasons.MISSING_CREDENTIAL
        )

    # -- the wrappers ------------------------------------------------------------

    def _admit(
        self, rule: Rule, method: str, request: Any, context: grpc.ServicerContext, streaming_request: bool
    ) -> tuple[Caller, str, Any]:
        """Authenticates and authorizes; returns the caller, the resource and the (re-assembled) request."""
        vault = self._slot.get()
        caller: Caller | None = None
        resource = ""
        try:
            caller = self._authenticate(context, vault.principals)
            if streaming_request:
                first = next(request, None)
                resource = rule.resource(first) if first is not None else ""
                request = itertools.chain([] if first is None else [first], request)
            else:
                resource = rule.resource(request)
            authorize(caller, rule, resource, vault.context.catalog)
        except MemosError as error:
            denied = error.denied or isinstance(error, UnauthenticatedError)
            if denied or rule.audited:
                self._audit(vault.audit, caller, method, resource, error, denied)
            raise
        return caller, resource, request

    def _guard(
        self, rule: Rule, method: str, behavior: Callable[..., Any], streaming_request: bool
    ) -> Callable[..., Any]:
        def handler(request: Any, context: grpc.ServicerContext) -> Any:
            caller, resource, request = self._admit(rule, method, request, context, streaming_request)
            bound = caller_context.bind(caller)
            # The success event, offered to the write that concludes the call: one transaction instead of two, and
            # the event commits atomically with what it records. If no such write takes it, it is appended below.
            audit = self._slot.get().audit
            succeeded = audit.rider(_record(caller, method, resource, None, False)) if rule.audited else None
            try:
                if streaming_request:
                    with self._streams.held_by(caller.principal):
                        result = behavior(request, context)
                elif succeeded is not None:
                    with riding(succeeded):
                        result = behavior(request, context)
                else:
                    result = behavior(request, context)
            except MemosError as error:
                if rule.audited:
                    self._audit(self._slot.get().audit, caller, method, resource, error, False)
                raise
            except Exception:
                if rule.audited:  # a bug, but the attempt is on record all the same
                    crash = MemosError("internal error", reason=reasons.INTERNAL)
                    self._audit(self._slot.get().audit, caller, method, resource, crash, False)
                raise
            finally:
                caller_context.unbind(bound)
            if succeeded is not None and not succeeded.committed:
                self._audit(audit, caller, method, resource, None, False)
            return result

        return handler

    def _guard_stream(self, rule: Rule, method: str, behavior: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        def handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            caller, resource, request = self._admit(rule, method, request, context, False)
            bound = caller_context.bind(caller)
            outcome: MemosError | None = _CANCELLED
            try:
                with self._streams.held_by(caller.principal):
                    yield from behavior(request, context)
                outcome = None
            except MemosError as error:
                outcome = error
                raise
            except Exception:
                outcome = MemosError("internal error", reason=reasons.INTERNAL)
                raise
            finally:
                caller_context.unbind(bound)
                if rule.audited:
                    self._audit(self._slot.get().audit, caller, method, resource, outcome, False)

        return handler

    @staticmethod
    def _audit(
        audit: AuditLog, caller: Caller | None, method: str, resource: str, error: MemosError | None, denied: bool
    ) -> None:
        try:
            audit.append(_record(caller, method, resource, error, denied))
        except MemosError:
            log.exception("could not append to the audit log")

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        rule = rule_for(method)
        if handler is None or rule.check is Check.PUBLIC:
            return handler
        if handler.stream_stream:
            raise RuntimeError(f"{method}: bidirectional streams have no policy wrapper yet")

        def wrap(behavior: Behavior, streaming_request: bool, streaming_response: bool) -> Behavior:
            if streaming_response:
                return self._guard_stream(rule, method, behavior)
            return self._guard(rule, method, behavior, streaming_request)

        return rewrap(handler, wrap)


def _record(caller: Caller | None, method: str, resource: str, error: MemosError | None, denied: bool) -> AuditRecord:
    """The audit event of a call: OK without ``error``; DENIED or FAILED, with its code and reason, with one."""
    if error is None:
        outcome, code, reason = audit_pb2.AuditEvent.OUTCOME_OK, "OK", ""
    else:
        outcome = audit_pb2.AuditEvent.OUTCOME_DENIED if denied else audit_pb2.AuditEvent.OUTCOME_FAILED
        code, reason = error.code.name, error.reason
    return AuditRecord(caller.principal if caller else "", method, resource[:512], outcome, code, reason)
