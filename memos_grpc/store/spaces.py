"""Spaces and their roles in the database, and the search catalog's copy of both after a commit.

A space is kept as its serialized message with its etag, owner and access-policy etag; a role as one
``space_roles`` row per member. The catalog holds each space's roles and its redaction rules for viewers, so
a search decides visibility without a query: the ``*_committed``-style functions below bring it in step, and
the components call them from ``after_commit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from memos_grpc._proto.memos.v1 import access_pb2, space_pb2
from memos_grpc.store.catalog import SearchCatalog, viewer_rules
from memos_grpc.store.cubes import LIVE
from memos_grpc.store.cursor import SPACE, KeyTaken
from memos_grpc.store.database import Connection


class SpaceIdTaken(Exception):
    """``insert_space`` found the id taken. The statement failed, so its transaction can only roll back."""


@dataclass(frozen=True)
class PolicyState:
    """What a space's access-policy etag is made of: the stored one ("" before any change) and its creation."""

    etag: str
    create_time: datetime


def space_exists(cursor: Connection, space_id: str) -> bool:
    """Whether the space exists."""
    return cursor.execute("SELECT 1 FROM spaces WHERE space_id = ?", [space_id]).fetchone() is not None


def insert_space(cursor: Connection, space_id: str, space: space_pb2.Space, create_time: datetime, owner: str) -> None:
    """Adds a space with ``owner`` as its one OWNER; raises ``SpaceIdTaken`` if the id is taken."""
    cursor.changed(SPACE, space_id)
    try:
        cursor.execute(
            "INSERT INTO spaces (space_id, space_pb, create_time, etag, owner) VALUES (?, ?, ?, ?, ?)",
            [space_id, space.SerializeToString(), create_time, space.etag, owner],
        )
        cursor.execute("INSERT INTO space_roles VALUES (?, ?, ?)", [space_id, owner, access_pb2.ROLE_OWNER])
    except KeyTaken as exc:
        raise SpaceIdTaken(space_id) from exc


def space_by_id(cursor: Connection, space_id: str) -> space_pb2.Space | None:
    """The stored space (without its cube count), or None."""
    row = cursor.execute("SELECT space_pb FROM spaces WHERE space_id = ?", [space_id]).fetchone()
    return None if row is None else space_pb2.Space.FromString(row[0])


def update_space(cursor: Connection, space_id: str, space: space_pb2.Space) -> None:
    """Replaces the stored message and etag of a space."""
    cursor.changed(SPACE, space_id)
    cursor.execute(
        "UPDATE spaces SET space_pb = ?, etag = ? WHERE space_id = ?",
        [space.SerializeToString(), space.etag, space_id],
    )


def space_with_cube_count(cursor: Connection, space_id: str, now: datetime) -> space_pb2.Space | None:
    """The space with ``cube_count`` set to its cubes live at ``now``, or None."""
    row = cursor.execute(
        f"SELECT space_pb, (SELECT count(*) FROM cubes WHERE space_id = ? AND {LIVE}) FROM spaces WHERE space_id = ?",
        [space_id, now, space_id],
    ).fetchone()
    if row is None:
        return None
    space = space_pb2.Space.FromString(row[0])
    space.cube_count = int(row[1])
    return space


def spaces_after(
    cursor: Connection, after: str, member: str | None, now: datetime, limit: int
) -> list[tuple[str, space_pb2.Space]]:
    """Up to ``limit`` spaces with ids after ``after``, in id order, each with its live cube count.

    With ``member``, only the spaces that principal holds a role in.
    """
    rows = cursor.execute(
        "SELECT s.space_id, s.space_pb, "
        f"(SELECT count(*) FROM cubes c WHERE c.space_id = s.space_id AND {LIVE}) "
        "FROM spaces s WHERE s.space_id > ? AND (CAST(? AS VARCHAR) IS NULL OR EXISTS ("
        "SELECT 1 FROM space_roles r WHERE r.space_id = s.space_id AND r.principal = ?)) "
        "ORDER BY s.space_id LIMIT ?",
        [now, after, member, member, limit],
    ).fetchall()
    spaces = []
    for space_id, blob, count in rows:
        space = space_pb2.Space.FromString(blob)
        space.cube_count = int(count)
        spaces.append((str(space_id), space))
    return spaces


