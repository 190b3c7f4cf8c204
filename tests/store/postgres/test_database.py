"""The PostgreSQL backend's database on a real server: servers sharing it, claims, and a writer that reconnects."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from memos_grpc import reasons
from memos_grpc.errors import FailedPreconditionError, StorageError
from memos_grpc.store.cursor import Cursor
from memos_grpc.store.postgres.database import PostgresDatabase, connection_options


def _put(cursor: Cursor, key: str, value: str) -> None:
    cursor.execute("INSERT INTO meta (key, value) VALUES (?, ?)", [key, value])


def _get(database: PostgresDatabase, key: str) -> str | None:
    with database.read() as cursor:
        row = cursor.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def test_servers_share_a_database_but_not_with_its_exclusive_user(url: str) -> None:
    first = PostgresDatabase(url, group_max=4)
    second = PostgresDatabase(url, group_max=4)
    try:
        first.write(lambda cursor: _put(cursor, "written", "by the first"))
        assert _get(second, "written") == "by the first"
        # A copy into the database (memos-grpc migrate) must be its only user: refused while servers run.
        with pytest.raises(FailedPreconditionError) as refused:
            PostgresDatabase(url, group_max=4, exclusive=True)
        assert refused.value.reason == reasons.DATABASE_IN_USE
        assert "stop every one of them" in refused.value.message
    finally:
        first.close()
        second.close()
    copying = PostgresDatabase(url, group_max=4, exclusive=True)
    try:
        with pytest.raises(FailedPreconditionError) as waiting:
            PostgresDatabase(url, group_max=4)
        assert waiting.value.reason == reasons.DATABASE_IN_USE
        assert "migrate is copying" in waiting.value.message
    finally:
        copying.close()
    third = PostgresDatabase(url, group_max=4)
    try:
        assert _get(third, "written") == "by the first"
    finally:
        third.close()


def test_the_writer_reconnects_when_the_database_ends_its_session(url: str) -> None:
    database = PostgresDatabase(url, group_max=4)
    try:
        database.write(lambda cursor: _put(cursor, "before", "1"))
        # As a database restart or a failover would: every session of this server's writer ends.
        with psycopg.connect(**connection_options(url)) as admin:
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            ).fetchone()
        assert ended is not None and ended[0] == 2  # the writer's session and the one holding its claims
        database.write(lambda cursor: _put(cursor, "after", "2"))
        assert (_get(database, "before"), _get(database, "after")) == ("1", "2")
        # The new session holds the server's lock again: a copy into the database is refused.
        with pytest.raises(FailedPreconditionError):
            PostgresDatabase(url, group_max=4, exclusive=True)
    finally:
        database.close()


def test_a_failed_write_changes_nothing_and_the_next_one_commits(url: str) -> None:
    database = PostgresDatabase(url, group_max=4)
    try:

        def half_then_fail(cursor: Cursor) -> None:
            _put(cursor, "half", "x")
            cursor.execute("SELECT no_such_function()")

        with pytest.raises(Exception, match="no_such_function"):
            database.write(half_then_fail)
        database.write(lambda cursor: _put(cursor, "next", "y"))
        assert (_get(database, "half"), _get(database, "next")) == (None, "y")
    finally:
        database.close()


def test_an_unreachable_database_is_named_in_a_storage_error(tmp_path: Path) -> None:
    missing = f"host={tmp_path} dbname=nowhere user=postgres"  # no server listens on a socket there
    with pytest.raises(StorageError) as refused:
        PostgresDatabase(missing, group_max=4)
    assert refused.value.reason == reasons.STORAGE_FAILURE
    assert "cannot open the PostgreSQL database of postgres_url" in refused.value.message


def test_a_job_is_claimed_by_one_server_until_it_stops(url: str) -> None:
    first = PostgresDatabase(url, group_max=4)
    second = PostgresDatabase(url, group_max=4)
    try:
        assert first.claim("retention-sweep")
        assert not second.claim("retention-sweep")
        assert first.claim("retention-sweep")  # held: asked again, still this server's
        assert second.claim("another job")
        assert second.server_alive(first.origin) and first.server_alive(second.origin)
    finally:
        first.close()
    try:
        assert not second.server_alive(first.origin)
        assert second.claim("retention-sweep")
    finally:
        second.close()


def test_a_claim_whose_session_ended_passes_to_another_server(url: str) -> None:
    first = PostgresDatabase(url, group_max=4)
    second = PostgresDatabase(url, group_max=4)
    try:
        assert first.claim("retention-sweep")
        with psycopg.connect(**connection_options(url)) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN (SELECT pid FROM pg_locks "
                "WHERE locktype = 'advisory' AND objid = (hashtextextended('memos-claim:retention-sweep', 0) "
                "& 4294967295)::oid)"
            )
        # The first server learns on its next ask that it lost the claim; the second takes it over.
        assert not first.claim("retention-sweep")
        assert second.claim("retention-sweep")
        assert not first.claim("retention-sweep")
        # The first server's own liveness claim came back with its new session.
        assert second.server_alive(first.origin)
    finally:
        first.close()
        second.close()
