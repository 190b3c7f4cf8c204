"""The signed-note, checkpoint, cosignature, tlog-policy and tlog-proof vectors run through the Python implementation.

Each file in testdata/vectors/ of these kinds names its inputs and the one outcome every implementation must reach;
``memos_grpc.conformance.run_vector`` runs it (and checks that a valid checkpoint writes back the same text).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memos_grpc.conformance import run_vector

VECTORS = Path(__file__).resolve().parents[2] / "testdata" / "vectors"
KINDS = ("note", "checkpoint", "cosignature", "tlog-policy", "tlog-proof")
FILES = sorted(p for kind in KINDS for p in VECTORS.glob(f"{kind}-*.json"))


def test_every_kind_has_valid_and_invalid_vectors() -> None:
    documents = [json.loads(p.read_text()) for p in FILES]
    for kind in KINDS:
        outcomes = {d["expected"]["valid"] for d in documents if d["kind"] == kind}
        assert outcomes == {True, False}, kind


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_vector(path: Path) -> None:
    document = json.loads(path.read_text())
    assert document["name"] == path.stem
    assert run_vector(document) == document["expected"], document["description"]
