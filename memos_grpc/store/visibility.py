"""Which cubes of a space a caller sees, and how: the one rule the store's reads and the components apply.

It lives in the store because the store applies it (as a SQL condition and over the search catalog's roles);
``governance.policy`` decides everything else about a call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, space_pb2
from memos_grpc.store.catalog import CubeAccess, SearchCatalog

VIEWER, EDITOR, OWNER = access_pb2.ROLE_VIEWER, access_pb2.ROLE_EDITOR, access_pb2.ROLE_OWNER
WITHHOLD, REDACT_TEXT = space_pb2.RedactionRule.ACTION_WITHHOLD, space_pb2.RedactionRule.ACTION_REDACT_TEXT
REDACTED = "[REDACTED]"


def redact_text(cube: cube_pb2.MemCube) -> None:
    """Replaces a cube's text (a plaintext's text, a cache's or an adapter's source text), and drops a
    plaintext's search context, which quotes what is around it."""
    payload = cube.WhichOneof("payload")
    if payload == "plaintext":
        cube.plaintext.text = REDACTED
        cube.plaintext.ClearField("context")
    elif payload == "activation" and cube.activation.source_text:
        cube.activation.source_text = REDACTED
    elif payload == "parametric" and cube.parametric.source_text:
        cube.parametric.source_text = REDACTED


@dataclass(frozen=True)
class Caller:
    """Who is calling: a principal's name and whether it administers the server."""

    principal: str
    admin: bool
    #: How the caller proved who it is: "token", "certificate" or "anonymous".
    method: str


class CubeVisibility:
    """Which cubes of one space a caller sees, and how.

    All of them for admins and owners; otherwise those their ``access`` lets it see. A viewer
    (and only a viewer) is also subject to the space's redaction rules for viewers: cubes with a
    withheld sensitivity label are left out, and a redacted one comes with its text replaced.
    """

    def __init__(self, caller: Caller, catalog: SearchCatalog, space_id: str) -> None:
        self.principal = caller.principal
        role = 0 if caller.admin else (catalog.role_of(space_id, caller.principal) or 0)
        self.sees_all = caller.admin or role >= OWNER
        rules = catalog.viewer_rules(space_id) if not caller.admin and role == VIEWER else {}
        self.withheld = frozenset(label for label, action in rules.items() if action == WITHHOLD)
        self.redacted = frozenset(label for label, action in rules.items() if action == REDACT_TEXT)

    def allows(self, access: CubeAccess) -> bool:
        if self.withheld and not self.withheld.isdisjoint(access.sensitivity):
            return False
        if self.sees_all or access.scope in (cube_pb2.CubeAccess.SCOPE_UNSPECIFIED, cube_pb2.CubeAccess.SCOPE_SPACE):
            return True
        if access.owner == self.principal:
            return True
        return access.scope == cube_pb2.CubeAccess.SCOPE_PRINCIPALS and self.principal in access.principals

    def allows_cube(self, cube: cube_pb2.MemCube) -> bool:
        return self.allows(cube_access(cube))

    def ranks(self, access: CubeAccess) -> bool:
        """Whether a ranked result (search of any mode, Recall) may hold the cube: it is visible and not redacted.

        A redacted cube has no text this caller may see to be ranked on; ranked on its hidden text (its words,
        its vector, its search context) it would let the caller confirm guesses about that text.
        """
        return self.allows(access) and (not self.redacted or self.redacted.isdisjoint(access.sensitivity))

    @property
    def narrows(self) -> bool:
        """Whether some cube of the space may be left out of this caller's ranked results."""
        return not self.sees_all or bool(self.withheld) or bool(self.redacted)

    def redacts(self, cube: cube_pb2.MemCube, current: Iterable[str] = ()) -> bool:
        """Whether the cube's text is redacted for this caller: by its own labels, or by ``current`` ones (an old
        version of a cube is redacted by the labels the cube has now too, or a label added later would not hide
        the text it was added for)."""
        if not self.redacted:
            return False
        return not self.redacted.isdisjoint(cube.sensitivity_labels) or not self.redacted.isdisjoint(current)

    def shown(self, cube: cube_pb2.MemCube, current: Iterable[str] = ()) -> cube_pb2.MemCube:
        """The cube as this caller may see it: its text replaced when a redaction rule says so."""
        if not self.redacts(cube, current):
            return cube
        copy = cube_pb2.MemCube()
        copy.CopyFrom(cube)
        redact_text(copy)
        return copy

    def sql(self, ranked: bool = False) -> tuple[str, list[object]]:
        """The same rule as a SQL condition over the cubes table (``ranked``: as ``ranks``, not ``allows``)."""
        conditions: list[str] = []
        params: list[object] = []
        if ranked and self.redacted:
            conditions.append("NOT list_has_any(sensitivity_labels, ?::VARCHAR[])")
            params.append(sorted(self.redacted))
        if self.withheld:
            conditions.append("NOT list_has_any(sensitivity_labels, ?::VARCHAR[])")
            params.append(sorted(self.withheld))
        if not self.sees_all:
            conditions.append(
                "(access_scope IN (0, 1) OR access_owner = ? "
                "OR (access_scope = 3 AND list_contains(access_principals, ?)))"
            )
            params += [self.principal, self.principal]
        return (" AND ".join(conditions) or "TRUE"), params


def cube_access(cube: cube_pb2.MemCube) -> CubeAccess:
    access = cube.access
    return CubeAccess.shared(
        access.scope,
        access.owner,
        access.principals,
        cube.sensitivity_labels,
        cube.state == cube_pb2.LIFECYCLE_STATE_ARCHIVED,
        held_license_id(cube),
    )


def held_license_id(cube: cube_pb2.MemCube) -> str:
    """The id of the held license a cube was imported under ("" for none): ``heldLicenses/{id}``'s last part."""
    return cube.license.held_license.rpartition("/")[2]
