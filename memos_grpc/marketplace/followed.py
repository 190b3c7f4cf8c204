"""What a buyer's node knows of the marketplace logs it follows: their accepted checkpoints and freshness, and the
revocations and yanks read from them.

The follower (follower.py) verifies a log's checkpoint and hands it here with the events among its new entries
(``accept``); a licensed import's proof carries a cosigned checkpoint too, which counts for freshness as a sync's
would (``write_fresh`` in the import's transaction, ``saw_fresh`` once it committed). The license book (held.py)
asks whether a grant is revoked, a release yanked, and how fresh a log is. Everything is kept in memory and written
to the database before it is believed (``memos_grpc.store.followed_logs``).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from memos_grpc.store import followed_logs
from memos_grpc.store.database import Connection
from memos_grpc.store.followed_logs import NEVER, Followed, LogEvent
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.vault.context import VaultContext

log = logging.getLogger(__name__)


class FollowedLogs:
    """The followed logs' state; safe from any thread."""

    def __init__(self, context: VaultContext) -> None:
        self._context = context
        self._lock = threading.Lock()
        with context.database.read() as cursor:
            logs = followed_logs.followed_logs(cursor)
            events = followed_logs.log_events(cursor)
        self._followed: dict[str, Followed] = {followed.origin: followed for followed in logs}
        #: (origin, ref) of every revoke and yank read, by kind.
        self._revoked: set[tuple[str, int]] = set()
        self._yanked: set[tuple[str, int]] = set()
        for origin, kind, ref in events:
            (self._revoked if kind == "revoke" else self._yanked).add((origin, ref))

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
        self, checkpoint: Checkpoint, note: str, frontier: list[bytes], fresh_time: datetime, events: list[LogEvent]
    ) -> None:
        """Records a checkpoint the follower verified, the frontier of its entries and the events among them."""
        now = self._context.clock()
        origin = checkpoint.origin

        def apply(cursor: Connection) -> None:
            followed_logs.accept_checkpoint(cursor, checkpoint, note, frontier, fresh_time, now, events)

        self._context.database.write(apply)
        with self._lock:
            for event in events:
                (self._revoked if event.kind == "revoke" else self._yanked).add((origin, event.ref))
            previous = self._followed.get(origin)
            fresh = fresh_time if previous is None else max(previous.fresh_time, fresh_time)
            self._followed[origin] = Followed(
                origin, checkpoint.size, checkpoint.root, note, list(frontier), fresh, now
            )
        for event in events:
            log.info("log %s entry %d: %s of entry %d", origin, event.index, event.kind, event.ref)

    def failed(self, origin: str, reason: str, message: str) -> None:
        """Notes a failed sync of ``origin`` (shown by ListFollowedLogs; the accepted state stays)."""
        with self._lock:
            followed = self._followed.get(origin)
            if followed is not None:
                followed.last_error_reason, followed.last_error = reason, message
