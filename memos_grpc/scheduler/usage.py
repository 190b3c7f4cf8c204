"""Usage accounting: each recall's use of its cubes, counted in memory and written in batches.

A recall must not cost a write per cube: uses are added up per cube and a
background thread writes them every ``usage_flush_seconds`` in one
transaction (usage count and last-use time, in the cube's current row; use
is bookkeeping, not a change of content, so it makes no new version). What
was not yet written when the process dies is lost: at most one interval of
counts.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from memos_grpc.errors import MemosError
from memos_grpc.settings import THREAD_STOP_SECONDS
from memos_grpc.store.database import Connection
from memos_grpc.store.rows import CubeRow, set_timestamp
from memos_grpc.store.usage import countable_cubes, overwrite_cubes, uses_committed
from memos_grpc.vault.context import VaultContext

log = logging.getLogger(__name__)


class UsageRecorder:
    """Adds up each cube's recall uses in memory and writes them in batches from its own thread.

    One per vault, started on construction; ``close`` stops the thread and writes the rest and must run before
    the database closes. ``record`` is safe from any thread. Counts not yet written when the process dies are lost.
    """

    def __init__(self, context: VaultContext) -> None:
        self._context = context
        self._pending: dict[tuple[str, str], tuple[int, datetime]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usage-flusher", daemon=True)
        self._thread.start()

    def record(self, space_id: str, cube_ids: list[str], when: datetime) -> None:
        with self._lock:
            for cube_id in cube_ids:
                count, _ = self._pending.get((space_id, cube_id), (0, when))
                self._pending[(space_id, cube_id)] = (count + 1, when)

    def flush(self) -> int:
        """Writes the uses counted so far in one transaction; returns how many cubes it touched."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        context = self._context

        by_space: dict[str, dict[str, tuple[int, datetime]]] = {}
        for (space_id, cube_id), use in pending.items():
            by_space.setdefault(space_id, {})[cube_id] = use

        def apply(cursor: Connection) -> list[CubeRow]:
            touched: list[CubeRow] = []
            for space_id, uses in by_space.items():
                changed = countable_cubes(cursor, space_id, list(uses))
                for row in changed:
                    count, when = uses[row.cube_id]
                    row.cube.usage_count += count
                    set_timestamp(row.cube.last_use_time, when)
                overwrite_cubes(cursor, space_id, changed)
                touched += changed
            return touched

        def after_commit(touched: list[CubeRow]) -> None:
            for space_id in by_space:
                uses_committed(context.catalog, space_id, [row for row in touched if row.space_id == space_id])

        return len(context.database.write(apply, after_commit))

    def _run(self) -> None:
        while not self._stop.wait(self._context.settings.usage_flush_seconds):
            try:
                self.flush()
            except MemosError:
                log.exception("writing recall usage failed; those counts are lost")

    def close(self) -> None:
        """Stops the thread and writes what is left (before the database closes)."""
        self._stop.set()
        self._thread.join(timeout=THREAD_STOP_SECONDS)
        try:
            self.flush()
        except MemosError:
            log.exception("writing recall usage at shutdown failed")
