"""Fixtures of the interop runner: one long-running ``memos-conformance`` process per implementation present.

The implementations are parametrized over those present (tests/interop/_runner.py says how each is found and what
``MEMOS_INTEROP_REQUIRE`` and known_failures.txt do); none is ever skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop._runner import Implementation, commands


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "implementation_name" in metafunc.fixturenames:
        metafunc.parametrize("implementation_name", list(commands()), scope="session")


@pytest.fixture(scope="session")
def processes() -> Iterator[dict[str, Implementation]]:
    started: dict[str, Implementation] = {}
    yield started
    for process in started.values():
        process.close()


@pytest.fixture(scope="session")
def implementation(implementation_name: str, processes: dict[str, Implementation]) -> Implementation:
    if implementation_name not in processes:
        processes[implementation_name] = Implementation(implementation_name, commands()[implementation_name])
    return processes[implementation_name]


@pytest.fixture(scope="session")
def python_implementation(processes: dict[str, Implementation]) -> Implementation:
    if "python" not in processes:
        processes["python"] = Implementation("python", commands()["python"])
    return processes["python"]
