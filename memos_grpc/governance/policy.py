"""The policy: whether a caller may make a call on a resource, decided in one place.

A caller who may not see a space is told it does not exist (NOT_FOUND), never
that it is forbidden, so the existence of other principals' spaces does not
leak. Admin-only calls answer PERMISSION_DENIED: their existence is public.
"""

from __future__ import annotations

from memos_grpc.errors import MemosError, NotFoundError, PermissionDeniedError
from memos_grpc.governance.caller import Caller
from memos_grpc.governance.identity import parse_credential_name, parse_principal_name, principal_name
from memos_grpc.governance.rules import Check, Rule
from memos_grpc.vault.catalog import SearchCatalog
from memos_grpc.vault.names import check_id


def _denied(error: MemosError) -> MemosError:
    error.denied = True
    return error


def space_of(resource: str) -> str:
    """The space id of ``spaces/{space}`` or anything below it."""
    parts = resource.split("/")
    if len(parts) < 2 or parts[0] != "spaces":
        from memos_grpc.vault.validation import invalid

        raise invalid(f"{resource[:120]!r} is not a space or a resource in one", "INVALID_NAME")
    return check_id(parts[1], "space id")


def authorize(caller: Caller, rule: Rule, resource: str, catalog: SearchCatalog) -> None:
    """Raises unless ``caller`` may make a call governed by ``rule`` on ``resource``."""
    if rule.check in (Check.PUBLIC, Check.AUTHENTICATED) or caller.admin:
        return
    if rule.check is Check.ADMIN:
        raise _denied(PermissionDeniedError("this call is for admins only", reason="ADMIN_REQUIRED"))
    if rule.check is Check.SPACE:
        space_id = space_of(resource)
        if catalog.owner_of(space_id) != caller.principal:
            raise _denied(NotFoundError(f"space spaces/{space_id} does not exist", reason="SPACE_NOT_FOUND"))
        return
    if rule.check is Check.SELF:
        if principal_name(parse_principal_name(resource)) != caller.principal:
            raise _denied(NotFoundError(f"principal {resource} does not exist", reason="PRINCIPAL_NOT_FOUND"))
        return
    if rule.check is Check.CREDENTIAL:
        principal_id, _ = parse_credential_name(resource)
        if principal_name(principal_id) != caller.principal:
            raise _denied(NotFoundError(f"credential {resource} does not exist", reason="CREDENTIAL_NOT_FOUND"))
        return
    raise _denied(PermissionDeniedError("no rule allows this call", reason="PERMISSION_DENIED"))
