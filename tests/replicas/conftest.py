"""Fixtures of the tests of servers sharing one PostgreSQL database: a fresh, migrated database each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from postgres_support import drop_database, fresh_database


@pytest.fixture
def url() -> Iterator[str]:
    """A new database on the test server, at the current schema, dropped after the test."""
    made = fresh_database()
    yield made
    drop_database(made)
