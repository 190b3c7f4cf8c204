"""The signed-note, checkpoint, cosignature, tlog-policy and tlog-proof vectors run through the Python implementation.

Each file in testdata/vectors/ of these kinds names its inputs and the one outcome every implementation must reach.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from memos_grpc.interchange.canonical import parse_time
from memos_grpc.transparency.checkpoint import Checkpoint, CheckpointError
from memos_grpc.transparency.cosignature import CosignatureError, CosignatureVerifier, verify_cosigned
from memos_grpc.transparency.note import NoteError, NoteVerifier, open_note, parse_vkey
from memos_grpc.transparency.policy import PolicyError, parse_policy, satisfied
from memos_grpc.transparency.proof import verify_proof

VECTORS = Path(__file__).resolve().parents[2] / "testdata" / "vectors"
KINDS = ("note", "checkpoint", "cosignature", "tlog-policy", "tlog-proof")
FILES = sorted(p for kind in KINDS for p in VECTORS.glob(f"{kind}-*.json"))


def note_verifier(vkey: str) -> NoteVerifier:
    name, key_id, _, public_key = parse_vkey(vkey)
    return NoteVerifier(name, key_id, public_key)


def run_note(inputs: dict[str, Any]) -> dict[str, Any]:
    try:
        note = open_note(inputs["note"], [note_verifier(v) for v in inputs["verifiers"]])
    except NoteError as error:
        return {"valid": False, "reason": error.reason}
    return {"valid": True, "reason": "", "verified_by": list(note.verified_by)}


def run_checkpoint(inputs: dict[str, Any]) -> dict[str, Any]:
    try:
        checkpoint = Checkpoint.parse(inputs["text"])
    except CheckpointError as error:
        return {"valid": False, "reason": error.reason}
    assert checkpoint.body() == inputs["text"], "a parsed checkpoint writes back the same text"
    return {
        "valid": True,
        "reason": "",
        "origin": checkpoint.origin,
        "size": str(checkpoint.size),
        "root": base64.b64encode(checkpoint.root).decode(),
        "extensions": list(checkpoint.extensions),
    }


def run_cosignature(inputs: dict[str, Any]) -> dict[str, Any]:
    name, key_id, _, public_key = parse_vkey(inputs["witness"])
    now = int(parse_time(inputs["now"]).timestamp())
    try:
        timestamp = verify_cosigned(
            inputs["note"], CosignatureVerifier(name, key_id, public_key), now, inputs["max_age_seconds"]
        )
    except CosignatureError as error:
        return {"valid": False, "reason": error.reason}
    return {"valid": True, "reason": "", "timestamp": timestamp}


def run_policy(inputs: dict[str, Any]) -> dict[str, Any]:
    try:
        policy = parse_policy(inputs["policy"])
    except PolicyError as error:
        return {"valid": False, "reason": error.reason}
    return {"valid": True, "reason": "", "satisfied": satisfied(policy, inputs["cosigned"])}


def run_proof(inputs: dict[str, Any]) -> dict[str, Any]:
    policy = parse_policy(inputs["policy"])
    report = verify_proof(
        base64.b64decode(inputs["entry"]),
        inputs["proof"],
        note_verifier(inputs["log"]),
        policy,
        policy.witnesses,
        parse_time(inputs["now"]),
        inputs["max_age_seconds"],
    )
    if not report:
        return {"valid": False, "reason": report.reason}
    return {"valid": True, "reason": "", "index": report.index}


RUNNERS = {
    "note": run_note,
    "checkpoint": run_checkpoint,
    "cosignature": run_cosignature,
    "tlog-policy": run_policy,
    "tlog-proof": run_proof,
}


def test_every_kind_has_valid_and_invalid_vectors() -> None:
    documents = [json.loads(p.read_text()) for p in FILES]
    for kind in KINDS:
        outcomes = {d["expected"]["valid"] for d in documents if d["kind"] == kind}
        assert outcomes == {True, False}, kind


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_vector(path: Path) -> None:
    document = json.loads(path.read_text())
    assert document["name"] == path.stem
    assert RUNNERS[document["kind"]](document["inputs"]) == document["expected"], document["description"]
