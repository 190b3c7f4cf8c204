"""Start-up repair: brings every hnswlib index and the search catalog back in line with DuckDB.

Labels are immutable (a label never gets a second vector), so an index is
right exactly when its live labels equal the cubes' ``vec_id`` values: the
repair adds what DuckDB has and the index lacks, and deletes the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc.vault.catalog import CubeAccess, viewer_rules
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.database import INT_IDS, id_list
from memos_grpc.vault.lexical import lexical_text
from memos_grpc.vault.rows import vector_from_bytes

log = logging.getLogger(__name__)

_CHUNK = 10_000


@dataclass
class RepairReport:
    spaces: int = 0
    vectors: int = 0
    added: int = 0
    removed: int = 0
    dropped_indexes: int = 0


def repair_indexes(context: VaultContext) -> RepairReport:
    report = RepairReport()
    with context.database.read() as cursor:
        spaces = sorted(str(r[0]) for r in cursor.execute("SELECT space_id FROM spaces").fetchall())
        roles: dict[str, dict[str, int]] = {space_id: {} for space_id in spaces}
        for space_id, principal, role in cursor.execute("SELECT space_id, principal, role FROM space_roles").fetchall():
            roles.setdefault(str(space_id), {})[str(principal)] = int(role)
    for orphan in set(context.indexes.existing_files()) - set(spaces):
        context.indexes.drop(orphan)
        report.dropped_indexes += 1
    for space_id in spaces:
        report.spaces += 1
        index = context.indexes.get(space_id)
        with context.database.read() as cursor:
            stored = {
                int(r[0])
                for r in cursor.execute(
                    "SELECT vec_id FROM cubes WHERE space_id = ? AND vec_id IS NOT NULL", [space_id]
                ).fetchall()
            }
        load_catalog(context, space_id, roles[space_id])
        indexed = index.labels()
        report.vectors += len(stored)
        missing = sorted(stored - indexed)
        for start in range(0, len(missing), _CHUNK):
            chunk = missing[start : start + _CHUNK]
            with context.database.read() as cursor:
                rows = cursor.execute(
                    f"SELECT vec_id, embedding FROM cubes WHERE space_id = ? AND vec_id IN {INT_IDS}",
                    [space_id, id_list(chunk)],
                ).fetchall()
            if rows:
                index.add([int(r[0]) for r in rows], np.stack([vector_from_bytes(r[1]) for r in rows]))
            report.added += len(rows)
        report.removed += index.delete(indexed - stored)
    return report


def load_catalog(context: VaultContext, space_id: str, roles: dict[str, int]) -> None:
    """Fills the search catalog of one space from DuckDB."""
    with context.database.read() as cursor:
        found = cursor.execute("SELECT space_pb FROM spaces WHERE space_id = ?", [space_id]).fetchone()
    rules = viewer_rules(space_pb2.Space.FromString(found[0])) if found else {}
    context.catalog.add_space(space_id, roles, rules)
    with context.database.read() as cursor:
        cursor.execute(
            "SELECT vec_id, cube_pb, expire_time, access_scope, access_owner, access_principals, sensitivity_labels, "
            "state FROM cubes WHERE space_id = ? AND vec_id IS NOT NULL",
            [space_id],
        )
        while batch := cursor.fetchmany(_CHUNK):
            context.catalog.put(
                space_id,
                (
                    (
                        int(v),
                        bytes(b),
                        e,
                        CubeAccess(
                            int(scope or 0),
                            str(owner or ""),
                            frozenset(principals or ()),
                            frozenset(labels),
                            state == cube_pb2.LIFECYCLE_STATE_ARCHIVED,
                        ),
                        _text(bytes(b)),
                    )
                    for v, b, e, scope, owner, principals, labels, state in batch
                ),
            )


def _text(cube_pb: bytes) -> str | None:
    """The plaintext of a stored cube, for the lexical index (None for other memory types)."""
    return lexical_text(cube_pb2.MemCube.FromString(cube_pb))
