"""RFC 6962 Merkle hashing and proofs: the ``merkle`` vectors, known CT roots, and properties over random trees.

Proofs are generated only from complete-subtree hashes (``node(level, index)`` raises for anything else), as a
store that keeps hashes by (level, index) serves them; every generated proof must verify against the root of
``root_from_leaves``, and any flipped byte, dropped or added hash must be refused with the reason that says so.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memos_grpc.conformance import run_vector
from memos_grpc.transparency import merkle
from memos_grpc.transparency.merkle import ProofError

VECTORS = Path(__file__).resolve().parents[2] / "testdata" / "vectors"
FILES = sorted(VECTORS.glob("merkle-*.json"))


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def complete_nodes(leaves: list[bytes]) -> Callable[[int, int], bytes]:
    """``node(level, index)`` over only the complete subtrees of ``leaves``: anything else is a bug in the caller."""

    def node(level: int, index: int) -> bytes:
        start, end = index << level, (index + 1) << level
        assert level >= 0 and index >= 0 and end <= len(leaves), f"node({level}, {index}) is not a complete subtree"
        return merkle.root_from_leaves(leaves[start:end])

    return node


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_vector(path: Path) -> None:
    vector = load(path)
    assert path.name == f"{vector['name']}.json"
    assert vector["kind"] == "merkle"
    assert run_vector(vector) == vector["expected"], vector["description"]


def test_vectors_cover_every_reason_and_edge_case() -> None:
    vectors = {p.stem.removeprefix("merkle-"): load(p) for p in FILES}
    reasons = {v["expected"]["reason"] for v in vectors.values() if not v["expected"]["valid"]}
    assert reasons == {
        "INDEX_OUT_OF_RANGE",
        "SIZE_OUT_OF_RANGE",
        "PROOF_WRONG_LENGTH",
        "PROOF_INVALID",
        "HASH_MALFORMED",
    }
    for case in (
        "inclusion-size-0",
        "inclusion-size-1",
        "inclusion-index-equals-size",
        "inclusion-one-hash-short",
        "inclusion-one-hash-long",
        "consistency-0-to-0",
        "consistency-0-to-5",
        "consistency-7-to-7",
        "consistency-equal-sizes-other-root",
        "consistency-one-hash-short",
        "consistency-one-hash-long",
    ):
        assert case in vectors, case
    for operation in ("inclusion", "consistency"):
        outcomes = {v["expected"]["valid"] for v in vectors.values() if v["inputs"]["operation"] == operation}
        assert outcomes == {True, False}, operation


def test_tree_root_of_nothing_reads_nothing() -> None:
    assert merkle.tree_root(0, complete_nodes([])) == merkle.EMPTY_ROOT


def test_roots_of_the_certificate_transparency_test_tree() -> None:
    """Roots published with RFC 6962 implementations for the CT test leaves: the vectors pin the RFC."""
    roots = load(VECTORS / "merkle-hashes-ct.json")["expected"]["roots"]
    assert roots[0] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert roots[1] == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert roots[3] == "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
    assert roots[8] == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def test_proof_generation_refuses_out_of_range_requests() -> None:
    node = complete_nodes([merkle.leaf_hash(b"x")] * 4)
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: merkle.inclusion_proof(4, 4, node), "INDEX_OUT_OF_RANGE"),
        (lambda: merkle.inclusion_proof(0, 0, node), "INDEX_OUT_OF_RANGE"),
        (lambda: merkle.inclusion_proof(-1, 4, node), "INDEX_OUT_OF_RANGE"),
        (lambda: merkle.inclusion_proof(0, 2**63, node), "SIZE_OUT_OF_RANGE"),
        (lambda: merkle.consistency_proof(3, 2, node), "SIZE_OUT_OF_RANGE"),
        (lambda: merkle.consistency_proof(-1, 2, node), "SIZE_OUT_OF_RANGE"),
        (lambda: merkle.tree_root(-1, node), "SIZE_OUT_OF_RANGE"),
    ]
    for call, reason in cases:
        with pytest.raises(ProofError) as caught:
            call()
        assert caught.value.reason == reason


def test_a_proof_of_a_huge_tree_reads_few_nodes() -> None:
    """Proofs at 2**40 leaves read O(log n) stored hashes (right-edge folds are remembered, not recomputed)."""
    reads: list[tuple[int, int]] = []

    def node(level: int, index: int) -> bytes:
        reads.append((level, index))
        return bytes([level]) * 32

    size = 2**40 - 1  # the right edge folds at every level
    assert len(merkle.inclusion_proof(0, size, node)) == 40
    assert len(reads) <= 2 * 40
    reads.clear()
    assert len(merkle.inclusion_proof(2**39 + 5, size, node)) == 40
    assert len(reads) <= 2 * 40
    reads.clear()
    assert len(merkle.consistency_proof(2**39 + 1, size, node)) <= 41
    assert len(reads) <= 2 * 40


# -- properties --------------------------------------------------------------------------------------------------


def leaves_of(size: int, seed: int) -> list[bytes]:
    return [merkle.leaf_hash(f"{seed}:{n}".encode()) for n in range(size)]


def mutations(proof: list[bytes]) -> list[tuple[list[bytes], str]]:
    """Every one-byte flip (first, middle, last byte of each hash), a dropped hash and an added one."""
    changed: list[tuple[list[bytes], str]] = []
    for position, value in enumerate(proof):
        for at in (0, 15, 31):
            flipped = value[:at] + bytes([value[at] ^ 0x80]) + value[at + 1 :]
            changed.append(([*proof[:position], flipped, *proof[position + 1 :]], "PROOF_INVALID"))
    if proof:
        changed.append((proof[:-1], "PROOF_WRONG_LENGTH"))
        changed.append((proof[1:], "PROOF_WRONG_LENGTH"))
    changed.append(([*proof, proof[-1] if proof else merkle.EMPTY_ROOT], "PROOF_WRONG_LENGTH"))
    return changed


@settings(max_examples=150, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_every_inclusion_proof_verifies_and_any_change_fails(size: int, data: st.DataObject) -> None:
    leaves = leaves_of(size, data.draw(st.integers(0, 2**16)))
    index = data.draw(st.integers(0, size - 1))
    root = merkle.root_from_leaves(leaves)
    assert merkle.tree_root(size, complete_nodes(leaves)) == root
    proof = merkle.inclusion_proof(index, size, complete_nodes(leaves))
    assert len(proof) <= math.ceil(math.log2(size))
    merkle.verify_inclusion(leaves[index], index, size, proof, root)
    for changed, reason in mutations(proof):
        with pytest.raises(ProofError) as caught:
            merkle.verify_inclusion(leaves[index], index, size, changed, root)
        assert caught.value.reason == reason
    with pytest.raises(ProofError) as caught:
        merkle.verify_inclusion(merkle.leaf_hash(b"other"), index, size, proof, root)
    assert caught.value.reason == "PROOF_INVALID"


@settings(max_examples=150, deadline=None)
@given(new_size=st.integers(1, 300), data=st.data())
def test_every_consistency_proof_verifies_and_any_change_fails(new_size: int, data: st.DataObject) -> None:
    leaves = leaves_of(new_size, data.draw(st.integers(0, 2**16)))
    old_size = data.draw(st.integers(0, new_size))
    old_root, new_root = merkle.root_from_leaves(leaves[:old_size]), merkle.root_from_leaves(leaves)
    proof = merkle.consistency_proof(old_size, new_size, complete_nodes(leaves))
    # RFC 6962 consistency proofs take one hash more than inclusion proofs when the old size is no power of two.
    assert len(proof) <= math.ceil(math.log2(new_size)) + 1
    merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
    for changed, reason in mutations(proof):
        with pytest.raises(ProofError) as caught:
            merkle.verify_consistency(old_size, new_size, old_root, new_root, changed)
        assert caught.value.reason == reason
    if 0 < old_size < new_size:  # a fork: the same old size with another last entry
        forked = merkle.root_from_leaves([*leaves[: old_size - 1], merkle.leaf_hash(b"forked")])
        with pytest.raises(ProofError) as caught:
            merkle.verify_consistency(old_size, new_size, forked, new_root, proof)
        assert caught.value.reason == "PROOF_INVALID"
