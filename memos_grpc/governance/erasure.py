"""ErasePrincipalData: remove everything a principal owns from every store, and say what went.

In one transaction: the spaces it alone owns (with every cube in them), the
cubes it created anywhere else, the operation records naming those cubes or
started by it, its roles, and the blobs no remaining cube or version names —
removed as DeleteSpace and DeleteCube remove them (``vault/removal.py``).
Then, before answering: their vectors from the indexes, their entries from
the search catalog and the BM25 index, and the blob files from disk.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from memos_grpc._proto.memos.v1 import access_pb2, governance_service_pb2
from memos_grpc.errors import NotFoundError
from memos_grpc.governance.identity import Principals, parse_principal_name, principal_name
from memos_grpc.store.database import Connection
from memos_grpc.store.removal import (
    Removed,
    forget_removed,
    remove_cubes,
    remove_operations,
    remove_space,
    remove_uploads,
)
from memos_grpc.vault.context import VaultContext

OWNER = access_pb2.ROLE_OWNER


@dataclass
class _Erased:
    removed: Removed = field(default_factory=Removed)
    roles: int = 0


def erase_principal_data(
    context: VaultContext, principals: Principals, name: str
) -> governance_service_pb2.ErasePrincipalDataResponse:
    principal = principal_name(parse_principal_name(name))
    if principal not in principals.names():
        raise NotFoundError(f"principal {name} does not exist", reason="PRINCIPAL_NOT_FOUND")

    def apply(cursor: Connection) -> _Erased:
        erased = _Erased()
        removed = erased.removed
        alone = cursor.execute(
            "SELECT space_id FROM space_roles r WHERE principal = ? AND role = ? AND NOT EXISTS ("
            "SELECT 1 FROM space_roles o WHERE o.space_id = r.space_id AND o.role = ? AND o.principal <> ?) "
            "ORDER BY space_id",
            [principal, OWNER, OWNER, principal],
        ).fetchall()
        for (space_id,) in alone:
            removed.add(remove_space(cursor, str(space_id)))
        created: dict[str, list[str]] = defaultdict(list)
        for space_id, cube_id in cursor.execute(
            "SELECT space_id, cube_id FROM cubes WHERE access_owner = ? ORDER BY space_id, cube_id", [principal]
        ).fetchall():
            created[str(space_id)].append(str(cube_id))
        for space_id, cube_ids in created.items():
            removed.add(remove_cubes(cursor, space_id, cube_ids))
        # Its uploads: no one may name them on its behalf any more, and bytes only it held go.
        removed.add(remove_uploads(cursor, principal))
        # What it ran on cubes it did not create still names it as the creator.
        removed.operations += remove_operations(cursor, None, lambda operation: operation.creator == principal)
        roles = cursor.execute("SELECT count(*) FROM space_roles WHERE principal = ?", [principal]).fetchone()
        erased.roles = int(roles[0]) if roles else 0
        cursor.execute("DELETE FROM space_roles WHERE principal = ?", [principal])
        return erased

    def after_commit(erased: _Erased) -> None:
        forget_removed(context.store, erased.removed)
        context.catalog.forget_principal(principal)

    erased = context.database.write(apply, after_commit)
    removed = erased.removed
    return governance_service_pb2.ErasePrincipalDataResponse(
        spaces_removed=len(removed.spaces),
        cubes_removed=removed.cubes,
        vectors_removed=removed.vector_count,
        blobs_removed=len(removed.blobs),
        roles_removed=erased.roles,
    )
