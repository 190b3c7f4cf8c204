"""The policy: whether a caller may make a call on a resource, and which cubes it may see.

Decided here and nowhere else. A caller with no role in a space is told the
space does not exist (NOT_FOUND), never that it is forbidden, so other
principals' spaces do not leak; a caller with a role too low for the call is
told PERMISSION_DENIED, naming the role it needs. Admin-only calls answer
PERMISSION_DENIED: their existence is public. Within a space, a cube's own
``access`` field can narrow who sees it; space owners and admins see all.
"""

from __future__ import annotations

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import access_pb2
from memos_grpc.errors import MemosError, NotFoundError, PermissionDeniedError
from memos_grpc.governance.caller import Caller
from memos_grpc.governance.identity import parse_credential_name, parse_principal_name, principal_name
from memos_grpc.governance.rules import Check, Rule
from memos_grpc.store.catalog import SearchCatalog
from memos_grpc.store.names import check_id
from memos_grpc.store.visibility import EDITOR, OWNER, VIEWER
from memos_grpc.vault.validation import invalid

_NEEDED = {Check.SPACE_READ: VIEWER, Check.SPACE_WRITE: EDITOR, Check.SPACE_OWNER: OWNER}


def _denied(error: MemosError) -> MemosError:
    error.denied = True
    return error


def space_of(resource: str) -> str:
    """The space id of ``spaces/{space}`` or anything below it."""
    parts = resource.split("/")
    if len(parts) < 2 or parts[0] != "spaces":
        raise invalid(f"{resource[:120]!r} is not a space or a resource in one", reasons.INVALID_NAME)
    return check_id(parts[1], "space id")


def authorize(caller: Caller, rule: Rule, resource: str, catalog: SearchCatalog) -> None:
    """Raises unless ``caller`` may make a call governed by ``rule`` on ``resource``."""
    if rule.check in (Check.PUBLIC, Check.AUTHENTICATED) or caller.admin:
        return
    if rule.check is Check.ADMIN:
        raise _denied(PermissionDeniedError("this call is for admins only", reason=reasons.ADMIN_REQUIRED))
    if rule.check in _NEEDED:
        space_id = space_of(resource)
        role = catalog.role_of(space_id, caller.principal)
        if not role:
            raise _denied(NotFoundError(f"space spaces/{space_id} does not exist", reason=reasons.SPACE_NOT_FOUND))
        needed = _NEEDED[rule.check]
        if role < needed:
            raise _denied(
                PermissionDeniedError(
                    f"this call needs the {access_pb2.Role.Name(needed)} role on spaces/{space_id}; "
                    f"{caller.principal} has {access_pb2.Role.Name(role)}",
                    reason=reasons.ROLE_REQUIRED,
                )
            )
        return
    if rule.check is Check.SELF:
        if principal_name(parse_principal_name(resource)) != caller.principal:
            raise _denied(NotFoundError(f"principal {resource} does not exist", reason=reasons.PRINCIPAL_NOT_FOUND))
        return
    if rule.check is Check.CREDENTIAL:
        principal_id, _ = parse_credential_name(resource)
        if principal_name(principal_id) != caller.principal:
            raise _denied(NotFoundError(f"credential {resource} does not exist", reason=reasons.CREDENTIAL_NOT_FOUND))
        return
    raise _denied(PermissionDeniedError("no rule allows this call", reason=reasons.PERMISSION_DENIED))
