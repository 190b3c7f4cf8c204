"""Which cubes the retention sweeper takes next: expired cubes to empty, and tombstones past their retention.

Each function names a batch of cubes, per space, for ``removal.expire_cubes`` or ``removal.remove_cubes`` to
take out in the same transaction; ``vault/retention.py`` decides the times and runs the batches.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from memos_grpc.store.database import Connection
from memos_grpc.store.removal import EXPIRED


def expired_cubes(cursor: Connection, now: datetime, limit: int) -> dict[str, list[str]]:
    """Up to ``limit`` cubes expired at ``now`` and not yet tombstones, as cube ids per space."""
    rows = cursor.execute(
        "SELECT space_id, cube_id FROM cubes WHERE expire_time <= ? AND state <> ? LIMIT ?", [now, EXPIRED, limit]
    ).fetchall()
    return _by_space(rows)


def tombstones_expired_before(cursor: Connection, before: datetime, limit: int) -> dict[str, list[str]]:
    """Up to ``limit`` tombstones whose cube expired at ``before`` or earlier, as cube ids per space."""
    rows = cursor.execute(
        "SELECT space_id, cube_id FROM cubes WHERE state = ? AND expire_time <= ? LIMIT ?", [EXPIRED, before, limit]
    ).fetchall()
    return _by_space(rows)


def _by_space(rows: list[tuple[object, object]]) -> dict[str, list[str]]:
    by_space: dict[str, list[str]] = defaultdict(list)
    for space_id, cube_id in rows:
        by_space[str(space_id)].append(str(cube_id))
    return dict(by_space)
