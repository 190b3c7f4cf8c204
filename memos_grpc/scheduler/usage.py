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
from memos_grpc.store.catalog_rows import catalog_entries
from memos_grpc.store.database import IDS, SPLIT_LIST, Connection, id_list
from memos_grpc.store.rows import CubeRow, set_timestamp
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
                rows = cursor.execute(  # cubes deleted or emptied by expiry since they were recalled: not found
                    f"SELECT cube_id, cube_pb, vec_id FROM cubes WHERE space_id = ? AND cube_id IN {IDS} "
                    "AND state <> ?",
                    [space_id, id_list(uses), cube_pb2.LIFECYCLE_STATE_EXPIRED],
                ).fetchall()
                changed: list[CubeRow] = []
                for cube_id, cube_pb, vec_id in rows:
                    count, when = uses[cube_id]
                    cube = cube_pb2.MemCube.FromString(cube_pb)
                    cube.usage_count += count
                    set_timestamp(cube.last_use_time, when)
                    changed.append(CubeRow(space_id, cube_id, cube, None if vec_id is None else int(vec_id), None))
                if changed:
                    # One statement per space: DuckDB spends milliseconds on each UPDATE it runs, so a row
                    # at a time (executemany) cost a busy server a third of its CPU. The new cubes travel
                    # as one hex string, which binds at once (see ``id_list``).
                    cursor.execute(
                        f"UPDATE cubes SET cube_pb = unhex(new.pb) FROM (SELECT unnest({SPLIT_LIST}) AS id, "
                        f"unnest({SPLIT_LIST}) AS pb) AS new WHERE cubes.space_id = ? AND cubes.cube_id = new.id",
                        [id_list(r.cube_id for r in changed), id_list(r.serialized().hex() for r in changed), space_id],
                    )
                touched += changed
            return touched

        def after_commit(touched: list[CubeRow]) -> None:
            for space_id in by_space:
                rows = [row for row in touched if row.space_id == space_id]
                # Use changes no text: the catalog takes the new counts, the lexical index keeps what it has.
                context.catalog.put(space_id, catalog_entries(rows, reindex=False))

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
