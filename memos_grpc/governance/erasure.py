"""ErasePrincipalData: remove everything a principal owns from every store, and say what went.

In one transaction: the spaces it alone owns (with every cube in them), the
cubes it created anywhere else, the operation records naming those cubes or
started by it, its roles, and the blobs no remaining cube or version names —
removed as DeleteSpace and DeleteCube remove them (``store/removal.py``).
Then, before answering: their vectors from the indexes, their entries from
the search catalog and the BM25 index, and the blob files from disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import governance_service_pb2
from memos_grpc.errors import NotFoundError
from memos_grpc.governance.identity import Principals, parse_principal_name, principal_name
from memos_grpc.store.interface import CubeWrite
from memos_grpc.store.principals import cubes_created_by
from memos_grpc.store.removal import Removed, remove_operations
from memos_grpc.store.spaces import principal_removed, remove_roles_of, spaces_owned_alone
from memos_grpc.vault.context import VaultContext


@dataclass
class _Erased:
    removed: Removed = field(default_factory=Removed)
    roles: int = 0


def erase_principal_data(
    context: VaultContext, principals: Principals, name: str
) -> governance_service_pb2.ErasePrincipalDataResponse:
    principal = principal_name(parse_principal_name(name))
    if principal not in principals.names():
        raise NotFoundError(f"principal {name} does not exist", reason=reasons.PRINCIPAL_NOT_FOUND)

    def change(write: CubeWrite) -> _Erased:
        erased = _Erased()
        removed = erased.removed
        for space_id in spaces_owned_alone(write.cursor, principal):
            removed.add(write.remove_space(space_id))
        for space_id, cube_ids in cubes_created_by(write.cursor, principal).items():
            removed.add(write.remove(space_id, cube_ids))
        # Its uploads: no one may name them on its behalf any more, and bytes only it held go.
        removed.add(write.remove_uploads(principal))
        # What it ran on cubes it did not create still names it as the creator.
        removed.operations += remove_operations(write.cursor, None, lambda operation: operation.creator == principal)
        erased.roles = remove_roles_of(write.cursor, principal)
        write.after_commit(lambda: principal_removed(context.catalog, principal))
        return erased

    erased = context.cube_store.write(change, context.clock())
    removed = erased.removed
    return governance_service_pb2.ErasePrincipalDataResponse(
        spaces_removed=len(removed.spaces),
        cubes_removed=removed.cubes,
        vectors_removed=removed.vector_count,
        blobs_removed=len(removed.blobs),
        roles_removed=erased.roles,
    )
