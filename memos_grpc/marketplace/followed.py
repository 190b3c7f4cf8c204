"""What a buyer's node knows of the marketplace logs it follows: their accepted checkpoints and freshness, and the
revocations and yanks read from them.

The follower (follower.py) verifies a log's checkpoint and hands it here with the events among its new entries
(``accept``); a licensed import's proof carries a cosigned checkpoint too, which counts for freshness as a sync's
would (``write_fresh`` in the import's transaction, ``saw_fresh`` once it committed). The license book (held.py)
asks whether a grant is revoked, a release yanked, and how fresh a log is. Everything is kept in memory and written
to the database before it is believed (``memos_grpc.store.followed_logs``).

Servers sharing a PostgreSQL database follow the logs together: a checkpoint is accepted only if the stored one is
still the one the follower extended (``accept``, decided in the write transaction), so no server rolls back what
another accepted, and each server reads what the others accepted when the change log says so (``reload``). What
is stored only grows (tree sizes, freshness, events), so memory takes the larger of what it holds and what it
reads. A failed sync is noted in the memory of the server that ran it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime

from memos_grpc.store import followed_logs
from memos_grpc.store.database import Connection
from memos_grpc.store.followed_logs import FOLLOWED_LOGS, NEVER, Followed, LogEvent
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.vault.context import VaultContext

log = logging.getLogger(__name__)


class FollowedLogs:
    """The followed logs' state; safe from any thread."""

    def __init__(self, context: VaultContext) -> None:
        self._context = context
        self._lock = threading.Lock()
        self._followed: dict[str, Followed] = {}
        #: (origin, ref) of every revoke and yank read, by kind.
        self._revoked: set[tuple[str, int]] = set()
        self._yanked: set[tuple[str, int]] = set()
        self.reload()
        if context.store.follower is not None:
            # Another server accepted a checkpoint (with its revocations and yanks) or saw a fresher one.
            context.store.follower.subscribe(FOLLOWED_LOGS, lambda _change: self.reload())

    def reload(self) -> None:
        """Takes up what the database holds: every server's accepted checkpoints, freshness and events."""
        with self._context.database.read() as cursor:
            logs = followed_logs.followed_logs(cursor)
            events = followed_logs.log_events(cursor)
        with self._lock:
            for stored in logs:
                self._merge(stored)
            for origin, kind, ref in events:
                (self._revoked if kind == "revoke" else self._yanked).add((origin, ref))

    def _merge(self, stored: Followed) -> None:
        """Keeps the larger of what memory holds and ``stored`` (the later fresh and sync times of either); the
        last sync error stays. Called under the lock."""
        known = self._followed.get(stored.origin)
        if known is None:
            self._followed[stored.origin] = stored
            return
        if stored.size > known.size:
            known.size, known.root, known.note, known.frontier = stored.size, stored.root, stored.note, stored.frontier
        known.fresh_time = max(known.fresh_time, stored.fresh_time)
        known.sync_time = max(known.sync_time, stored.sync_time)

    # -- what the license book asks ------------------------------------------------------------------------

    def revoked(self, origin: str, grant_index: int) -> bool:
        """Whether ``origin`` logged a revocation of the grant at ``grant_index`` that this node has read."""
        with self._lock:
            return (origin, grant_index) in self._revoked

    def yanked(self, origin: str, publish_index: int) -> bool:
        """Whether ``origin`` logged a yank of the release published at ``publish_index`` that this node has read."""
        with self._lock:
            return (origin, publish_index) in self._yanked

    def fresh_time(self, origin: str) -> datetime:
        """When a quorum last cosigned a checkpoint of ``origin`` this node accepted (the epoch if never)."""
        with self._lock:
            followed = self._followed.get(origin)
            return followed.fresh_time if followed is not None else NEVER

    # -- freshness from an import's proof -------------------------------------------------------------------

    @staticmethod
    def write_fresh(cursor: Connection, origin: str, fresh_time: datetime) -> None:
        """Inside an import's transaction: a fresh cosigned checkpoint seen in its proof counts as a sync's would
        (it is the same evidence)."""
        followed_logs.note_fresh_checkpoint(cursor, origin, fresh_time)

    def saw_fresh(self, origin: str, fresh_time: datetime) -> None:
        """Once the import that ``write_fresh`` was part of committed."""
        with self._lock:
            followed = self._followed.get(origin)
            if followed is None:
                self._followed[origin] = Followed(origin, 0, merkle.EMPTY_ROOT, "", [], fresh_time, NEVER)
            elif fresh_time > followed.fresh_time:
                followed.fresh_time = fresh_time

    # -- syncs ----------------------------------------------------------------------------------------------

    def followed(self, origin: str) -> Followed | None:
        """A copy of what this node accepted of ``origin``, or None."""
        with self._lock:
            found = self._followed.get(origin)
            return None if found is None else Followed(**found.__dict__)

    def all(self) -> list[Followed]:
        """Copies of every followed log, by origin."""
        with self._lock:
            return [Followed(**f.__dict__) for f in sorted(self._followed.values(), key=lambda f: f.origin)]

    def accept(
        self,
        checkpoint: Checkpoint,
        note: str,
        frontier: list[bytes],
        fresh_time: datetime,
        events: Sequence[LogEvent],
        extended: tuple[int, bytes],
    ) -> bool:
        """Records a checkpoint the follower verified, the frontier of its entries and the events among them.

        ``extended`` is the (size, root) the follower read the new entries from: the checkpoint is recorded only if
        it is still the stored one. False (nothing written): another server accepted another checkpoint since;
        ``reload`` and verify again from it.
        """
        now = self._context.clock()
        origin = checkpoint.origin

        def apply(cursor: Connection) -> bool:
            if followed_logs.accepted_tree(cursor, origin) != extended:
                return False
            followed_logs.accept_checkpoint(cursor, checkpoint, note, frontier, fresh_time, now, events)
            return True

        if not self._context.database.write(apply):
            return False
        with self._lock:
            for event in events:
                (self._revoked if event.kind == "revoke" else self._yanked).add((origin, event.ref))
            self._merge(Followed(origin, checkpoint.size, checkpoint.root, note, list(frontier), fresh_time, now))
            accepted = self._followed[origin]
            accepted.last_error_reason, accepted.last_error = "", ""
        for event in events:
            log.info("log %s entry %d: %s of entry %d", origin, event.index, event.kind, event.ref)
        return True

    def failed(self, origin: str, reason: str, message: str) -> None:
        """Notes a failed sync of ``origin`` (shown by ListFollowedLogs; the accepted state stays)."""
        with self._lock:
            followed = self._followed.get(origin)
            if followed is not None:
                followed.last_error_reason, followed.last_error = reason, message
