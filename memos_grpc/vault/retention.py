"""Retention: the sweeper that purges expired cubes and unreferenced blobs from every store.

Expired cubes already vanish from every read the moment they expire; the
sweeper removes them for good every ``sweep_interval_seconds``, as DeleteCube
does (``vault/removal.py``: rows, versions, operation records, vectors,
catalog and BM25 entries, blobs nothing names any more), then deletes blobs
no cube has named at all once they are older than ``blob_grace_seconds`` (a
fresh upload waits that long for the cube that will name it).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.database import Connection
from memos_grpc.vault.removal import Removed, forget_removed, release_orphan_blobs, remove_cubes

log = logging.getLogger(__name__)

_BATCH = 10_000


@dataclass
class SweepReport:
    cubes: int = 0
    vectors: int = 0
    blobs: int = 0


def sweep(context: VaultContext) -> SweepReport:
    """Purges what has expired; returns what it removed."""
    report = SweepReport()
    now = context.clock()

    def purge_cubes(cursor: Connection) -> Removed:
        expired = cursor.execute(
            "SELECT space_id, cube_id FROM cubes WHERE expire_time <= ? LIMIT ?", [now, _BATCH]
        ).fetchall()
        by_space: dict[str, list[str]] = defaultdict(list)
        for space_id, cube_id in expired:
            by_space[str(space_id)].append(str(cube_id))
        removed = Removed()
        for space_id, cube_ids in by_space.items():
            removed.add(remove_cubes(cursor, space_id, cube_ids))
        return removed

    while True:
        removed = context.database.write(purge_cubes, lambda removed: forget_removed(context, removed))
        report.cubes += removed.cubes
        report.vectors += removed.vector_count
        report.blobs += len(removed.blobs)
        if removed.cubes < _BATCH:
            break

    # Blobs no cube names, uploaded and never bound (a removal releases the blobs of its cubes itself).
    cutoff = now - timedelta(seconds=context.settings.blob_grace_seconds)
    orphans = context.database.write(
        lambda cursor: release_orphan_blobs(cursor, cutoff), lambda removed: forget_removed(context, removed)
    )
    report.blobs += len(orphans.blobs)
    return report


class Sweeper:
    """Runs ``sweep`` on a background thread until stopped."""

    def __init__(self, context: VaultContext) -> None:
        self._context = context
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention-sweeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._context.settings.sweep_interval_seconds):
            try:
                report = sweep(self._context)
            except Exception:  # the next round retries; reads already hide expired cubes
                log.exception("retention sweep failed")
                continue
            if report.cubes or report.blobs:
                log.info(
                    "retention sweep purged %d expired cubes (%d vectors) and %d unreferenced blobs",
                    report.cubes,
                    report.vectors,
                    report.blobs,
                )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
