"""Riders (``store/group_commit``): work a call commits with the write that concludes it, on a real database."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from memos_grpc.store.database import Connection
from memos_grpc.store.group_commit import Database, Rider, riding


def _note(text: str) -> Rider:
    return Rider(lambda cursor: cursor.execute("INSERT INTO meta VALUES (?, 'rider')", [text]))


def _notes(database: Database) -> list[str]:
    with database.read() as cursor:
        rows = cursor.execute("SELECT key FROM meta WHERE value = 'rider' ORDER BY key").fetchall()
    return [str(key) for (key,) in rows]


def _put(key: str) -> Callable[[Connection], None]:
    def apply(cursor: Connection) -> None:
        cursor.execute("INSERT INTO meta VALUES (?, 'write')", [key])

    return apply


def test_a_concluding_write_commits_the_rider_in_its_transaction(database: Database) -> None:
    rider = _note("event")
    with riding(rider):
        database.write(_put("cube"), concludes=True)
    assert rider.taken and rider.committed
    assert _notes(database) == ["event"]


def test_only_a_concluding_write_on_the_calls_thread_takes_the_rider(database: Database) -> None:
    rider = _note("event")
    with riding(rider):
        database.write(_put("first"))
    assert not rider.taken and not rider.committed
    database.write(_put("outside"), concludes=True)
    assert not rider.taken and _notes(database) == []


def test_a_rider_is_taken_once(database: Database) -> None:
    rider = _note("event")
    with riding(rider):
        database.write(_put("a"), concludes=True)
        database.write(_put("b"), concludes=True)
    assert _notes(database) == ["event"]


def test_the_rider_and_the_write_commit_or_roll_back_together(database: Database) -> None:
    """A rider that fails takes the write with it: one transaction, not two."""

    def failing(cursor: Connection) -> None:
        raise RuntimeError("the event could not be written")

    rider = Rider(failing)
    with riding(rider), pytest.raises(RuntimeError):
        database.write(_put("cube"), concludes=True)
    assert not rider.committed
    with database.read() as cursor:
        assert cursor.execute("SELECT count(*) FROM meta WHERE key = 'cube'").fetchone() == (0,)

    def refused(cursor: Connection) -> None:
        raise RuntimeError("the write is refused")

    rider = _note("event")
    with riding(rider), pytest.raises(RuntimeError):
        database.write(refused, concludes=True)
    assert rider.taken and not rider.committed and _notes(database) == []
