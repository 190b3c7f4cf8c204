"""The authenticated caller of the RPC being served, set by the governance interceptor.

Handlers and the vault read it with ``current()``; it lives in a context
variable, so each RPC thread sees its own caller.
"""

from __future__ import annotations

import contextvars

from memos_grpc import reasons
from memos_grpc.errors import UnauthenticatedError
from memos_grpc.store.visibility import Caller

__all__ = ["Caller", "bind", "current", "unbind"]


_current: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("memos_caller", default=None)


def current() -> Caller:
    caller = _current.get()
    if caller is None:
        raise UnauthenticatedError("this call is not authenticated", reason=reasons.UNAUTHENTICATED)
    return caller


def bind(caller: Caller | None) -> contextvars.Token[Caller | None]:
    return _current.set(caller)


def unbind(token: contextvars.Token[Caller | None]) -> None:
    _current.reset(token)
