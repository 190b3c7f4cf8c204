"""The marketplace's test vectors (entry, terms and grant kinds in testdata/vectors/) run through the Python code.

Every file names its inputs and the one outcome every implementation must reach; tools/gen_vectors.py writes them
(tests/interchange/test_vectors.py checks the files are current).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from memos_grpc.interchange.canonical import parse_time
from memos_grpc.interchange.keys import TrustedKey
from memos_grpc.marketplace.entries import EntryError, parse
from memos_grpc.marketplace.grants import verify_grant
from memos_grpc.marketplace.terms import Terms, TermsError

VECTORS = Path(__file__).resolve().parents[2] / "testdata" / "vectors"
KINDS = ("entry", "terms", "grant")
FILES = sorted(p for p in VECTORS.glob("*.json") if p.name.startswith(tuple(f"{kind}-" for kind in KINDS)))


def decisions(terms: Terms, granted_at: str, checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for check in checks:
        decision = terms.permits(
            check["action"], check["uses_so_far"], parse_time(granted_at), parse_time(check["now"])
        )
        found.append({"allowed": decision.allowed, "reason": decision.reason, "remaining": decision.remaining})
    return found


def run_entry(inputs: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64decode(inputs["entry"], validate=True)
    try:
        entry = parse(data)
    except EntryError as error:
        return {"valid": False, "reason": error.reason}
    # What parse accepts, encode writes back byte for byte: one form per entry.
    assert entry.encode() == data
    return {
        "valid": True,
        "reason": "",
        "type": entry.type,
        "subject": entry.subject,
        "statement": entry.statement,
        "signer": entry.signer,
        "ref": entry.ref,
    }


def run_terms(inputs: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64decode(inputs["terms"], validate=True)
    try:
        terms = Terms.parse(data)
    except TermsError as error:
        return {"valid": False, "reason": error.reason}
    outcome: dict[str, Any] = {
        "valid": True,
        "reason": "",
        "digest": terms.digest().removeprefix("sha256:"),
        "license": terms.license,
        "permitted": [p.action for p in terms.permissions],
    }
    if "checks" in inputs:
        outcome["decisions"] = decisions(terms, inputs["granted_at"], inputs["checks"])
    return outcome


def run_grant(inputs: dict[str, Any]) -> dict[str, Any]:
    trusted = {
        k["key_id"]: TrustedKey(k["key_id"], base64.b64decode(k["public_key"], validate=True))
        for k in inputs["trusted_keys"]
    }
    result = verify_grant(
        inputs["grant"].encode(),
        trusted,
        inputs["licensee_principal"],
        inputs["licensee_key_id"],
        parse_time(inputs["now"]),
    )
    if not result:
        assert result.message
        return {"valid": False, "reason": result.reason}
    grant = result.grant
    assert grant is not None
    return {
        "valid": True,
        "reason": "",
        "statement_sha256": grant.statement_digest.removeprefix("sha256:"),
        "release": grant.release,
        "publish_log_index": grant.publish_log_index,
        "decisions": decisions(grant.terms, _granted_at(inputs), inputs["checks"]),
    }


def _granted_at(inputs: dict[str, Any]) -> str:
    payload = json.loads(base64.b64decode(json.loads(inputs["grant"])["payload"]))
    granted_at: str = payload["predicate"]["notBefore"]
    return granted_at


RUNNERS = {"entry": run_entry, "terms": run_terms, "grant": run_grant}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    assert path.name == f"{vector['name']}.json"
    assert vector["name"].startswith(vector["kind"] + "-")
    assert RUNNERS[vector["kind"]](vector["inputs"]) == vector["expected"], vector["description"]


def test_every_kind_has_valid_and_invalid_cases() -> None:
    vectors = [json.loads(p.read_text()) for p in FILES]
    assert {v["kind"] for v in vectors} == set(KINDS)
    for kind in KINDS:
        assert {v["expected"]["valid"] for v in vectors if v["kind"] == kind} == {True, False}, kind


def test_valid_grant_vector_digest_is_of_the_signed_payload() -> None:
    vector = json.loads((VECTORS / "grant-valid.json").read_text())
    payload = base64.b64decode(json.loads(vector["inputs"]["grant"])["payload"])
    assert hashlib.sha256(payload).hexdigest() == vector["expected"]["statement_sha256"]
