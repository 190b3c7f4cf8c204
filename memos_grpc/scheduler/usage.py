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

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.errors import MemosError
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.cubes import catalog_entries
from memos_grpc.vault.database import Connection
from memos_grpc.vault.rows import CubeRow, set_timestamp

log = logging.getLogger(__name__)


class UsageRecorder:
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

        def apply(cursor: Connection) -> list[CubeRow]:
            touched: list[CubeRow] = []
            for (space_id, cube_id), (count, when) in pending.items():
                row = cursor.execute(
                    "SELECT cube_pb, vec_id FROM cubes WHERE space_id = ? AND cube_id = ?", [space_id, cube_id]
                ).fetchone()
                if row is None:
                    continue  # deleted since it was recalled
                cube = cube_pb2.MemCube.FromString(row[0])
                cube.usage_count += count
                set_timestamp(cube.last_use_time, when)
                cursor.execute(
                    "UPDATE cubes SET cube_pb = ? WHERE space_id = ? AND cube_id = ?",
                    [cube.SerializeToString(), space_id, cube_id],
                )
                touched.append(CubeRow(space_id, cube_id, cube, None if row[1] is None else int(row[1]), None))
            return touched

        def after_commit(touched: list[CubeRow]) -> None:
            for row in touched:
                context.catalog.put(row.space_id, catalog_entries([row]))

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
        self._thread.join(timeout=10)
        try:
            self.flush()
        except MemosError:
            log.exception("writing recall usage at shutdown failed")
