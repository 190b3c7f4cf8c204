"""The PostgreSQL run leaves out only tests that never open a store (``memos_test_support.BACKEND_FREE``).

A listed module that starts a server, opens a database or runs a server process would pass on PostgreSQL without
ever being run there; this check fails first. tests/store is listed because its ``database`` fixture runs each
of its tests on both backends in every run, which this checks too.
"""

from __future__ import annotations

from pathlib import Path

from memos_test_support import BACKEND_FREE, TESTS

#: What opening a store looks like in a test module.
STORE_OPENERS = (
    "start_server",
    "ServerProcess",
    "MemosServer(",
    "Node(",
    "open_store",
    "DuckDatabase(",
    "PostgresDatabase(",
)


def _modules(entry: str) -> list[Path]:
    path = TESTS / entry
    return sorted(path.rglob("*.py")) if entry.endswith("/") else [path]


def test_every_listed_entry_exists() -> None:
    for entry in BACKEND_FREE:
        assert _modules(entry), f"{entry} names no test module"


def test_no_module_left_out_of_the_postgres_run_opens_a_store() -> None:
    opening = {
        str(module.relative_to(TESTS)): [word for word in STORE_OPENERS if word in module.read_text()]
        for entry in BACKEND_FREE
        if entry != "store/"
        for module in _modules(entry)
        if module != Path(__file__)
    }
    assert not {module: words for module, words in opening.items() if words}


def test_the_store_tests_run_on_both_backends() -> None:
    fixtures = (TESTS / "store" / "conftest.py").read_text()
    assert 'params=["duckdb", "postgres"]' in fixtures
