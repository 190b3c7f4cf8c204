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
COSIGNATURE = json.loads((VECTORS / "cosignature-valid.json").read_text())
TLOG_PROOF = json.loads((VECTORS / "tlog-proof-valid.json").read_text())
TERMS = json.loads((VECTORS / "terms-valid.json").read_text())
GRANT = json.loads((VECTORS / "grant-valid.json").read_text())
INCLUSION = json.loads((VECTORS / "merkle-inclusion-last-of-8.json").read_text())
CONSISTENCY = json.loads((VECTORS / "merkle-consistency-3-to-7.json").read_text())
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


def with_member(case: str, vector: dict[str, Any], path: tuple[str | int, ...], literal: str) -> bytes:
    """The request line of ``vector`` with the input at ``path`` written as the JSON text ``literal``."""
    marked = json.loads(json.dumps(vector))
    inner = marked["inputs"]
    for step in path[:-1]:
        inner = inner[step]
    inner[path[-1]] = "@integer@"
    return with_text(case, marked, '"@integer@"', literal)


def verdict(reason: str) -> dict[str, Any]:
    return {"valid": False, "reason": reason}


#: How an integer member is written at each edge.
EDGES = {
    "0": "0",
    "2^53-1": str(2**53 - 1),
    "2^53": str(2**53),
    "2^63-1": str(2**63 - 1),
    "2^63": str(2**63),
    "2^64-1": str(2**64 - 1),
    "2^64": str(2**64),
    "-1": "-1",
    "1.0": "1.0",
    "1e3": "1e3",
    "string": '"1"',
    "null": "null",
    "true": "true",
    "5000-digits": "9" * 5000,
}
#: The edges within each bound: a count's (0 to 2^53 - 1) and a tree size's (0 to 2^64 - 1).
COUNT_EDGES = ("0", "2^53-1")
TREE_EDGES = ("0", "2^53-1", "2^53", "2^63-1", "2^63", "2^64-1")
LIMITS = ("max_entry_bytes", "max_bundle_bytes", "max_entries", "max_envelope_bytes", "max_cube_bytes")
BUNDLE_AT_ZERO = {
    "max_entry_bytes": "BUNDLE_ENTRY_TOO_LARGE",
    "max_bundle_bytes": "BUNDLE_TOO_LARGE",
    "max_entries": "BUNDLE_TOO_MANY_ENTRIES",
    "max_envelope_bytes": "BUNDLE_ENTRY_TOO_LARGE",
    "max_cube_bytes": "BUNDLE_ENTRY_TOO_LARGE",
}

#: Every integer input of every kind (docs/conformance.md, "Integers"): (case prefix, vector, path, the verifier's
#: answer at each edge within the member's bound). Every other edge is BAD_REQUEST.
INTEGER_MEMBERS: list[tuple[str, dict[str, Any], tuple[str | int, ...], dict[str, dict[str, Any]]]] = [
    ("envelope-threshold", ENVELOPE, ("threshold",), dict.fromkeys(COUNT_EDGES, verdict("BUNDLE_THRESHOLD_NOT_MET"))),
    ("bundle-threshold", BUNDLE, ("threshold",), dict.fromkeys(COUNT_EDGES, verdict("BUNDLE_THRESHOLD_NOT_MET"))),
    *[
        (
            f"bundle-limits.{name}",
            BUNDLE,
            ("limits", name),
            {"0": verdict(BUNDLE_AT_ZERO[name]), "2^53-1": BUNDLE["expected"]},
        )
        for name in LIMITS
    ],
    (
        "cosignature-max_age_seconds",
        COSIGNATURE,
        ("max_age_seconds",),
        {"0": verdict("COSIGNATURE_STALE"), "2^53-1": COSIGNATURE["expected"]},
    ),
    (
        "tlog-proof-max_age_seconds",
        TLOG_PROOF,
        ("max_age_seconds",),
        {"0": verdict("TLOG_PROOF_COSIGNATURE_STALE"), "2^53-1": TLOG_PROOF["expected"]},
    ),
    ("terms-checks.uses_so_far", TERMS, ("checks", 0, "uses_so_far"), dict.fromkeys(COUNT_EDGES, TERMS["expected"])),
    ("grant-checks.uses_so_far", GRANT, ("checks", 0, "uses_so_far"), dict.fromkeys(COUNT_EDGES, GRANT["expected"])),
    # Tree sizes and indexes reach 2^64 - 1; past 2^63 - 1 the verifier itself refuses the size.
    (
        "merkle-inclusion-index",
        INCLUSION,
        ("index",),
        {"0": verdict("PROOF_INVALID"), **dict.fromkeys(TREE_EDGES[1:], verdict("INDEX_OUT_OF_RANGE"))},
    ),
    (
        "merkle-inclusion-size",
        INCLUSION,
        ("size",),
        {
            "0": verdict("INDEX_OUT_OF_RANGE"),
            **dict.fromkeys(("2^53-1", "2^53", "2^63-1"), verdict("PROOF_WRONG_LENGTH")),
            **dict.fromkeys(("2^63", "2^64-1"), verdict("SIZE_OUT_OF_RANGE")),
        },
    ),
    (
        "merkle-consistency-old_size",
        CONSISTENCY,
        ("old_size",),
        {"0": verdict("PROOF_WRONG_LENGTH"), **dict.fromkeys(TREE_EDGES[1:], verdict("SIZE_OUT_OF_RANGE"))},
    ),
    (
        "merkle-consistency-new_size",
        CONSISTENCY,
        ("new_size",),
        {
            "0": verdict("SIZE_OUT_OF_RANGE"),
            **dict.fromkeys(("2^53-1", "2^53", "2^63-1"), verdict("PROOF_WRONG_LENGTH")),
            **dict.fromkeys(("2^63", "2^64-1"), verdict("SIZE_OUT_OF_RANGE")),
        },
    ),
]


def integer_cases() -> dict[str, tuple[bytes, dict[str, Any], bool]]:
    """Every integer input of every kind at every edge of its bound, and past it; the chunk's edges beside the
    cases above."""
    cases = {}
    for prefix, vector, path, within in INTEGER_MEMBERS:
        for edge, literal in EDGES.items():
            case = f"{prefix}={edge}"
            cases[case] = (with_member(case, vector, path, literal), within.get(edge, BAD), True)
    for edge in ("2^63", "2^64", "true", "1e3", "5000-digits"):
        case = f"chunk={edge}"
        cases[case] = (with_text(case, BUNDLE, '"chunk": 0}', f'"chunk": {EDGES[edge]}}}'), BAD, True)
    return cases


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
    # Every integer input has one bound in every implementation (docs/conformance.md, "Integers").
    **integer_cases(),
    # A number no kind reads is read all the same: NaN and Infinity are not JSON (the line is unreadable), an
    # integer of any length and a float past a double's range are.
    "nan-in-input": (with_text("nan-in-input", with_inputs(NOTE, x=0), '"x": 0', '"x": NaN'), BAD, False),
    "infinity-in-input": (
        with_text("infinity-in-input", with_inputs(NOTE, x=0), '"x": 0', '"x": -Infinity'),
        BAD,
        False,
    ),
    "5000-digit-integer-in-input": (
        with_text("5000-digit-integer-in-input", with_inputs(NOTE, x=0), '"x": 0', f'"x": {EDGES["5000-digits"]}'),
        NOTE["expected"],
        True,
    ),
    "fraction-in-input": (
        with_text("fraction-in-input", with_inputs(NOTE, x=0), '"x": 0', '"x": 1e400'),
        NOTE["expected"],
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
