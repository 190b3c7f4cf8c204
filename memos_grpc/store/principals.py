"""Principals and their credentials in the database: the rows behind ``governance/identity.py``.

A principal is kept as its serialized message; a credential as the sha256 of its bearer token with its
description and times (the token itself is never stored). Every function runs on the cursor of the caller's
transaction; deciding whether a change is allowed, and keeping the in-memory copy that authenticates calls,
stays with the caller.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from memos_grpc._proto.memos.v1 import principal_pb2
from memos_grpc.store.cursor import PRINCIPALS
from memos_grpc.store.database import Connection
from memos_grpc.store.rows import set_timestamp


@dataclass(frozen=True)
class StoredCredential:
    """What authenticating with a credential needs: whose it is, its token's digest, and when it stops counting."""

    credential_id: str
    principal_id: str
    token_hash: str
    expire_time: datetime | None
    revoke_time: datetime | None


def principals(cursor: Connection) -> list[principal_pb2.Principal]:
    """Every principal of the vault."""
    return [
        principal_pb2.Principal.FromString(blob)
        for (blob,) in cursor.execute("SELECT principal_pb FROM principals").fetchall()
    ]


def credentials(cursor: Connection) -> list[StoredCredential]:
    """Every credential of the vault, revoked and expired ones included."""
    rows = cursor.execute(
        "SELECT credential_id, principal_id, token_hash, expire_time, revoke_time FROM credentials"
    ).fetchall()
    return [
        StoredCredential(str(cid), str(pid), str(digest), expire, revoke) for cid, pid, digest, expire, revoke in rows
    ]


def principal_exists(cursor: Connection, principal_id: str) -> bool:
    """Whether a principal of that id exists."""
    return cursor.execute("SELECT 1 FROM principals WHERE principal_id = ?", [principal_id]).fetchone() is not None


def principal_by_id(cursor: Connection, principal_id: str) -> principal_pb2.Principal | None:
    """The principal of that id, or None."""
    found = cursor.execute("SELECT principal_pb FROM principals WHERE principal_id = ?", [principal_id]).fetchone()
    return None if found is None else principal_pb2.Principal.FromString(found[0])


def insert_principal(
    cursor: Connection, principal_id: str, principal: principal_pb2.Principal, create_time: datetime
) -> None:
    """Adds a principal (the id must be free)."""
    cursor.changed(PRINCIPALS)
    cursor.execute(
        "INSERT INTO principals VALUES (?, ?, ?, ?)",
        [principal_id, principal.SerializeToString(), principal.admin, create_time],
    )


def update_principal(cursor: Connection, principal_id: str, principal: principal_pb2.Principal) -> None:
    """Replaces the stored message of a principal."""
    cursor.changed(PRINCIPALS)
    cursor.execute(
        "UPDATE principals SET principal_pb = ? WHERE principal_id = ?",
        [principal.SerializeToString(), principal_id],
    )


def delete_principal(cursor: Connection, principal_id: str) -> None:
    """Deletes a principal with its credentials (its roles are ``spaces.remove_roles_of``'s)."""
    cursor.changed(PRINCIPALS)
    cursor.execute("DELETE FROM credentials WHERE principal_id = ?", [principal_id])
    cursor.execute("DELETE FROM principals WHERE principal_id = ?", [principal_id])


def insert_credential(
    cursor: Connection,
    credential_id: str,
    principal_id: str,
    token_hash: str,
    description: str,
    create_time: datetime,
    expire_time: datetime | None,
) -> None:
    """Adds a credential of a principal, not revoked."""
    cursor.changed(PRINCIPALS)
    cursor.execute(
        "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, NULL)",
        [credential_id, principal_id, token_hash, description, create_time, expire_time],
    )


def credential(cursor: Connection, principal_id: str, credential_id: str) -> principal_pb2.Credential | None:
    """A principal's credential as a message without its name: description and times (revoke time if revoked)."""
    row = cursor.execute(
        "SELECT description, create_time, expire_time, revoke_time FROM credentials "
        "WHERE credential_id = ? AND principal_id = ?",
        [credential_id, principal_id],
    ).fetchone()
    if row is None:
        return None
    description, create_time, expire_time, revoke_time = row
    found = principal_pb2.Credential(description=description)
    set_timestamp(found.create_time, create_time)
    if expire_time is not None:
        set_timestamp(found.expire_time, expire_time)
    if revoke_time is not None:
        set_timestamp(found.revoke_time, revoke_time)
    return found


def revoke_credential(cursor: Connection, credential_id: str, revoke_time: datetime) -> None:
    """Marks a credential revoked as of ``revoke_time``."""
    cursor.changed(PRINCIPALS)
    cursor.execute("UPDATE credentials SET revoke_time = ? WHERE credential_id = ?", [revoke_time, credential_id])


def cubes_created_by(cursor: Connection, principal: str) -> dict[str, list[str]]:
    """The cubes a principal (by name) created, as ids per space, both in id order."""
    created: dict[str, list[str]] = defaultdict(list)
    for space_id, cube_id in cursor.execute(
        "SELECT space_id, cube_id FROM cubes WHERE access_owner = ? ORDER BY space_id, cube_id", [principal]
    ).fetchall():
        created[str(space_id)].append(str(cube_id))
    return dict(created)
