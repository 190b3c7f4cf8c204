"""memos_grpc.store.witness on a real database: per log origin, the latest cosigned checkpoint replaces the last."""

from __future__ import annotations

from memos_grpc.store.database import Database
from memos_grpc.store.witness import WitnessedCheckpoint, record_cosigned, witnessed_checkpoint


def _latest(database: Database, origin: str) -> WitnessedCheckpoint | None:
    with database.read() as cursor:
        return witnessed_checkpoint(cursor, origin)


def test_a_log_has_no_checkpoint_before_the_first(database: Database) -> None:
    assert _latest(database, "example.com/log") is None


def test_the_latest_cosigned_checkpoint_replaces_the_last_of_its_log_only(database: Database) -> None:
    first = WitnessedCheckpoint("example.com/log", 5, b"\x01" * 32, "example.com/log\n5\nAQ==\n", 1_900_000_000)
    other = WitnessedCheckpoint("example.org/log", 2, b"\x02" * 32, "example.org/log\n2\nAg==\n", 1_900_000_001)
    later = WitnessedCheckpoint("example.com/log", 9, b"\x03" * 32, "example.com/log\n9\nAw==\n", 1_900_000_002)
    for checkpoint in (first, other):
        database.write(lambda cursor, c=checkpoint: record_cosigned(cursor, c))
    assert _latest(database, first.origin) == first

    database.write(lambda cursor: record_cosigned(cursor, later))

    assert _latest(database, first.origin) == later
    assert _latest(database, other.origin) == other
