"""Following the change log: this server's in-memory state kept in step with the other servers' writes.

Each server of a database keeps derived state in memory (the search catalog, the principals that authenticate
calls, the trust root); vectors and BM25 documents need no following, the database's rows being their index. Its
own writes update that state after each commit; the writes of the other servers reach it through the change log
(``changes.py``). The follower thread listens on the log's channel and, woken by a notification or after
``poll_seconds`` at the latest, reads every change after the last one it applied, in order, and hands each to the
handlers of its kind. A notification lost while its connection was down costs only that wait: the log, not the
notification, is what is applied. A change made by this server is skipped (its own commit applied it). Handlers
are idempotent: a change is applied again when the follower starts over from an earlier number.

Before each read the follower checks that the last change it applied is still in the log with the token it had.
After a failover that lost commits, their numbers are issued again to other changes; a server that had applied the
lost ones holds state the database no longer has, and would skip the new ones. It then stops following and
reports itself ``diverged`` (the server refuses calls, and health turns NOT_SERVING) until it is restarted, which
reloads everything from the database.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg

from memos_grpc.store.catalog import viewer_rules
from memos_grpc.store.cursor import CUBES, SPACE, SPACE_REMOVED
from memos_grpc.store.postgres.changes import CHANNEL, Change, changes_after, token_of
from memos_grpc.store.postgres.cursor import PgCursor
from memos_grpc.store.postgres.database import connection_options
from memos_grpc.store.repair import reload_catalog_entries
from memos_grpc.store.spaces import space_by_id, space_roles
from memos_grpc.store.store import Store

log = logging.getLogger(__name__)

#: How a follower's connection is named in ``pg_stat_activity``.
APPLICATION_NAME = "memos-change-follower"
#: Changes read from the log at a time.
_BATCH = 1000

Handler = Callable[[Change], None]


class ChangeFollower:
    """Applies the other servers' changes to this server's memory, from number ``start_after`` on."""

    def __init__(self, url: str, origin: str, start_after: tuple[int, str], poll_seconds: float) -> None:
        self._url = url
        self._origin = origin
        self._poll_seconds = poll_seconds
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._applied, self._applied_token = start_after
        #: Why this server stopped following ("" while it follows): see the module's docstring.
        self.diverged = ""
        self._on_diverged: list[Callable[[], None]] = []
        self._progress = threading.Condition()
        self._stop = threading.Event()
        #: Notified by ``close`` alone.
        self._stop_channel = f"memos_follower_stop_{origin}"
        self._thread = threading.Thread(target=self._run, name="change-follower", daemon=True)

    @property
    def applied(self) -> int:
        """The number of the last change applied (or found to be this server's own)."""
        with self._progress:
            return self._applied

    def subscribe(self, kind: str, handler: Handler) -> None:
        """Calls ``handler`` with each change of ``kind`` another server makes; before ``start``."""
        self._handlers[kind].append(handler)

    def when_diverged(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` once the follower finds the log is no longer the one it applied (at once if it has)."""
        with self._progress:
            self._on_diverged.append(callback)
            already = bool(self.diverged)
        if already:
            callback()

    def start(self) -> None:
        self._thread.start()

    def wait_for(self, number: int, timeout: float) -> bool:
        """Waits until the change numbered ``number`` is applied; False if ``timeout`` seconds pass first."""
        with self._progress:
            return self._progress.wait_for(lambda: self._applied >= number, timeout)

    def close(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._wake()
            self._thread.join()

    def _wake(self) -> None:
        """Ends the thread's wait for a notification now rather than at the end of the poll interval (its own
        channel, so no other server wakes)."""
        try:
            with psycopg.connect(**connection_options(self._url)) as connection:
                connection.execute("SELECT pg_notify(%s, '')", [self._stop_channel])
        except psycopg.OperationalError:
            pass  # the database is gone: the wait ends at the poll interval

    def _run(self) -> None:
        while not self._stop.is_set() and not self.diverged:
            try:
                options = connection_options(self._url)
                with psycopg.connect(**options, application_name=APPLICATION_NAME) as connection:
                    connection.execute(f"LISTEN {CHANNEL}".encode())
                    connection.execute(f'LISTEN "{self._stop_channel}"'.encode())
                    while not self._stop.is_set() and not self.diverged:
                        self._catch_up(connection)
                        # Woken by the next commit anywhere, or after the poll interval at the latest.
                        for _ in connection.notifies(timeout=self._poll_seconds, stop_after=1):
                            pass
            except psycopg.OperationalError as exc:
                log.warning("lost the change log's connection (%s); reconnecting", exc)
                self._stop.wait(self._poll_seconds)

    def _catch_up(self, connection: psycopg.Connection[Any]) -> None:
        while not self._stop.is_set():
            with connection.cursor() as raw:
                cursor = PgCursor(raw)
                if self._applied and token_of(cursor, self._applied) != self._applied_token:
                    self._diverge()
                    return
                batch = changes_after(cursor, self.applied, _BATCH)
            for change in batch:
                if change.origin != self._origin:
                    for handler in self._handlers.get(change.kind, ()):
                        try:
                            handler(change)
                        except Exception:
                            # The next change must not wait on this one; a restart reloads everything.
                            log.exception("applying change %d (%s) failed", change.number, change.kind)
                with self._progress:
                    self._applied, self._applied_token = change.number, change.token
                    self._progress.notify_all()
            if len(batch) < _BATCH:
                return

    def _diverge(self) -> None:
        with self._progress:
            self.diverged = (
                f"change {self._applied}, the last this server applied, is no longer in the database's change log: "
                "a failover lost commits this server had applied, so its memory no longer matches the database; "
                "restart it"
            )
            callbacks = list(self._on_diverged)
        log.error("stopped following the change log: %s", self.diverged)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a divergence callback failed")


def follow_store(follower: ChangeFollower, store: Store) -> None:
    """Subscribes the store's own derived state: the catalog."""
    follower.subscribe(CUBES, lambda change: _cubes_changed(store, change))
    follower.subscribe(SPACE, lambda change: _space_changed(store, change))
    follower.subscribe(SPACE_REMOVED, lambda change: _space_removed(store, change))


def _cubes_changed(store: Store, change: Change) -> None:
    if not store.catalog.has_space(change.space_id):
        _space_changed(store, change)
    # The database's rows are the vector index and the BM25 documents on PostgreSQL: only the catalog needs it.
    reload_catalog_entries(store, change.space_id, list(change.put))
    if change.removed:
        store.catalog.remove(change.space_id, change.removed)


def _space_changed(store: Store, change: Change) -> None:
    with store.database.read() as cursor:
        space = space_by_id(cursor, change.space_id)
        roles = space_roles(cursor, change.space_id)
    if space is None:
        return  # removed since; its own change follows
    if store.catalog.has_space(change.space_id):
        store.catalog.set_roles(change.space_id, roles)
        store.catalog.set_viewer_rules(change.space_id, viewer_rules(space))
    else:
        store.catalog.add_space(change.space_id, roles, viewer_rules(space))


def _space_removed(store: Store, change: Change) -> None:
    store.catalog.drop_space(change.space_id)
