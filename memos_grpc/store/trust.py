"""Trust root versions (``trust_roots``, schema v4): every version kept as the envelope that was signed; the
newest is in force."""

from __future__ import annotations

from datetime import datetime

from memos_grpc.store.cursor import TRUST
from memos_grpc.store.database import Connection


def newest_trust_root(cursor: Connection) -> bytes | None:
    """The signed envelope of the newest trust root version, or None before the first."""
    found = cursor.execute("SELECT envelope FROM trust_roots ORDER BY version DESC LIMIT 1").fetchone()
    return None if found is None else bytes(found[0])


def newest_trust_root_version(cursor: Connection) -> int | None:
    """The newest trust root version stored, or None before the first."""
    newest = cursor.execute("SELECT max(version) FROM trust_roots").fetchone()
    return None if newest is None or newest[0] is None else int(newest[0])


def insert_trust_root(
    cursor: Connection, version: int, envelope: bytes, expire_time: datetime, create_time: datetime
) -> None:
    """Keeps a trust root version as signed (a version stored already is a constraint error)."""
    cursor.changed(TRUST)
    cursor.execute("INSERT INTO trust_roots VALUES (?, ?, ?, ?)", [version, envelope, expire_time, create_time])
