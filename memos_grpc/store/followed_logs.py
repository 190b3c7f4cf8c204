"""The marketplace logs a buyer's node follows, as stored: ``followed_logs`` and ``followed_log_events`` (v12).

Per log origin: the checkpoint this node accepted last, the RFC 6962 frontier of its entries (the hashes
concatenated), when a quorum of witnesses last cosigned an accepted checkpoint, and when it synced; and the
revocations and yanks read from the log. Which checkpoint may be accepted is the follower's
(``memos_grpc.marketplace.follower``). Every write notes ``FOLLOWED_LOGS`` in the change log, so that the other
servers of a PostgreSQL database read what was accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from memos_grpc.store.database import Connection
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint

#: The change kind of a followed log's checkpoint, freshness or events.
FOLLOWED_LOGS = "followed_logs"
#: The sync time of a log never synced: it is known only from a proof an import came with.
NEVER: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Followed:
    """What this node accepted of one marketplace log."""

    origin: str
    size: int
    root: bytes
    note: str
    frontier: list[bytes]
    #: When a quorum of the policy's witnesses last cosigned an accepted checkpoint (the freshness clock).
    fresh_time: datetime
    sync_time: datetime
    last_error_reason: str = ""
    last_error: str = ""


@dataclass(frozen=True)
class LogEvent:
    """A revocation or a yank read from a followed log."""

    index: int
    kind: str
    subject: str
    ref: int


def followed_logs(cursor: Connection) -> list[Followed]:
    """Every followed log as accepted last, in no particular order (no sync error: those are not kept)."""
    rows = cursor.execute(
        "SELECT origin, tree_size, root, note, frontier, fresh_time, sync_time FROM followed_logs"
    ).fetchall()
    found = []
    for origin, size, root, note, frontier, fresh, synced in rows:
        blob = bytes(frontier)
        hashes = [blob[i : i + merkle.HASH_SIZE] for i in range(0, len(blob), merkle.HASH_SIZE)]
        found.append(Followed(str(origin), int(size), bytes(root), str(note), hashes, fresh, synced))
    return found


def accepted_tree(cursor: Connection, origin: str) -> tuple[int, bytes]:
    """(tree size, root) of the checkpoint of ``origin`` accepted last: (0, the empty root) before the first."""
    row = cursor.execute("SELECT tree_size, root FROM followed_logs WHERE origin = ?", [origin]).fetchone()
    return (0, merkle.EMPTY_ROOT) if row is None else (int(row[0]), bytes(row[1]))


def log_events(cursor: Connection) -> list[tuple[str, str, int]]:
    """(origin, kind, ref) of every revocation and yank read from the followed logs."""
    rows = cursor.execute("SELECT origin, kind, ref FROM followed_log_events").fetchall()
    return [(str(origin), str(kind), int(ref)) for origin, kind, ref in rows]


def note_fresh_checkpoint(cursor: Connection, origin: str, fresh_time: datetime) -> None:
    """Moves the log's freshness up to ``fresh_time`` (never back); a log not followed yet starts empty, unsynced."""
    cursor.execute(
        """
        INSERT INTO followed_logs VALUES (?, 0, ?, '', ?, ?, ?)
        ON CONFLICT (origin) DO UPDATE SET fresh_time = greatest(followed_logs.fresh_time, excluded.fresh_time)
        """,
        [origin, merkle.EMPTY_ROOT, b"", fresh_time, NEVER],
    )
    cursor.changed(FOLLOWED_LOGS)


def accept_checkpoint(
    cursor: Connection,
    checkpoint: Checkpoint,
    note: str,
    frontier: Sequence[bytes],
    fresh_time: datetime,
    sync_time: datetime,
    events: Sequence[LogEvent],
) -> None:
    """Records an accepted checkpoint (its signed ``note``) with its frontier, and the events read up to it.

    The freshness only moves up; an event read before is kept as it was.
    """
    origin = checkpoint.origin
    for event in events:
        cursor.execute(
            "INSERT INTO followed_log_events VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [origin, event.index, event.kind, event.subject, event.ref],
        )
    cursor.execute(
        """
        INSERT INTO followed_logs VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (origin) DO UPDATE SET tree_size = excluded.tree_size, root = excluded.root,
            note = excluded.note, frontier = excluded.frontier,
            fresh_time = greatest(followed_logs.fresh_time, excluded.fresh_time), sync_time = excluded.sync_time
        """,
        [origin, checkpoint.size, checkpoint.root, note, b"".join(frontier), fresh_time, sync_time],
    )
    cursor.changed(FOLLOWED_LOGS)
