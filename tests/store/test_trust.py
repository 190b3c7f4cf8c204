"""memos_grpc.store.trust on a real database: trust root versions kept as signed, the newest read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memos_grpc.errors import StorageError
from memos_grpc.store.database import Database
from memos_grpc.store.trust import insert_trust_root, newest_trust_root, newest_trust_root_version

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _newest(database: Database) -> tuple[bytes | None, int | None]:
    with database.read() as cursor:
        return newest_trust_root(cursor), newest_trust_root_version(cursor)


def _insert(database: Database, version: int, envelope: bytes) -> None:
    database.write(lambda cursor: insert_trust_root(cursor, version, envelope, T0 + timedelta(days=365), T0))


def test_there_is_none_before_the_first(database: Database) -> None:
    assert _newest(database) == (None, None)


def test_the_newest_version_is_the_one_read(database: Database) -> None:
    _insert(database, 2, b'{"version": 2}')
    _insert(database, 1, b'{"version": 1}')  # stored later, still older
    assert _newest(database) == (b'{"version": 2}', 2)
    _insert(database, 3, b'{"version": 3}')
    assert _newest(database) == (b'{"version": 3}', 3)


def test_a_version_is_stored_once(database: Database) -> None:
    _insert(database, 1, b'{"version": 1}')
    with pytest.raises(StorageError):
        _insert(database, 1, b'{"other": 1}')
    assert _newest(database) == (b'{"version": 1}', 1)
