"""Removing cubes and spaces from every store: the one way every path that removes them takes.

DeleteCube, DeleteSpace, the retention sweeper, an import that replaces a
cube, and ErasePrincipalData all call ``remove_cubes`` or ``remove_space``
inside their write transaction. Expiry is the removal that leaves a trace:
``expire_cubes`` empties expired cubes into tombstones (``tombstone``) and
takes out everything else ``remove_cubes`` would; the sweeper later removes
the tombstones with ``remove_cubes``. Those delete the rows — the cubes, their
versions, the operation records naming them; for a space also its roles and
the space — and release the blobs no remaining row references. They return a
``Removed``: what the derived stores still hold, which ``forget_removed``
drops after the commit (vector labels, catalog entries and with them the
BM25 documents, a removed space's index file, blob files). On PostgreSQL the
BM25 documents are rows, deleted here in the same transaction
(``Cursor.lexical_remove``, ``lexical_drop``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from memos_grpc._proto.memos.v1 import cube_pb2, scheduler_service_pb2
from memos_grpc.store.database import IDS, Connection, id_list
from memos_grpc.store.named import delete_named, named_rows
from memos_grpc.store.names import cube_name
from memos_grpc.store.rows import CubeRow, insert_rows, make_etag, set_timestamp, to_datetime
from memos_grpc.store.store import Store

EXPIRED = cube_pb2.LIFECYCLE_STATE_EXPIRED

#: A ``blobs`` row no cube, version or release names any more and nobody uploaded within the grace period (the one
#: test of "unreferenced" in the vault; the sweeper deletes upload records once past the grace period).
_UNREFERENCED = (
    "NOT EXISTS (SELECT 1 FROM cubes c WHERE c.blob_digest = blobs.digest) "
    "AND NOT EXISTS (SELECT 1 FROM cube_versions v WHERE v.blob_digest = blobs.digest) "
    "AND NOT EXISTS (SELECT 1 FROM blob_uploads u WHERE u.digest = blobs.digest) "
    # A marketplace release's bundle shares the content-addressed store: the same bytes uploaded as a payload and
    # then let go must not take the release's file with them.
    "AND NOT EXISTS (SELECT 1 FROM market_releases r WHERE r.bundle_digest = blobs.digest)"
)


@dataclass
class Removed:
    """What a removal took out of DuckDB, and what the derived stores must drop after the commit."""

    cubes: int = 0
    #: Vector labels of the removed cubes, per space (those of a removed space go with its index).
    vectors: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    #: Spaces removed whole: their index files and catalog entries go.
    spaces: list[str] = field(default_factory=list)
    #: Digests whose ``blobs`` row went: their files go.
    blobs: list[str] = field(default_factory=list)
    operations: int = 0
    #: Cubes emptied into tombstones (``expire_cubes``); their rows stay, so ``cubes`` does not count them.
    expired: int = 0

    @property
    def vector_count(self) -> int:
        return sum(len(labels) for labels in self.vectors.values())

    def add(self, other: Removed) -> None:
        self.cubes += other.cubes
        for space_id, labels in other.vectors.items():
            self.vectors[space_id].extend(labels)
        self.spaces.extend(other.spaces)
        self.blobs.extend(other.blobs)
        self.operations += other.operations
        self.expired += other.expired


def remove_cubes(
    cursor: Connection, space_id: str, cube_ids: Collection[str], *, keep_blobs: Collection[str] = ()
) -> Removed:
    """Deletes cubes of one space with their versions and the operation records naming them.

    Releases the blobs they named that no remaining row names, except ``keep_blobs`` (those the
    caller's transaction is about to name again, as an import replacing a cube with another memory).
    """
    removed = Removed()
    if not cube_ids:
        return removed
    where, params = named_rows(cursor, "cubes", space_id, cube_ids)
    rows = cursor.execute(f"SELECT vec_id FROM {where}", params).fetchall()
    removed.cubes = len(rows)
    labels = [int(vec_id) for (vec_id,) in rows if vec_id is not None]
    if labels:
        removed.vectors[space_id].extend(labels)
        cursor.lexical_remove(space_id, labels)
    digests = _named_digests(cursor, space_id, cube_ids)
    delete_named(cursor, "cubes", space_id, cube_ids)
    delete_named(cursor, "cube_versions", space_id, cube_ids)
    names = {cube_name(space_id, cube_id) for cube_id in cube_ids}
    removed.operations = remove_operations(cursor, space_id, lambda operation: bool(_named(operation) & names))
    removed.blobs = _release(cursor, digests - set(keep_blobs))
    return removed


def tombstone(cube: cube_pb2.MemCube, retention: timedelta) -> cube_pb2.MemCube:
    """What stays of an expired cube: state EXPIRED, no content, and when the tombstone itself goes.

    The tombstone is the cube's next version, stamped at its expire time, so it is the same message whether
    a read renders it from a cube the sweeper has not reached yet or the sweeper stored it; a stored
    tombstone is returned with only its purge time brought up to the current ``retention``.
    """
    expire_time = to_datetime(cube.expire_time)
    assert expire_time is not None, "only a cube with an expire time expires"
    if cube.state == EXPIRED:
        stone = cube_pb2.MemCube()
        stone.CopyFrom(cube)
    else:
        # Identity, the expiry and who set it, and what decides who may see it (access, sensitivity labels);
        # the payload, tags, labels and the other headers go with the content.
        stone = cube_pb2.MemCube(
            name=cube.name,
            type=cube.type,
            provenance_id=cube.provenance_id,
            expire_time_setter=cube.expire_time_setter,
            sensitivity_labels=cube.sensitivity_labels,
            access=cube.access,
            create_time=cube.create_time,
            expire_time=cube.expire_time,
        )
        stone.state = EXPIRED
        stone.version = cube.version + 1
        set_timestamp(stone.update_time, expire_time)
        stone.etag = make_etag(stone.name, stone.version, expire_time)
    set_timestamp(stone.purge_time, expire_time + retention)
    return stone


def expire_cubes(cursor: Connection, space_id: str, cube_ids: Collection[str], retention: timedelta) -> Removed:
    """Empties expired cubes of one space into tombstones, in the caller's transaction.

    As ``remove_cubes``, but the cube row stays as its tombstone (no vector, embedding or blob; not a
    version): every version and the payloads they name go, with the operation records naming the cubes
    and the blobs no remaining row names. The returned ``Removed`` names the labels whose vectors, catalog
    entries and BM25 documents go after the commit. Cubes already tombstoned are left as they are.
    """
    removed = Removed()
    if not cube_ids:
        return removed
    where, params = named_rows(cursor, "cubes", space_id, cube_ids)
    rows = cursor.execute(f"SELECT cube_id, cube_pb, vec_id FROM {where} AND state <> ?", [*params, EXPIRED]).fetchall()
    if not rows:
        return removed
    expiring = [str(cube_id) for cube_id, _, _ in rows]
    removed.expired = len(rows)
    labels = [int(vec_id) for _, _, vec_id in rows if vec_id is not None]
    if labels:
        removed.vectors[space_id].extend(labels)
        cursor.lexical_remove(space_id, labels)
    digests = _named_digests(cursor, space_id, expiring)
    stones = [
        CubeRow(space_id, str(cube_id), tombstone(cube_pb2.MemCube.FromString(pb), retention), None, None)
        for cube_id, pb, _ in rows
    ]
    delete_named(cursor, "cube_versions", space_id, expiring)
    delete_named(cursor, "cubes", space_id, expiring)
    insert_rows(cursor, stones, versions=False)
    names = {cube_name(space_id, cube_id) for cube_id in expiring}
    removed.operations = remove_operations(cursor, space_id, lambda operation: bool(_named(operation) & names))
    removed.blobs = _release(cursor, digests)
    return removed


def remove_space(cursor: Connection, space_id: str) -> Removed:
    """Deletes a space with everything in it: cubes, versions, operation records, roles."""
    removed = Removed(spaces=[space_id])
    rows = cursor.execute("SELECT vec_id FROM cubes WHERE space_id = ?", [space_id]).fetchall()
    removed.cubes = len(rows)
    removed.vectors[space_id].extend(int(vec_id) for (vec_id,) in rows if vec_id is not None)
    digests = _digests(cursor, "cubes WHERE space_id = ?", "cube_versions WHERE space_id = ?", [space_id])
    cursor.execute("DELETE FROM cubes WHERE space_id = ?", [space_id])
    cursor.lexical_drop(space_id)
    cursor.execute("DELETE FROM cube_versions WHERE space_id = ?", [space_id])
    removed.operations = remove_operations(cursor, space_id, lambda _: True)
    cursor.execute("DELETE FROM space_roles WHERE space_id = ?", [space_id])
    uploaded = cursor.execute("DELETE FROM blob_uploads WHERE space_id = ? RETURNING digest", [space_id]).fetchall()
    digests.update(str(d) for (d,) in uploaded)
    cursor.execute("DELETE FROM spaces WHERE space_id = ?", [space_id])
    removed.blobs = _release(cursor, digests)
    return removed


def remove_uploads(cursor: Connection, principal: str) -> Removed:
    """Deletes the upload records of a principal and releases the blobs nothing else names or holds."""
    rows = cursor.execute("DELETE FROM blob_uploads WHERE principal = ? RETURNING digest", [principal]).fetchall()
    return Removed(blobs=_release(cursor, (str(d) for (d,) in rows)))


def remove_operations(
    cursor: Connection, space_id: str | None, doomed: Callable[[scheduler_service_pb2.Operation], bool]
) -> int:
    """Deletes the operation records of a space (of every space for None) that ``doomed`` picks; returns how many.

    An operation names its cubes only inside its message, so each record is read to decide.
    """
    rows = cursor.execute(
        "SELECT space_id, operation_id, operation_pb FROM operations WHERE CAST(? AS VARCHAR) IS NULL OR space_id = ?",
        [space_id, space_id],
    ).fetchall()
    gone = [
        (str(space), str(operation_id))
        for space, operation_id, blob in rows
        if doomed(scheduler_service_pb2.Operation.FromString(blob))
    ]
    for space, operation_id in gone:
        cursor.execute("DELETE FROM operations WHERE space_id = ? AND operation_id = ?", [space, operation_id])
    return len(gone)


def release_orphan_blobs(cursor: Connection, registered_before: datetime) -> Removed:
    """Deletes the rows of blobs no cube or version names that were registered before the given time.

    For uploads never bound to a cube: a fresh one waits (``blob_grace_seconds``) for the cube that will name it.
    Upload records past that time go first: they no longer let anyone name the blob (``blob_access``).
    """
    cursor.execute("DELETE FROM blob_uploads WHERE upload_time < ?", [registered_before])
    rows = cursor.execute(
        f"DELETE FROM blobs WHERE create_time < ? AND {_UNREFERENCED} RETURNING digest", [registered_before]
    ).fetchall()
    return Removed(blobs=sorted(str(d) for (d,) in rows))


def forget_removed(context: Store, removed: Removed) -> None:
    """After the commit: drops from the derived stores and the disk what the removal took out of DuckDB."""
    for space_id, labels in removed.vectors.items():
        if space_id not in removed.spaces and labels:
            context.indexes.get(space_id).delete(labels)
            context.catalog.remove(space_id, labels)  # and the BM25 documents under those labels
    for space_id in removed.spaces:
        context.indexes.drop(space_id)
        context.catalog.drop_space(space_id)  # and the space's BM25 index
    for digest in removed.blobs:
        context.blobs.delete(digest)


def _named(operation: scheduler_service_pb2.Operation) -> set[str]:
    """The cubes an operation record names: its sources and the cube it made or changed."""
    return {*operation.request.names, operation.cube} - {""}


def _digests(cursor: Connection, live: str, versions: str, params: list[object]) -> set[str]:
    """Every blob some cubes name, in their live rows or any version: ``live`` and ``versions`` are the ``FROM``
    and ``WHERE`` of their rows of each table, each taking ``params``."""
    rows = cursor.execute(
        f"SELECT blob_digest FROM {live} AND blob_digest IS NOT NULL "
        f"UNION SELECT blob_digest FROM {versions} AND blob_digest IS NOT NULL",
        [*params, *params],
    ).fetchall()
    return {str(d) for (d,) in rows}


def _named_digests(cursor: Connection, space_id: str, cube_ids: Collection[str]) -> set[str]:
    """``_digests`` of those cubes of the space."""
    live, params = named_rows(cursor, "cubes", space_id, cube_ids)
    versions, _ = named_rows(cursor, "cube_versions", space_id, cube_ids)
    return _digests(cursor, live, versions, params)


def _release(cursor: Connection, digests: Iterable[str]) -> list[str]:
    """Deletes the rows of the blobs no remaining row names; returns their digests (files go after the commit)."""
    candidates = sorted(set(digests))
    if not candidates:
        return []
    rows = cursor.execute(
        f"DELETE FROM blobs WHERE digest IN {IDS} AND {_UNREFERENCED} RETURNING digest", [id_list(candidates)]
    ).fetchall()
    return sorted(str(d) for (d,) in rows)
