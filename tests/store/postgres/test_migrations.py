"""The PostgreSQL schema's migrations on a real server: applied in order and once, by one of several replicas,
and never under a newer schema."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from postgres_support import drop_database, fresh_database

from memos_grpc import reasons
from memos_grpc.errors import FailedPreconditionError
from memos_grpc.store.postgres import migrations
from memos_grpc.store.postgres.database import connection_options
from memos_grpc.store.postgres.migrations import Migration, applied, migrate, schema_version


@pytest.fixture
def url() -> Iterator[str]:
    made = fresh_database(empty=True)
    yield made
    drop_database(made)


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(**connection_options(url))


def _tables(connection: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {str(name) for (name,) in rows}


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    numbers = [m.version for m in migrations.migrations()]
    assert numbers == list(range(1, schema_version() + 1))


def test_a_new_database_gets_every_migration_and_a_second_run_changes_nothing(url: str) -> None:
    with _connect(url) as connection:
        assert applied(connection) == []
        assert migrate(connection) == list(range(1, schema_version() + 1))
        assert applied(connection) == list(range(1, schema_version() + 1))
        assert {"cubes", "cube_versions", "spaces", "audit_events", "schema_migrations"} <= _tables(connection)
        assert migrate(connection) == []


def test_replicas_starting_together_apply_each_migration_once(url: str) -> None:
    ran: list[list[int]] = []
    failures: list[BaseException] = []
    start = threading.Barrier(3)

    def replica() -> None:
        try:
            with _connect(url) as connection:
                start.wait()
                ran.append(migrate(connection))
        except BaseException as exc:  # reported below, with the others' results
            failures.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert sorted(v for each in ran for v in each) == list(range(1, schema_version() + 1))


def test_a_schema_newer_than_the_code_is_refused(url: str) -> None:
    with _connect(url) as connection:
        migrate(connection)
        connection.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (%s, 'from_a_newer_release')", [schema_version() + 1]
        )
        with pytest.raises(FailedPreconditionError) as refused:
            migrate(connection)
    assert refused.value.reason == reasons.SCHEMA_TOO_NEW
    assert f"version {schema_version() + 1}" in refused.value.message


def test_a_failed_migration_leaves_the_database_at_the_last_good_one(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = migrations.migrations()
    broken = Migration(len(shipped) + 1, "broken", "CREATE TABLE half_done (x INTEGER); SELECT no_such_function();")
    monkeypatch.setattr(migrations, "migrations", lambda: (*shipped, broken))
    with _connect(url) as connection:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            migrate(connection)
        assert applied(connection) == [m.version for m in shipped]
        assert "half_done" not in _tables(connection)  # the step's transaction was rolled back whole


def test_a_database_of_the_first_schema_keeps_its_rows_when_migrated_to_the_newest(url: str) -> None:
    """An upgrade of a database in use: the rows written under migration 1 are all there under the newest schema,
    beside what the later migrations add."""
    with _connect(url) as connection:
        assert migrate(connection, target=1) == [1]
        assert "blob_chunks" not in _tables(connection)
        connection.execute(
            "INSERT INTO spaces (space_id, space_pb, create_time, etag) VALUES ('kept', '\\x0a04', now(), 'e1')"
        )
        connection.execute(
            "INSERT INTO cubes (space_id, cube_id, cube_pb, vec_id, type, state, source, semantic_type, priority, "
            "model, origin, tags, sensitivity_labels, labels, create_time, update_time, version, etag, "
            "provenance_id, blob_digest) VALUES ('kept', 'cache', '\\x0a05', 7, 2, 1, 0, 0, 0, 'm', '', "
            "'{warm}', '{}', '{\"k\": \"v\"}', now(), now(), 1, 'e2', 'p1', %s)",
            ["sha256:" + "ab" * 32],
        )
        connection.execute(
            "INSERT INTO blobs VALUES (%s, 4096, 'application/octet-stream', '2030-01-01T00:00:00Z')",
            ["sha256:" + "ab" * 32],
        )

        assert migrate(connection) == list(range(2, schema_version() + 1))
        assert {"blob_chunks", "spaces", "cubes", "blobs"} <= _tables(connection)
        assert connection.execute("SELECT space_id, etag FROM spaces").fetchall() == [("kept", "e1")]
        assert connection.execute("SELECT cube_id, vec_id, tags, labels, blob_digest FROM cubes").fetchall() == [
            ("cache", 7, ["warm"], {"k": "v"}, "sha256:" + "ab" * 32)
        ]
        assert connection.execute("SELECT digest, size_bytes FROM blobs").fetchall() == [("sha256:" + "ab" * 32, 4096)]
        issued = connection.execute("SELECT nextval('vec_ids')").fetchone()
        assert issued is not None and issued[0] > 7, "labels are issued above the ones the cubes hold"


def test_changes_logged_before_tokens_get_one_each(url: str) -> None:
    """Migration 6 gives every change a random token, those already in the log included (the follower checks the
    last change it applied by its token)."""
    with _connect(url) as connection:
        assert migrate(connection, target=5) == [1, 2, 3, 4, 5]
        for number in (1, 2, 3):
            connection.execute(
                "INSERT INTO change_log (number, origin, kind, space_id) VALUES (%s, 'a', 'cubes', 's')", [number]
            )
        assert migrate(connection, target=6) == [6]
        tokens = [str(token) for (token,) in connection.execute("SELECT token FROM change_log ORDER BY number")]
        connection.execute("INSERT INTO change_log (number, origin, kind, space_id) VALUES (4, 'a', 'cubes', 's')")
        fresh = connection.execute("SELECT token FROM change_log WHERE number = 4").fetchone()
    assert len(tokens) == 3 and fresh is not None
    assert len({*tokens, str(fresh[0])}) == 4
