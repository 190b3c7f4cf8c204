"""memos_grpc.store.followed_logs on a real database: an accepted checkpoint with its frontier, freshness that only
moves up (from a sync or an import's proof), and the revocations and yanks read, each once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memos_grpc.store import followed_logs
from memos_grpc.store.database import Database
from memos_grpc.store.followed_logs import NEVER, Followed, LogEvent
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint

T0 = datetime(2030, 1, 1, tzinfo=UTC)
ORIGIN = "market.example/log"


def _read(database: Database) -> tuple[list[Followed], list[tuple[str, str, int]]]:
    with database.read() as cursor:
        return followed_logs.followed_logs(cursor), sorted(followed_logs.log_events(cursor))


def _accept(
    database: Database, size: int, frontier: list[bytes], fresh: datetime, synced: datetime, events: list[LogEvent]
) -> Checkpoint:
    checkpoint = Checkpoint(
        ORIGIN, size, merkle.root_from_leaves([merkle.leaf_hash(b"%d" % i) for i in range(size)]), ()
    )
    note = checkpoint.body() + "\n- signed\n"
    database.write(
        lambda cursor: followed_logs.accept_checkpoint(cursor, checkpoint, note, frontier, fresh, synced, events)
    )
    return checkpoint


def test_nothing_is_followed_at_first(database: Database) -> None:
    assert _read(database) == ([], [])


def test_an_import_proof_starts_a_log_unsynced_and_only_moves_its_freshness_up(database: Database) -> None:
    database.write(lambda cursor: followed_logs.note_fresh_checkpoint(cursor, ORIGIN, T0))
    database.write(lambda cursor: followed_logs.note_fresh_checkpoint(cursor, ORIGIN, T0 - timedelta(hours=1)))
    assert _read(database) == ([Followed(ORIGIN, 0, merkle.EMPTY_ROOT, "", [], T0, NEVER)], [])
    database.write(lambda cursor: followed_logs.note_fresh_checkpoint(cursor, ORIGIN, T0 + timedelta(hours=1)))
    assert _read(database)[0][0].fresh_time == T0 + timedelta(hours=1)


def test_an_accepted_checkpoint_keeps_its_frontier_and_events_once(database: Database) -> None:
    frontier = [bytes([n]) * merkle.HASH_SIZE for n in (1, 2, 3)]
    revoke, yank = LogEvent(5, "revoke", "sha256:" + "a" * 64, 2), LogEvent(6, "yank", "sha256:" + "b" * 64, 0)
    first = _accept(database, 7, frontier, T0, T0 + timedelta(seconds=5), [revoke, yank])
    note = first.body() + "\n- signed\n"
    assert _read(database) == (
        [Followed(ORIGIN, 7, first.root, note, frontier, T0, T0 + timedelta(seconds=5))],
        [(ORIGIN, "revoke", 2), (ORIGIN, "yank", 0)],
    )
    # A later sync: the events read again stay once, the older cosignature time does not move freshness back.
    later = _accept(database, 8, frontier[:1], T0 - timedelta(days=1), T0 + timedelta(hours=1), [revoke])
    logs, events = _read(database)
    assert logs == [
        Followed(ORIGIN, 8, later.root, later.body() + "\n- signed\n", frontier[:1], T0, T0 + timedelta(hours=1))
    ]
    assert events == [(ORIGIN, "revoke", 2), (ORIGIN, "yank", 0)]
