"""Labels follow derivation: a cube made from others carries their sensitivity labels, and keeps carrying them.

A derived cube names what it was made from: an adapter its ``parametric.source_cubes`` (TransformCube to
parametric), a merged cube its ``merged_from`` (MergeCubes). It learnt what its sources hold, so a
redaction rule that hides a source must hide it too. Not covered here: an activation cache, which is
computed in place and so stays the cube whose labels it already has.

Everything here runs in the caller's write transaction, so a source's change and the changes it makes to
the cubes derived from it commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.store.database import Connection
from memos_grpc.store.named import named_rows
from memos_grpc.store.names import parse_cube_name
from memos_grpc.store.rows import CubeRow, next_version, vector_from_bytes
from memos_grpc.store.visibility import CubeVisibility


def source_names(cube: cube_pb2.MemCube) -> list[str]:
    """The names of the cubes ``cube`` was made from (none for a cube not derived from others)."""
    names = list(cube.merged_from)
    if cube.HasField("parametric"):
        names += cube.parametric.source_cubes
    return names


def add_labels(cube: cube_pb2.MemCube, labels: Iterable[str]) -> bool:
    """Adds those of ``labels`` the cube lacks, in sorted order after its own; whether it gained any."""
    missing = sorted(set(labels) - set(cube.sensitivity_labels))
    cube.sensitivity_labels.extend(missing)
    return bool(missing)


def sources_in_space(cube: cube_pb2.MemCube, space_id: str) -> dict[str, str]:
    """The cube ids (with the names as written) of the links of ``cube`` into ``space_id``: the links followed.

    Other names are provenance from elsewhere (an imported cube's sources, as they were named there).
    """
    found: dict[str, str] = {}
    for name in source_names(cube):
        try:
            named_space, cube_id = parse_cube_name(name)
        except InvalidArgumentError:
            continue
        if named_space == space_id:
            found[cube_id] = name
    return found


def inherit_labels(cursor: Connection, space_id: str, cube: cube_pb2.MemCube) -> bool:
    """Gives ``cube`` the labels of the cubes of its space it was made from, as they are now; whether it gained any."""
    ids = list(sources_in_space(cube, space_id))
    if not ids:
        return False
    where, params = named_rows(cursor, "cubes", space_id, ids)
    rows = cursor.execute(f"SELECT sensitivity_labels FROM {where}", params).fetchall()
    return add_labels(cube, (label for (labels,) in rows for label in labels))


def follow_labels(
    cursor: Connection, space_id: str, cube: cube_pb2.MemCube, before: Iterable[str], now: datetime
) -> list[CubeRow]:
    """What a change of ``cube`` (its labels were ``before``; the caller writes it) means along derivation links.

    The cube keeps its sources' labels, whatever the change (an update or a rollback does not drop what it
    inherited); and the labels it gained are added to every cube derived from it. Returns those derived
    cubes, each numbered as its next version, for the caller to write (``CubeWrite.follow_labels``).
    """
    inherit_labels(cursor, space_id, cube)
    if set(cube.sensitivity_labels) <= set(before):
        return []
    return propagate_labels(cursor, space_id, [cube], now)


def propagate_labels(
    cursor: Connection, space_id: str, changed: Sequence[cube_pb2.MemCube], now: datetime
) -> list[CubeRow]:
    """Adds the labels of ``changed`` to every cube of the space derived from them, directly or through other
    derived cubes; returns each cube that gains one, numbered as its next version, for the caller to write.

    The cubes of ``changed`` are the caller's to write and are never rewritten here (a derivation cycle leads
    back to labels they already hold). Expired and frozen cubes gain labels too: a label is a restriction, and
    a cube that may be served again, or unfrozen, must not come back without it.
    """
    own = {parse_cube_name(cube.name)[1] for cube in changed}
    pending: dict[str, frozenset[str]] = {cube.name: frozenset(cube.sensitivity_labels) for cube in changed}
    derived: dict[str, CubeRow] = {}
    while pending:
        name, labels = pending.popitem()
        for row in _derived_from(cursor, space_id, name, own):
            row = derived.setdefault(row.cube_id, row)  # the copy already gaining labels, if any
            if add_labels(row.cube, labels):
                pending[row.cube.name] = pending.get(row.cube.name, frozenset()) | frozenset(
                    row.cube.sensitivity_labels
                )
    # Labels only grow, so each cube is pending again only after it gained one: the walk ends.
    rows = list(derived.values())
    for row in rows:
        next_version(row.cube, row.cube.version, now)
    return rows


def _derived_from(cursor: Connection, space_id: str, name: str, skip: set[str]) -> list[CubeRow]:
    """The cubes of the space that name ``name`` among their sources (but those in ``skip``)."""
    # No column holds the links, which live in the message, where a name is its plain bytes. So a byte
    # search (over hex: DuckDB has no substring test for blobs) narrows the scan to the few messages that
    # hold the name, a text that quotes it or a longer name that starts with it included; only those are
    # parsed, and their links checked. About 0.8 ms per thousand cubes of the space.
    found = cursor.execute(
        "SELECT cube_id, cube_pb, vec_id, embedding FROM cubes WHERE space_id = ? AND contains(hex(cube_pb), ?)",
        [space_id, name.encode().hex().upper()],
    ).fetchall()
    rows = []
    for cube_id, cube_pb, vec_id, embedding in found:
        if cube_id in skip:
            continue
        cube = cube_pb2.MemCube.FromString(cube_pb)
        if name in source_names(cube):
            vector = None if embedding is None else vector_from_bytes(embedding)
            rows.append(CubeRow(space_id, str(cube_id), cube, None if vec_id is None else int(vec_id), vector))
    return rows


def hidden_sources(
    cursor: Connection,
    space_id: str,
    cube: cube_pb2.MemCube,
    now: datetime,
    visibility: CubeVisibility,
) -> list[str]:
    """The links of ``cube`` into ``space_id`` that name no live cube its writer may see (``visibility``).

    A link is followed by name (labels flow along it), so a link to a cube its writer may not see would
    tell them which labels that cube gains: links are checked when a client writes them.
    """
    wanted = sources_in_space(cube, space_id)
    if not wanted:
        return []
    visible_sql, visible_params = visibility.sql()
    where, params = named_rows(cursor, "cubes", space_id, list(wanted))
    found = {
        str(cube_id)
        for (cube_id,) in cursor.execute(
            f"SELECT cube_id FROM {where} AND (expire_time IS NULL OR expire_time > ?) AND {visible_sql}",
            [*params, now, *visible_params],
        ).fetchall()
    }
    return [name for cube_id, name in wanted.items() if cube_id not in found]


def drop_links(cube: cube_pb2.MemCube, names: Iterable[str]) -> None:
    """Removes the links to ``names`` from ``cube``."""
    dropped = set(names)
    kept = [name for name in cube.merged_from if name not in dropped]
    del cube.merged_from[:]
    cube.merged_from.extend(kept)
    if cube.HasField("parametric"):
        kept = [name for name in cube.parametric.source_cubes if name not in dropped]
        del cube.parametric.source_cubes[:]
        cube.parametric.source_cubes.extend(kept)
