"""memos_grpc.store.retention on a real database: the expired cubes and the old tombstones the sweeper takes next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from _stored_cubes import cube_row, insert_cubes

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.store.database import Database
from memos_grpc.store.retention import expired_cubes, tombstones_expired_before

T0 = datetime(2030, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
EXPIRED = cube_pb2.LIFECYCLE_STATE_EXPIRED


@pytest.fixture
def cubes(database: Database) -> Database:
    """At T0 + 2h: a1, a2 and b1 have expired, a3 expires later, a4 never; tombstones from T0 and T0 + 1h."""
    insert_cubes(
        database,
        [
            cube_row("a", "a1", created=T0, expires=T0 + HOUR),
            cube_row("a", "a2", created=T0, expires=T0 + 2 * HOUR),
            cube_row("a", "a3", created=T0, expires=T0 + 3 * HOUR),
            cube_row("a", "a4", created=T0),
            cube_row("b", "b1", created=T0, expires=T0 + HOUR),
            cube_row("b", "old", created=T0 - HOUR, expires=T0, state=EXPIRED),
            cube_row("c", "recent", created=T0, expires=T0 + HOUR, state=EXPIRED),
        ],
    )
    return database


def _sorted(batch: dict[str, list[str]]) -> dict[str, list[str]]:
    return {space_id: sorted(cube_ids) for space_id, cube_ids in sorted(batch.items())}


def test_expired_cubes_are_those_past_their_time_that_are_not_tombstones(cubes: Database) -> None:
    with cubes.read() as cursor:
        assert _sorted(expired_cubes(cursor, T0 + 2 * HOUR, 100)) == {"a": ["a1", "a2"], "b": ["b1"]}
        assert _sorted(expired_cubes(cursor, T0 + HOUR, 100)) == {"a": ["a1"], "b": ["b1"]}
        assert expired_cubes(cursor, T0, 100) == {}


def test_a_batch_holds_at_most_its_limit(cubes: Database) -> None:
    with cubes.read() as cursor:
        batch = expired_cubes(cursor, T0 + 2 * HOUR, 2)
    taken = [(space_id, cube_id) for space_id, cube_ids in batch.items() for cube_id in cube_ids]
    assert len(taken) == 2
    assert set(taken) <= {("a", "a1"), ("a", "a2"), ("b", "b1")}


def test_tombstones_go_once_their_cube_expired_before_the_retention_cutoff(cubes: Database) -> None:
    with cubes.read() as cursor:
        assert tombstones_expired_before(cursor, T0 - HOUR, 100) == {}
        assert tombstones_expired_before(cursor, T0, 100) == {"b": ["old"]}
        assert _sorted(tombstones_expired_before(cursor, T0 + HOUR, 100)) == {"b": ["old"], "c": ["recent"]}
        assert sum(len(ids) for ids in tombstones_expired_before(cursor, T0 + HOUR, 1).values()) == 1
