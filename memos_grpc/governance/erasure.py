"""ErasePrincipalData: remove everything a principal owns from every store, and say what went.

In one transaction: the spaces it alone owns (with every cube in them), the
cubes it created anywhere else, its roles, and the blobs no remaining cube
references. Then, before answering: their vectors from the indexes, their
entries from the search catalog, and the blob files from disk.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from memos_grpc._proto.memos.v1 import access_pb2, governance_service_pb2
from memos_grpc.errors import NotFoundError
from memos_grpc.governance.identity import Principals, parse_principal_name, principal_name
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.database import IDS, Connection, id_list
from memos_grpc.vault.rows import DELETE_VERSIONS_SQL

OWNER = access_pb2.ROLE_OWNER


@dataclass
class _Erased:
    spaces: list[str] = field(default_factory=list)
    vectors: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    cubes: int = 0
    blobs: list[str] = field(default_factory=list)
    roles: int = 0


def erase_principal_data(
    context: VaultContext, principals: Principals, name: str
) -> governance_service_pb2.ErasePrincipalDataResponse:
    principal = principal_name(parse_principal_name(name))
    if principal not in principals.names():
        raise NotFoundError(f"principal {name} does not exist", reason="PRINCIPAL_NOT_FOUND")

    def apply(cursor: Connection) -> _Erased:
        erased = _Erased()
        erased.spaces = [
            str(r[0])
            for r in cursor.execute(
                "SELECT space_id FROM space_roles r WHERE principal = ? AND role = ? AND NOT EXISTS ("
                "SELECT 1 FROM space_roles o WHERE o.space_id = r.space_id AND o.role = ? AND o.principal <> ?)",
                [principal, OWNER, OWNER, principal],
            ).fetchall()
        ]
        doomed = cursor.execute(
            f"SELECT space_id, cube_id, vec_id, blob_digest FROM cubes WHERE access_owner = ? OR space_id IN {IDS}",
            [principal, id_list(erased.spaces)],
        ).fetchall()
        digests = {str(d) for _, _, _, d in doomed if d}
        for space_id, cube_id, vec_id, _ in doomed:
            older = cursor.execute(
                "SELECT blob_digest FROM cube_versions WHERE space_id = ? AND cube_id = ? AND blob_digest IS NOT NULL",
                [space_id, cube_id],
            ).fetchall()
            digests.update(str(d) for (d,) in older)
            cursor.execute("DELETE FROM cubes WHERE space_id = ? AND cube_id = ?", [space_id, cube_id])
            cursor.execute(DELETE_VERSIONS_SQL, [space_id, cube_id])
            if vec_id is not None:
                erased.vectors[str(space_id)].append(int(vec_id))
        erased.cubes = len(doomed)
        for space_id in erased.spaces:
            cursor.execute("DELETE FROM space_roles WHERE space_id = ?", [space_id])
            cursor.execute("DELETE FROM spaces WHERE space_id = ?", [space_id])
        roles = cursor.execute("SELECT count(*) FROM space_roles WHERE principal = ?", [principal]).fetchone()
        erased.roles = int(roles[0]) if roles else 0
        cursor.execute("DELETE FROM space_roles WHERE principal = ?", [principal])
        for digest in sorted(digests):
            still_used = cursor.execute(
                "SELECT 1 FROM cubes WHERE blob_digest = ? UNION ALL SELECT 1 FROM cube_versions WHERE blob_digest = ? "
                "LIMIT 1",
                [digest, digest],
            ).fetchone()
            if still_used is None:
                cursor.execute("DELETE FROM blobs WHERE digest = ?", [digest])
                erased.blobs.append(digest)
        return erased

    def after_commit(erased: _Erased) -> None:
        for space_id, vec_ids in erased.vectors.items():
            if space_id not in erased.spaces:
                context.indexes.get(space_id).delete(vec_ids)
                context.catalog.remove(space_id, vec_ids)
        for space_id in erased.spaces:
            context.indexes.drop(space_id)
            context.catalog.drop_space(space_id)
        context.catalog.forget_principal(principal)
        for digest in erased.blobs:
            context.blobs.delete(digest)

    erased = context.database.write(apply, after_commit)
    return governance_service_pb2.ErasePrincipalDataResponse(
        spaces_removed=len(erased.spaces),
        cubes_removed=erased.cubes,
        vectors_removed=sum(len(v) for v in erased.vectors.values()),
        blobs_removed=len(erased.blobs),
        roles_removed=erased.roles,
    )