def space_etag(cursor: Connection, space_id: str) -> str | None:
    """The space's etag, or None if there is no such space."""
    row = cursor.execute("SELECT etag FROM spaces WHERE space_id = ?", [space_id]).fetchone()
    return None if row is None else str(row[0])


def live_cube_count(cursor: Connection, space_id: str, now: datetime) -> int:
    """How many cubes of the space are live at ``now`` (expired ones and tombstones do not count)."""
    row = cursor.execute(f"SELECT count(*) FROM cubes WHERE space_id = ? AND {LIVE}", [space_id, now]).fetchone()
    return int(row[0]) if row else 0


def policy_state(cursor: Connection, space_id: str) -> PolicyState | None:
    """The stored access-policy etag and creation time of a space, or None if there is no such space."""
    row = cursor.execute("SELECT policy_etag, create_time FROM spaces WHERE space_id = ?", [space_id]).fetchone()
    return None if row is None else PolicyState("" if row[0] is None else str(row[0]), row[1])


def space_roles(cursor: Connection, space_id: str) -> dict[str, int]:
    """Each member's role in a space, highest roles first and then by principal."""
    rows = cursor.execute(
        "SELECT principal, role FROM space_roles WHERE space_id = ? ORDER BY role DESC, principal", [space_id]
    ).fetchall()
    return {str(principal): int(role) for principal, role in rows}


def replace_roles(cursor: Connection, space_id: str, roles: Mapping[str, int], policy_etag: str) -> None:
    """Makes ``roles`` the whole access policy of a space, under a new policy etag."""
    cursor.changed(SPACE, space_id)
    cursor.execute("DELETE FROM space_roles WHERE space_id = ?", [space_id])
    for principal, role in roles.items():
        cursor.execute("INSERT INTO space_roles VALUES (?, ?, ?)", [space_id, principal, role])
    cursor.execute("UPDATE spaces SET policy_etag = ? WHERE space_id = ?", [policy_etag, space_id])


def remove_roles_of(cursor: Connection, principal: str) -> int:
    """Deletes every role a principal (by name) holds; returns how many there were (one a space at most)."""
    held = [
        str(r[0])
        for r in cursor.execute("SELECT space_id FROM space_roles WHERE principal = ?", [principal]).fetchall()
    ]
    for space_id in held:
        cursor.changed(SPACE, space_id)
    cursor.execute("DELETE FROM space_roles WHERE principal = ?", [principal])
    return len(held)


def spaces_owned_alone(cursor: Connection, principal: str) -> list[str]:
    """The ids of the spaces whose only OWNER is ``principal``, in id order."""
    rows = cursor.execute(
        "SELECT space_id FROM space_roles r WHERE principal = ? AND role = ? AND NOT EXISTS ("
        "SELECT 1 FROM space_roles o WHERE o.space_id = r.space_id AND o.role = ? AND o.principal <> ?) "
        "ORDER BY space_id",
        [principal, access_pb2.ROLE_OWNER, access_pb2.ROLE_OWNER, principal],
    ).fetchall()
    return [str(space_id) for (space_id,) in rows]


# -- the catalog, after the commit ---------------------------------------------------


def space_created(catalog: SearchCatalog, space_id: str, owner: str, space: space_pb2.Space) -> None:
    """A committed new space: the catalog learns its owner and its redaction rules for viewers."""
    catalog.add_space(space_id, {owner: access_pb2.ROLE_OWNER}, viewer_rules(space))


def space_updated(catalog: SearchCatalog, space_id: str, space: space_pb2.Space) -> None:
    """A committed change of a space: the catalog takes its redaction rules for viewers again."""
    catalog.set_viewer_rules(space_id, viewer_rules(space))


def roles_committed(catalog: SearchCatalog, space_id: str, roles: Mapping[str, int]) -> None:
    """A committed access policy: the catalog's roles of the space become ``roles``."""
    catalog.set_roles(space_id, roles)


def principal_removed(catalog: SearchCatalog, principal: str) -> None:
    """A principal's roles are gone from the database: the catalog drops them from every space."""
    catalog.forget_principal(principal)
