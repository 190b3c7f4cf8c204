"""Every vector of testdata/vectors/ through every implementation of ``memos-conformance`` present.

Bundles run whole and in 512-, 97- and 1-byte chunks, other kinds once. Each implementation answers all the cases in
one batch on one process; the tests then read its answers. Which implementations run, and what
known_failures.txt means, is in conftest.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop._runner import KNOWN_FAILURES, Implementation, commands, mismatches, vector_cases

CASES = vector_cases()


@pytest.fixture(scope="session")
def vector_answers(implementation: Implementation) -> dict[str, dict[str, Any]]:
    requests = [{"id": case_id, "vector": vector, "chunk": chunk} for case_id, vector, chunk in CASES]
    return {answer["id"]: answer for answer in implementation.ask(requests)}


@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_vector(implementation_name: str, vector_answers: dict[str, dict[str, Any]], case_id: str) -> None:
    vector = next(v for c, v, _ in CASES if c == case_id)
    problems = mismatches(implementation_name, vector_answers, {case_id: vector["expected"]})
    assert not problems, (problems, vector["description"])


def test_known_failures_name_real_cases() -> None:
    """A line naming no implementation, or no case of one present, would never be checked, so never removed.

    Lines of an implementation not built here are left alone: the cases they name can change (the mutant cap) without
    this run being able to tell which still fail.
    """
    from tests.interop.test_differential import REQUESTS
    from tests.interop.test_protocol import PROTOCOL_CASES

    ids = {c[0] for c in CASES} | {r[0] for r in REQUESTS} | {f"protocol:{name}" for name in PROTOCOL_CASES}
    assert len(ids) > len(CASES) > 400
    present = commands()
    stale = [
        f"{impl} {case}"
        for impl, case in KNOWN_FAILURES
        if impl not in ("go", "typescript") or (impl in present and case not in ids)
    ]
    assert not stale, f"known_failures.txt lines that name no case of go or typescript: {stale}"
