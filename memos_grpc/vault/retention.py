"""Retention: the sweeper that empties expired cubes into tombstones, removes old tombstones, and purges blobs.

Expired cubes vanish from every read and search the moment they expire. The
sweeper, every ``sweep_interval_seconds``, takes them out in two steps
(docs/lifecycle.md, "Expiry"), each its own transaction:

1. ``expire_cubes`` (``store/removal.py``) replaces each expired cube by its
   tombstone, state EXPIRED: its versions, vectors, catalog and BM25 entries,
   operation records and the blobs nothing else names go as DeleteCube
   takes them, and the name, provenance id, expire time and its setter stay.
2. Tombstones older than ``expired_retention_seconds`` past their expire time
   go for good with ``remove_cubes``.

A crash between the steps (or inside the derived-store work after a commit)
leaves either the cube or its tombstone in DuckDB, and start-up repair brings
the vector indexes and the catalog in line with it. Last, blobs no cube has
named at all go once older than ``blob_grace_seconds`` (a fresh upload waits
that long for the cube that will name it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from memos_grpc.store.database import Connection
from memos_grpc.store.interface import CubeWrite
from memos_grpc.store.removal import Removed
from memos_grpc.store.retention import expired_cubes, tombstones_expired_before
from memos_grpc.vault.context import VaultContext

log = logging.getLogger(__name__)

_BATCH = 10_000


@dataclass
class SweepReport:
    """What one retention sweep removed: cubes expired into tombstones, tombstones, vectors and blobs deleted."""

    #: Expired cubes emptied into tombstones.
    expired: int = 0
    #: Tombstones removed for good.
    cubes: int = 0
    vectors: int = 0
    blobs: int = 0


def sweep(context: VaultContext) -> SweepReport:
    """Empties what has expired, removes tombstones past their retention; returns what it did."""
    report = SweepReport()
    now = context.clock()
    retention = timedelta(seconds=context.settings.expired_retention_seconds)

    def batches(
        due: Callable[[Connection, datetime, int], dict[str, list[str]]],
        at: datetime,
        remove: Callable[[CubeWrite, str, list[str]], Removed],
    ) -> None:
        def change(write: CubeWrite) -> Removed:
            removed = Removed()
            for space_id, cube_ids in due(write.cursor, at, _BATCH).items():
                removed.add(remove(write, space_id, cube_ids))
            return removed

        while True:
            removed = context.cube_store.write(change, now)
            report.expired += removed.expired
            report.cubes += removed.cubes
            report.vectors += removed.vector_count
            report.blobs += len(removed.blobs)
            if removed.expired + removed.cubes < _BATCH:
                return

    # Step 1: the content of expired cubes goes, a tombstone stays.
    batches(expired_cubes, now, lambda write, space_id, cube_ids: write.expire(space_id, cube_ids, retention))
    # Step 2: tombstones past their retention go too.
    batches(
        tombstones_expired_before,
        now - retention,
        lambda write, space_id, cube_ids: write.remove(space_id, cube_ids),
    )

    # Blobs no cube names, uploaded and never bound (a removal releases the blobs of its cubes itself).
    cutoff = now - timedelta(seconds=context.settings.blob_grace_seconds)
    orphans = context.cube_store.write(lambda write: write.release_orphan_blobs(cutoff), now)
    report.blobs += len(orphans.blobs)
    return report


#: The claim of the server that sweeps a database other servers share (``Database.claim``): one sweep at a time.
SWEEP_CLAIM = "retention/sweep"


class Sweeper:
    """Runs ``sweep`` on a background thread until stopped; of the servers sharing a database, only the one holding
    the sweep's claim (a sweep run twice would do nothing the second time, each step being a transaction that
    reads what it removes)."""

    def __init__(self, context: VaultContext) -> None:
        self._context = context
        self._stop = threading.Event()
        #: Rounds this sweeper woke for, and those of them it swept in (it held the claim).
        self.rounds = 0
        self.swept = 0
        self._counted = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="retention-sweeper", daemon=True)
        self._thread.start()

    def wait_for_rounds(self, rounds: int, timeout: float) -> bool:
        """Waits until the sweeper has woken ``rounds`` times; False if ``timeout`` seconds pass first."""
        with self._counted:
            return self._counted.wait_for(lambda: self.rounds >= rounds, timeout)

    def _count(self, swept: bool) -> None:
        with self._counted:
            self.rounds += 1
            self.swept += swept
            self._counted.notify_all()

    def _run(self) -> None:
        while not self._stop.wait(self._context.settings.sweep_interval_seconds):
            try:
                if not self._context.database.claim(SWEEP_CLAIM):
                    self._count(swept=False)
                    continue
                report = sweep(self._context)
            except Exception:  # the next round retries; reads and searches already hide expired cubes
                log.exception("retention sweep failed")
                self._count(swept=False)
                continue
            self._count(swept=True)
            if report.expired or report.cubes or report.blobs:
                log.info(
                    "retention sweep: %d expired cubes emptied into tombstones, %d tombstones removed, "
                    "%d vectors and %d blobs purged",
                    report.expired,
                    report.cubes,
                    report.vectors,
                    report.blobs,
                )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
