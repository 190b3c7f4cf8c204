"""The marketplace's test vectors (entry, terms and grant kinds in testdata/vectors/) run through the Python code.

They run through ``memos_grpc.conformance.run_vector``, the code behind ``memos-conformance``: it also checks that a
valid entry encodes back to its bytes and that a refused grant says why.

Every file names its inputs and the one outcome every implementation must reach; tools/gen_vectors.py writes them
(tests/interchange/test_vectors.py checks the files are current).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from memos_grpc.conformance import run_vector

VECTORS = Path(__file__).resolve().parents[2] / "testdata" / "vectors"
KINDS = ("entry", "terms", "grant")
FILES = sorted(p for p in VECTORS.glob("*.json") if p.name.startswith(tuple(f"{kind}-" for kind in KINDS)))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    assert path.name == f"{vector['name']}.json"
    assert vector["name"].startswith(vector["kind"] + "-")
    assert run_vector(vector) == vector["expected"], vector["description"]


def test_every_kind_has_valid_and_invalid_cases() -> None:
    vectors = [json.loads(p.read_text()) for p in FILES]
    assert {v["kind"] for v in vectors} == set(KINDS)
    for kind in KINDS:
        assert {v["expected"]["valid"] for v in vectors if v["kind"] == kind} == {True, False}, kind


def test_valid_grant_vector_digest_is_of_the_signed_payload() -> None:
    vector = json.loads((VECTORS / "grant-valid.json").read_text())
    payload = base64.b64decode(json.loads(vector["inputs"]["grant"])["payload"])
    assert hashlib.sha256(payload).hexdigest() == vector["expected"]["statement_sha256"]
