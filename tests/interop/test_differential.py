"""The differential run: mutants of the valid vectors (tests/interop/_mutations.py) through every implementation,
each of which must reach Python's verdict and reason on every one.

A bundle mutant runs whole and in 97-byte chunks. With Python alone, the run still checks Python: its command
answers every mutant as ``run_vector`` does in this process, never with ``BAD_REQUEST`` or ``INTERNAL_ERROR`` (every
mutant is a well-formed request, so either would be a bug), and a bundle's verdict does not depend on its chunking.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from memos_grpc import reasons
from memos_grpc.conformance import run_vector
from tests.interop._mutations import REQUEST_BUDGET, all_mutations
from tests.interop._runner import Implementation, load_vectors, mismatches

MUTATIONS = all_mutations(load_vectors())
#: (request id, source vector, mutant, chunk): a bundle mutant twice, as "<id>" whole and "<id>/chunk=97".
REQUESTS = [
    (m.case_id + suffix, m.source, m.vector, chunk)
    for m in MUTATIONS
    for suffix, chunk in ((("", 0), ("/chunk=97", 97)) if m.vector["kind"] == "bundle" else (("", 0),))
]
SOURCES = sorted({source for _, source, _, _ in REQUESTS})


def ask_all(implementation: Implementation) -> dict[str, dict[str, Any]]:
    answers = implementation.ask([{"id": i, "vector": v, "chunk": c} for i, _, v, c in REQUESTS])
    return {answer["id"]: answer for answer in answers}


@pytest.fixture(scope="session")
def python_verdicts(python_implementation: Implementation) -> dict[str, dict[str, Any]]:
    return ask_all(python_implementation)


@pytest.fixture(scope="session")
def verdicts(implementation: Implementation) -> dict[str, dict[str, Any]]:
    return ask_all(implementation)


def test_mutants_are_many_deterministic_and_of_every_operation() -> None:
    again = all_mutations(load_vectors())
    assert [(m.case_id, m.vector) for m in again] == [(m.case_id, m.vector) for m in MUTATIONS]
    assert 1000 <= len(REQUESTS) <= REQUEST_BUDGET, len(REQUESTS)
    operations = Counter(m.case_id.split("~")[1].rsplit("-", 1)[0] for m in MUTATIONS)
    for operation in ("flip", "truncate", "duplicate", "reorder", "reencode", "payload-duplicate", "payload-flip"):
        assert operations[operation] > 0 and operations[f"envelope-{operation}"] > 0, operation
    assert {m.vector["kind"] for m in MUTATIONS} == {"envelope", "bundle", "trust_root_update", "grant", "note"}


def test_mutants_reach_past_the_signature_check(python_verdicts: dict[str, dict[str, Any]]) -> None:
    """Re-signed payload mutants are judged on their grammar, not refused for their signature."""
    reasons = {python_verdicts[i]["reason"] for i, _, _, _ in REQUESTS if "~payload-" in i or "~envelope-payload-" in i}
    assert {"BUNDLE_STATEMENT_INVALID", "TRUST_ROOT_MALFORMED", "GRANT_MALFORMED"} <= reasons, reasons


@pytest.mark.parametrize("source", SOURCES)
def test_mutants_get_pythons_verdict(
    implementation_name: str,
    verdicts: dict[str, dict[str, Any]],
    python_verdicts: dict[str, dict[str, Any]],
    source: str,
) -> None:
    requests = [r for r in REQUESTS if r[1] == source]
    if implementation_name != "python":
        problems = mismatches(implementation_name, verdicts, {i: python_verdicts[i] for i, _, _, _ in requests})
        assert not problems, problems
        return
    for request_id, _, vector, chunk in requests:
        answer = verdicts[request_id]
        here = run_vector(vector, chunk)
        assert (answer["valid"], answer["reason"]) == (here["valid"], here["reason"]), request_id
        assert answer["reason"] not in (reasons.BAD_REQUEST, reasons.INTERNAL_ERROR), request_id
        assert (answer["reason"] == "") == answer["valid"], request_id
        if chunk:
            whole = verdicts[request_id.removesuffix(f"/chunk={chunk}")]
            assert whole == {**answer, "id": whole["id"]}, request_id
