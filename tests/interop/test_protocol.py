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
NOTE = json.loads((VECTORS / "note-valid-single.json").read_text())
ROOT_UPDATE = json.loads((VECTORS / "trust_root_update-add-node-key-valid.json").read_text())
BAD = {"valid": False, "reason": "BAD_REQUEST"}
UNSUPPORTED = {"valid": False, "reason": "UNSUPPORTED_KIND"}


def request(case: str, vector: Any, chunk: Any = 0) -> bytes:
    return json.dumps({"id": f"protocol:{case}", "vector": vector, "chunk": chunk}).encode()


def with_inputs(vector: dict[str, Any], **inputs: Any) -> dict[str, Any]:
    return {**vector, "inputs": {**vector["inputs"], **inputs}}


def with_text(case: str, vector: Any, old: str, new: str) -> bytes:
    """The request line of ``vector`` with JSON text ``old`` replaced by ``new`` (an escape json.dumps never
    writes, a number's spelling)."""
    line = request(case, vector).decode()
    assert line.count(old) == 1, (case, old)
    return line.replace(old, new).encode()


def renamed_input(vector: dict[str, Any], name: str, new_name: str) -> dict[str, Any]:
    inputs = dict(vector["inputs"])
    inputs[new_name] = inputs.pop(name)
    return {**vector, "inputs": inputs}


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
    # The line is UTF-8 JSON whose strings are Unicode text; a lone surrogate escape is refused, never replaced.
    "lone-high-surrogate-in-input": (
        with_text("lone-high-surrogate-in-input", with_inputs(NOTE, x="?"), '"x": "?"', '"x": "\\ud800"'),
        BAD,
        False,
    ),
    "lone-low-surrogate-in-note": (
        with_text("lone-low-surrogate-in-note", with_inputs(NOTE, note="?"), '"note": "?"', '"note": "\\udc00"'),
        BAD,
        False,
    ),
    "lone-surrogate-in-member-name": (
        with_text("lone-surrogate-in-member-name", with_inputs(NOTE, x=1), '"x": 1', '"\\ud800x": 1'),
        BAD,
        False,
    ),
    "surrogate-pair-in-input": (
        with_text("surrogate-pair-in-input", with_inputs(NOTE, x="?"), '"x": "?"', '"x": "\\ud83d\\ude00"'),
        NOTE["expected"],
        True,
    ),
    "escaped-backslash-before-u": (
        with_text("escaped-backslash-before-u", with_inputs(NOTE, x="?"), '"x": "?"', '"x": "\\\\ud800"'),
        NOTE["expected"],
        True,
    ),
    "byte-order-mark": (b"\xef\xbb\xbf" + request("byte-order-mark", NOTE), BAD, False),
    "utf16": (request("utf16", NOTE).decode().encode("utf-16-le"), BAD, False),
    # Member names are matched exactly, case included.
    "kind-name-case": (request("kind-name-case", {"Kind": "note", "inputs": NOTE["inputs"]}), BAD, True),
    "input-name-case": (request("input-name-case", renamed_input(ENVELOPE, "envelope", "Envelope")), BAD, True),
    "bundle-limit-name-case": (
        request(
            "bundle-limit-name-case",
            with_inputs(
                BUNDLE,
                limits={
                    **renamed_input({"inputs": BUNDLE["inputs"]["limits"]}, "max_entries", "MAX_ENTRIES")["inputs"]
                },
            ),
        ),
        BAD,
        True,
    ),
    # A chunk is an integer from 0 to 2^53 - 1, for every kind; absent is 0.
    "chunk-null": (request("chunk-null", BUNDLE, None), BAD, True),
    "chunk-fraction": (with_text("chunk-fraction", BUNDLE, '"chunk": 0}', '"chunk": 97.0}'), BAD, True),
    "chunk-exponent": (with_text("chunk-exponent", BUNDLE, '"chunk": 0}', '"chunk": 0e0}'), BAD, True),
    "chunk-over-2^53": (request("chunk-over-2^53", BUNDLE, 2**53), BAD, True),
    "chunk-2^53-minus-1": (request("chunk-2^53-minus-1", BUNDLE, 2**53 - 1), BUNDLE["expected"], True),
    "chunk-absent": (json.dumps({"id": "protocol:chunk-absent", "vector": NOTE}).encode(), NOTE["expected"], True),
    "envelope-negative-chunk": (request("envelope-negative-chunk", ENVELOPE, -1), BAD, True),
    "threshold-fraction": (
        with_text("threshold-fraction", ENVELOPE, '"threshold": 1', '"threshold": 1.0'),
        BAD,
        True,
    ),
    # The vector is read before its kind is looked up; a kind is any string.
    "unknown-kind-without-inputs": (request("unknown-kind-without-inputs", {"kind": "no-such-kind"}), BAD, True),
    "empty-kind": (request("empty-kind", {"kind": "", "inputs": {}}), UNSUPPORTED, True),
    "kind-of-an-object-prototype": (
        request("kind-of-an-object-prototype", {"kind": "toString", "inputs": {}}),
        UNSUPPORTED,
        True,
    ),
    # The current root is an anchor the caller trusts: one that is not a trust root is a bad request.
    "current-root-not-a-trust-root": (
        request("current-root-not-a-trust-root", with_inputs(ROOT_UPDATE, current_root=ENVELOPE["inputs"]["envelope"])),
        BAD,
        True,
    ),
    # A blank line (JSON whitespace only) is not a request: the request after it gets the next answer.
    "after-a-blank-line": (b" \t\r\n" + request("after-a-blank-line", NOTE), NOTE["expected"], True),
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
