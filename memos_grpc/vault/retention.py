"""Retention: the sweeper that purges expired cubes and unreferenced blobs from every store.

Expired cubes already vanish from every read the moment they expire; the
sweeper removes them for good — rows, vectors, catalog entries — every
``sweep_interval_seconds``, then deletes blobs no cube references once they
are older than ``blob_grace_seconds`` (a fresh upload waits that long for the
cube that will name it).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.database import Connection
from memos_grpc.vault.rows import DELETE_VERSIONS_SQL

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

    def purge_cubes(cursor: Connection) -> list[tuple[str, int | None]]:
        expired = cursor.execute(
            "SELECT space_id, cube_id, vec_id FROM cubes WHERE expire_time <= ? LIMIT ?", [now, _BATCH]
        ).fetchall()
        for space_id, cube_id, _ in expired:
            cursor.execute("DELETE FROM cubes WHERE space_id = ? AND cube_id = ?", [space_id, cube_id])
            cursor.execute(DELETE_VERSIONS_SQL, [space_id, cube_id])
        return [(str(space_id), None if vec_id is None else int(vec_id)) for space_id, _, vec_id in expired]

    def forget_vectors(expired: list[tuple[str, int | None]]) -> None:
        by_space: dict[str, list[int]] = defaultdict(list)
        for space_id, vec_id in expired:
            if vec_id is not None:
                by_space[space_id].append(vec_id)
        for space_id, vec_ids in by_space.items():
            context.indexes.get(space_id).delete(vec_ids)
            context.catalog.remove(space_id, vec_ids)
            report.vectors += len(vec_ids)

    while True:
        expired = context.database.write(purge_cubes, forget_vectors)
        report.cubes += len(expired)
        if len(expired) < _BATCH:
            break

    cutoff = now - timedelta(seconds=context.settings.blob_grace_seconds)

    def purge_blobs(cursor: Connection) -> list[str]:
        orphans = cursor.execute(
            "SELECT digest FROM blobs WHERE create_time < ? AND digest NOT IN "
            "(SELECT blob_digest FROM cubes WHERE blob_digest IS NOT NULL "
            "UNION SELECT blob_digest FROM cube_versions WHERE blob_digest IS NOT NULL)",
            [cutoff],
        ).fetchall()
        for (digest,) in orphans:
            cursor.execute("DELETE FROM blobs WHERE digest = ?", [digest])
        return [str(d) for (d,) in orphans]

    def delete_files(digests: list[str]) -> None:
        for digest in digests:
            context.blobs.delete(digest)

    report.blobs = len(context.database.write(purge_blobs, delete_files))
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
