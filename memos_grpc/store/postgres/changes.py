"""The change log: what one server's committed writes changed that the servers sharing its database keep in memory.

Each write transaction that noted changes (``Cursor.changed``) appends one row per (kind, space) before it
commits, numbered on from the highest committed number; writes run one at a time under the write lock
(``database.WRITE_LOCK``), so numbers have no gaps and follow commit order. The same transaction notifies channel
``memos_changes`` with its last number, which PostgreSQL delivers at the commit: a wake-up for followers, which
then read the log from the last number they applied (a notification missed while a follower was disconnected
costs nothing but the wait until its next look).
"""

from __future__ import annotations

from dataclasses import dataclass

from memos_grpc.store.cursor import Cursor
from memos_grpc.store.postgres.cursor import PgCursor

#: The channel a committed change is announced on.
CHANNEL = "memos_changes"


@dataclass(frozen=True)
class Change:
    """One row of the change log."""

    number: int
    origin: str
    kind: str
    space_id: str
    put: tuple[int, ...]
    removed: tuple[int, ...]
    #: Random, per change: a number issued again after a failover that lost commits comes with another token.
    token: str = ""


def append_changes(cursor: PgCursor, origin: str) -> int:
    """Appends the changes noted on ``cursor`` in its own transaction, and notifies; returns the last number."""
    found = cursor.execute("SELECT coalesce(max(number), 0) FROM change_log").fetchone()
    number = int(found[0]) if found else 0
    for (kind, space_id), (put, removed) in cursor.changes.items():
        number += 1
        cursor.execute(
            "INSERT INTO change_log (number, origin, kind, space_id, put, removed) VALUES (?, ?, ?, ?, ?, ?)",
            [number, origin, kind, space_id, put, removed],
        )
    cursor.execute("SELECT pg_notify(?, ?)", [CHANNEL, str(number)])
    return number


def last_number(cursor: Cursor) -> int:
    """The highest number committed (0 for an empty log)."""
    found = cursor.execute("SELECT coalesce(max(number), 0) FROM change_log").fetchone()
    return int(found[0]) if found else 0


def last_change(cursor: Cursor) -> tuple[int, str]:
    """The highest number committed and its change's token ((0, "") for an empty log)."""
    found = cursor.execute("SELECT number, token::text FROM change_log ORDER BY number DESC LIMIT 1").fetchone()
    return (0, "") if found is None else (int(found[0]), str(found[1]))


def token_of(cursor: Cursor, number: int) -> str | None:
    """The token of the change numbered ``number``, or None if the log has no such change."""
    found = cursor.execute("SELECT token::text FROM change_log WHERE number = ?", [number]).fetchone()
    return None if found is None else str(found[0])


def changes_after(cursor: Cursor, number: int, limit: int) -> list[Change]:
    """Up to ``limit`` changes numbered after ``number``, in order."""
    rows = cursor.execute(
        "SELECT number, origin, kind, space_id, put, removed, token::text FROM change_log WHERE number > ? "
        "ORDER BY number LIMIT ?",
        [number, limit],
    ).fetchall()
    return [
        Change(
            int(n),
            str(origin),
            str(kind),
            str(space),
            tuple(int(x) for x in put),
            tuple(int(x) for x in removed),
            str(token),
        )
        for n, origin, kind, space, put, removed, token in rows
    ]
