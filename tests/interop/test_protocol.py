"""The conformance protocol itself, on every implementation: bad requests are answered, in order, and change nothing.

Each line gets exactly one answer; a line that is not a request, or a vector that cannot be read, is ``BAD_REQUEST``;
a kind the implementation does not run is ``UNSUPPORTED_KIND``; and the process answers the next request as if
nothing had happened.
"""

from __future__ import annotations

import json
from typing import Any

from tests.interop._runner import VECTORS, Implementation, mismatches

BUNDLE = json.loads((VECTORS / "bundle-valid.json").read_text())
ENVELOPE = json.loads((VECTORS / "envelope-valid-single.json").read_text())
BAD = {"valid": False, "reason": "BAD_REQUEST"}


def request(case: str, vector: Any, chunk: Any = 0) -> bytes:
    return json.dumps({"id": f"protocol:{case}", "vector": vector, "chunk": chunk}).encode()


def with_inputs(vector: dict[str, Any], **inputs: Any) -> dict[str, Any]:
    return {**vector, "inputs": {**vector["inputs"], **inputs}}


#: name -> (line, expected answer, whether the line carries a readable id).
PROTOCOL_CASES: dict[str, tuple[bytes, dict[str, Any], bool]] = {
    "not-json": (b"this is not JSON", BAD, False),
    "not-an-object": (b'["protocol:not-an-object"]', BAD, False),
    "not-utf8": (b'{"id": "protocol:not-utf8", "vector": "\xff\xfe"}', BAD, False),
    "id-not-a-string": (json.dumps({"id": 7, "vector": ENVELOPE, "chunk": 0}).encode(), BAD, False),
    "vector-not-an-object": (request("vector-not-an-object", "envelope"), BAD, True),
    "vector-without-kind": (request("vector-without-kind", {"inputs": ENVELOPE["inputs"]}), BAD, True),
    "vector-without-inputs": (request("vector-without-inputs", {"kind": "envelope"}), BAD, True),
    "unknown-kind": (
        request("unknown-kind", {"kind": "no-such-kind", "inputs": {}}),
        {"valid": False, "reason": "UNSUPPORTED_KIND"},
        True,
    ),
    "envelope-inputs-empty": (request("envelope-inputs-empty", {**ENVELOPE, "inputs": {}}), BAD, True),
    "envelope-not-a-string": (request("envelope-not-a-string", with_inputs(ENVELOPE, envelope=7)), BAD, True),
    "bundle-not-base64": (request("bundle-not-base64", with_inputs(BUNDLE, bundle="*not base64*")), BAD, True),
    "bundle-negative-chunk": (request("bundle-negative-chunk", BUNDLE, -1), BAD, True),
    "bundle-chunk-not-a-number": (request("bundle-chunk-not-a-number", BUNDLE, "97"), BAD, True),
    # After every bad line above, the same process still verifies: the answers are in step with the requests.
    "valid-after-bad-lines": (request("valid-after-bad-lines", BUNDLE, 97), BUNDLE["expected"], True),
}


def test_bad_requests_are_answered_in_order_and_change_nothing(
    implementation_name: str, implementation: Implementation
) -> None:
    answers = implementation.exchange([line for line, _, _ in PROTOCOL_CASES.values()])
    found, expected = {}, {}
    for (name, (_, want, has_id)), answer in zip(PROTOCOL_CASES.items(), answers, strict=True):
        if has_id:
            assert answer["id"] == f"protocol:{name}", (name, answer)
        found[f"protocol:{name}"], expected[f"protocol:{name}"] = answer, want
    problems = mismatches(implementation_name, found, expected)
    assert not problems, problems
