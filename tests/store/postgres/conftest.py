"""Fixtures of the PostgreSQL backend's own tests: a fresh database on the test server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from postgres_support import drop_database, fresh_database


@pytest.fixture
def url() -> Iterator[str]:
    """A new, empty database (no schema: the tests here migrate it themselves), dropped after the test."""
    made = fresh_database(empty=True)
    yield made
    drop_database(made)
