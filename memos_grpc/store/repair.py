"""Start-up repair: brings every hnswlib index and the search catalog back in line with DuckDB.

An index is right when its live labels are exactly the cubes' ``vec_id``
values and each label holds its cube's vector. The repair proves both: it
compares every stored vector with the one the index holds under its label,
(re)adds what is absent, deleted or different, and deletes the rest. Labels are
issued once (``store.cubes.Labels``), so a difference means an index file saved
while a write that never committed had already indexed its vectors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc.store.catalog import CatalogRow, CubeAccess, license_of, viewer_rules
from memos_grpc.store.database import INT_IDS, id_list
from memos_grpc.store.lexical import lexical_text
from memos_grpc.store.store import Store

log = logging.getLogger(__name__)

_CHUNK = 10_000


@dataclass
class RepairReport:
    """What start-up repair did: spaces and vectors checked, labels added, replaced and removed, index files dropped."""

    spaces: int = 0
    vectors: int = 0
    added: int = 0
    replaced: int = 0
    removed: int = 0
    dropped_indexes: int = 0


def repair_indexes(context: Store) -> RepairReport:
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
        load_catalog(context, space_id, roles[space_id])
        if not context.indexes.derived:
            continue  # the database's rows are the index
        held = index.labels()
        stored: set[int] = set()
        with context.database.read() as cursor:
            cursor.execute("SELECT vec_id, embedding FROM cubes WHERE space_id = ? AND vec_id IS NOT NULL", [space_id])
            while rows := cursor.fetchmany(_CHUNK):
                labels = [int(r[0]) for r in rows]
                # One buffer for the chunk: a frombuffer per row costs more than the comparison itself.
                vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
                stored.update(labels)
                stale = set(index.stale(labels, vectors, held))
                if stale:
                    keep = [i for i, label in enumerate(labels) if label in stale]
                    index.add([labels[i] for i in keep], vectors[keep])
                    report.replaced += sum(labels[i] in held for i in keep)
                    report.added += sum(labels[i] not in held for i in keep)
        report.vectors += len(stored)
        report.removed += index.delete(held - stored)
    return report


def load_catalog(context: Store, space_id: str, roles: dict[str, int]) -> None:
    """Fills the search catalog of one space from the database."""
    with context.database.read() as cursor:
        found = cursor.execute("SELECT space_pb FROM spaces WHERE space_id = ?", [space_id]).fetchone()
    rules = viewer_rules(space_pb2.Space.FromString(found[0])) if found else {}
    context.catalog.add_space(space_id, roles, rules)
    with context.database.read() as cursor:
        cursor.execute(f"SELECT {_CATALOG_COLUMNS} FROM cubes WHERE space_id = ? AND vec_id IS NOT NULL", [space_id])
        while batch := cursor.fetchmany(_CHUNK):
            context.catalog.put(space_id, (catalog_row(*row) for row in batch))


def reload_catalog_entries(context: Store, space_id: str, labels: list[int]) -> int:
    """Puts in the catalog (with BM25) the rows that now carry ``labels`` (a write of another server sharing the
    database, whose rows are also its vector index); a label no row carries any more is left alone. Returns how
    many rows were found."""
    if not labels:
        return 0
    with context.database.read() as cursor:
        rows = cursor.execute(
            f"SELECT {_CATALOG_COLUMNS} FROM cubes WHERE space_id = ? AND vec_id IN {INT_IDS}",
            [space_id, id_list(labels)],
        ).fetchall()
    context.catalog.put(space_id, [catalog_row(*row) for row in rows])
    return len(rows)


#: The columns ``catalog_row`` takes, in its order.
_CATALOG_COLUMNS = (
    "vec_id, cube_pb, expire_time, access_scope, access_owner, access_principals, sensitivity_labels, state"
)


def catalog_row(
    label: int,
    cube_pb: bytes,
    expire_time: datetime | None,
    scope: int | None,
    owner: str | None,
    principals: list[str] | None,
    sensitivity: list[str],
    state: int,
) -> CatalogRow:
    """What the catalog keeps of one stored cube row (``_CATALOG_COLUMNS``)."""
    return CatalogRow(
        int(label),
        bytes(cube_pb),
        expire_time,
        CubeAccess.shared(
            int(scope or 0),
            str(owner or ""),
            principals or (),
            sensitivity,
            state == cube_pb2.LIFECYCLE_STATE_ARCHIVED,
            license_of(bytes(cube_pb)),
        ),
        _text(bytes(cube_pb)),
    )


def _text(cube_pb: bytes) -> str | None:
    """The plaintext of a stored cube, for the lexical index (None for other memory types)."""
    return lexical_text(cube_pb2.MemCube.FromString(cube_pb))
