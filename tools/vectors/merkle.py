"""Merkle tree vectors (kind ``merkle``): RFC 6962 hashes, and inclusion and consistency proofs, valid and not.

MTH, PATH and PROOF are written here from the RFC's recursive definitions (RFC 6962 §2.1, RFC 9162 §2.1)
rather than taken from memos_grpc.transparency.merkle, so that a vector pins the RFC instead of mirroring the
implementation. Each invalid case is a valid proof with one thing changed, and names the reason that change
must produce.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from tools.vectors.common import Json, b64, invalid, valid, vector

EMPTY = hashlib.sha256(b"").digest()

#: The leaves of the Certificate Transparency test tree (RFC 6962 implementations share them): the 8-leaf
#: root is the well-known 5dc9da79...
CT_ENTRIES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
#: A 20-entry log of entry-like text: big enough for proofs of every shape up to size 20.
ENTRIES = [f"memstore vector entry {n}\n".encode() for n in range(20)]


def leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(entries: Sequence[bytes]) -> bytes:
    if not entries:
        return EMPTY
    if len(entries) == 1:
        return leaf(entries[0])
    k = split(len(entries))
    return node(mth(entries[:k]), mth(entries[k:]))


def path(m: int, entries: Sequence[bytes]) -> list[bytes]:
    if len(entries) == 1:
        return []
    k = split(len(entries))
    if m < k:
        return [*path(m, entries[:k]), mth(entries[k:])]
    return [*path(m - k, entries[k:]), mth(entries[:k])]


def subproof(m: int, entries: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if whole else [mth(entries)]
    k = split(n)
    if m <= k:
        return [*subproof(m, entries[:k], whole), mth(entries[k:])]
    return [*subproof(m - k, entries[k:], False), mth(entries[:k])]


def proof(m: int, entries: Sequence[bytes]) -> list[bytes]:
    return [] if m in (0, len(entries)) else subproof(m, entries, True)


def flipped(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


# -- hashes ---------------------------------------------------------------------------------------------------


def hashes(case: str, description: str, entries: Sequence[bytes]) -> Json:
    """Leaf hashes, every complete subtree's hash by (level, index), and the root of every prefix size."""
    nodes: list[Json] = []
    level, width = 0, 1
    while width <= len(entries):
        for index in range(len(entries) // width):
            subtree = mth(entries[index * width : (index + 1) * width])
            nodes.append({"level": level, "index": index, "hash": subtree.hex()})
        level, width = level + 1, width * 2
    return vector(
        "merkle",
        f"hashes-{case}",
        description,
        {"operation": "hashes", "entries": [b64(e) for e in entries]},
        valid(
            leaf_hashes=[leaf(e).hex() for e in entries],
            nodes=nodes,
            roots=[mth(entries[:size]).hex() for size in range(len(entries) + 1)],
        ),
    )


def hash_vectors() -> list[Json]:
    return [
        hashes("empty", "no entries: the empty tree's root is sha256 of nothing", []),
        hashes("ct", "the Certificate Transparency test leaves, the empty entry first", CT_ENTRIES),
        hashes("twenty", "twenty entries: roots of sizes 0 to 20, complete subtrees up to level 4", ENTRIES),
    ]


# -- inclusion ------------------------------------------------------------------------------------------------


def inclusion(case: str, description: str, inputs: Json, expected: Json) -> Json:
    return vector("merkle", f"inclusion-{case}", description, {"operation": "inclusion", **inputs}, expected)


def inclusion_inputs(
    index: int,
    size: int,
    *,
    entries: Sequence[bytes] = ENTRIES,
    leaf_hash: bytes | None = None,
    hashes: list[bytes] | None = None,
    root: bytes | None = None,
) -> Json:
    """The inputs of a valid proof of ``index`` in the first ``size`` entries, with any part replaced."""
    tree = entries[:size]
    return {
        "leaf_hash": b64(leaf_hash if leaf_hash is not None else leaf(entries[min(index, len(entries) - 1)])),
        "index": index,
        "size": size,
        "proof": [b64(h) for h in (hashes if hashes is not None else (path(index, tree) if index < size else []))],
        "root": b64(root if root is not None else mth(tree)),
    }


def inclusion_vectors() -> list[Json]:
    good = [
        ("size-1", "a tree of one leaf: empty proof, the root is the leaf hash", 0, 1),
        ("first-of-8", "the first of a complete tree of 8", 0, 8),
        ("last-of-8", "the last of a complete tree of 8", 7, 8),
        ("middle-of-7", "inside a tree of 7: a right-edge sibling of 3 leaves", 3, 7),
        ("last-of-7", "the last of 7: it skips levels on the right edge", 6, 7),
        ("index-17-of-20", "the right edge of a tree of 20", 17, 20),
        ("last-of-20", "the last leaf of 20", 19, 20),
        ("index-5-of-16", "a power-of-two tree", 5, 16),
    ]
    vectors = [inclusion(case, d, inclusion_inputs(i, n), valid()) for case, d, i, n in good]
    vectors.append(
        inclusion(
            "ct-index-5-of-8",
            "the CT test tree, leaf 5",
            inclusion_inputs(5, 8, entries=CT_ENTRIES),
            valid(),
        )
    )
    proof_12 = path(12, ENTRIES[:20])
    proof_3 = path(3, ENTRIES[:8])
    vectors += [
        inclusion(
            "size-0",
            "nothing is included in the empty tree",
            inclusion_inputs(0, 0, root=EMPTY),
            invalid("INDEX_OUT_OF_RANGE"),
        ),
        inclusion(
            "index-equals-size",
            "index 8 of a tree of 8 is past its end",
            inclusion_inputs(8, 8, hashes=proof_3),
            invalid("INDEX_OUT_OF_RANGE"),
        ),
        inclusion(
            "size-too-large",
            "a tree size of 2**63 is out of range",
            inclusion_inputs(3, 2**63, hashes=proof_3, root=mth(ENTRIES[:8])),
            invalid("SIZE_OUT_OF_RANGE"),
        ),
        inclusion(
            "one-hash-short",
            "a valid proof of 12 in 20 without its last hash",
            inclusion_inputs(12, 20, hashes=proof_12[:-1]),
            invalid("PROOF_WRONG_LENGTH"),
        ),
        inclusion(
            "one-hash-long",
            "a valid proof of 12 in 20 with the root appended",
            inclusion_inputs(12, 20, hashes=[*proof_12, mth(ENTRIES[:20])]),
            invalid("PROOF_WRONG_LENGTH"),
        ),
        inclusion(
            "size-1-non-empty",
            "a tree of one leaf takes an empty proof",
            inclusion_inputs(0, 1, hashes=[leaf(ENTRIES[1])]),
            invalid("PROOF_WRONG_LENGTH"),
        ),
        inclusion(
            "flipped-proof-byte",
            "one bit of the proof's second hash flipped",
            inclusion_inputs(12, 20, hashes=[proof_12[0], flipped(proof_12[1], 31), *proof_12[2:]]),
            invalid("PROOF_INVALID"),
        ),
        inclusion(
            "wrong-leaf",
            "the proof of leaf 12 offered for leaf 13's hash",
            inclusion_inputs(12, 20, leaf_hash=leaf(ENTRIES[13])),
            invalid("PROOF_INVALID"),
        ),
        inclusion(
            "wrong-index",
            "the proof of leaf 3 offered as leaf 2's (same length)",
            inclusion_inputs(2, 8, leaf_hash=leaf(ENTRIES[3]), hashes=proof_3),
            invalid("PROOF_INVALID"),
        ),
        inclusion(
            "wrong-root",
            "a valid proof against the root of another size",
            inclusion_inputs(12, 20, root=mth(ENTRIES[:19])),
            invalid("PROOF_INVALID"),
        ),
        inclusion(
            "raw-entry-not-leaf-hash",
            "the entry's plain sha256 instead of its leaf hash (no 0x00 prefix)",
            inclusion_inputs(3, 8, leaf_hash=hashlib.sha256(ENTRIES[3]).digest()),
            invalid("PROOF_INVALID"),
        ),
        inclusion(
            "short-hash",
            "a proof hash of 31 bytes",
            inclusion_inputs(3, 8, hashes=[proof_3[0][:31], *proof_3[1:]]),
            invalid("HASH_MALFORMED"),
        ),
    ]
    return vectors


# -- consistency ----------------------------------------------------------------------------------------------


def consistency(case: str, description: str, inputs: Json, expected: Json) -> Json:
    return vector("merkle", f"consistency-{case}", description, {"operation": "consistency", **inputs}, expected)


def consistency_inputs(
    old: int,
    new: int,
    *,
    hashes: list[bytes] | None = None,
    old_root: bytes | None = None,
    new_root: bytes | None = None,
) -> Json:
    return {
        "old_size": old,
        "new_size": new,
        "old_root": b64(old_root if old_root is not None else mth(ENTRIES[:old])),
        "new_root": b64(new_root if new_root is not None else mth(ENTRIES[:new])),
        "proof": [b64(h) for h in (hashes if hashes is not None else proof(old, ENTRIES[:new]))],
    }


def consistency_vectors() -> list[Json]:
    good = [
        ("0-to-0", "the empty tree against itself: empty proof", 0, 0),
        ("0-to-5", "every tree extends the empty tree: empty proof", 0, 5),
        ("1-to-1", "equal sizes: empty proof, equal roots", 1, 1),
        ("7-to-7", "equal sizes: empty proof, equal roots", 7, 7),
        ("1-to-8", "from one leaf", 1, 8),
        ("3-to-7", "RFC 6962's example: four hashes, one more than log2 of 7 rounded up", 3, 7),
        ("4-to-8", "a power-of-two old tree: its root is not repeated in the proof", 4, 8),
        ("6-to-8", "an old tree that is not a power of two", 6, 8),
        ("7-to-20", "across several levels", 7, 20),
        ("16-to-20", "a complete old tree", 16, 20),
        ("19-to-20", "one leaf added", 19, 20),
    ]
    vectors = [consistency(case, d, consistency_inputs(o, n), valid()) for case, d, o, n in good]
    proof_7_20 = proof(7, ENTRIES[:20])
    proof_6_8 = proof(6, ENTRIES[:8])
    vectors += [
        consistency(
            "old-after-new",
            "an old size larger than the new one",
            consistency_inputs(8, 6, hashes=proof_6_8, old_root=mth(ENTRIES[:8]), new_root=mth(ENTRIES[:6])),
            invalid("SIZE_OUT_OF_RANGE"),
        ),
        consistency(
            "equal-sizes-non-empty",
            "equal sizes take an empty proof",
            consistency_inputs(5, 5, hashes=[mth(ENTRIES[:5])]),
            invalid("PROOF_WRONG_LENGTH"),
        ),
        consistency(
            "equal-sizes-other-root",
            "two different roots for one size: a fork",
            consistency_inputs(5, 5, new_root=mth([*ENTRIES[:4], b"forked"])),
            invalid("PROOF_INVALID"),
        ),
        consistency(
            "0-to-5-non-empty",
            "a proof from the empty tree is empty",
            consistency_inputs(0, 5, hashes=[mth(ENTRIES[:5])]),
            invalid("PROOF_WRONG_LENGTH"),
        ),
        consistency(
            "0-to-5-other-old-root",
            "the old root of a size-0 tree must be the empty tree's hash",
            consistency_inputs(0, 5, old_root=mth(ENTRIES[:1])),
            invalid("PROOF_INVALID"),
        ),
        consistency(
            "1-to-2-empty",
            "distinct non-zero sizes need a proof",
            consistency_inputs(1, 2, hashes=[]),
            invalid("PROOF_WRONG_LENGTH"),
        ),
        consistency(
            "one-hash-short",
            "a valid proof from 7 to 20 without its last hash",
            consistency_inputs(7, 20, hashes=proof_7_20[:-1]),
            invalid("PROOF_WRONG_LENGTH"),
        ),
        consistency(
            "one-hash-long",
            "a valid proof from 7 to 20 with the new root appended",
            consistency_inputs(7, 20, hashes=[*proof_7_20, mth(ENTRIES[:20])]),
            invalid("PROOF_WRONG_LENGTH"),
        ),
        consistency(
            "flipped-proof-byte",
            "one bit of the proof's first hash flipped",
            consistency_inputs(7, 20, hashes=[flipped(proof_7_20[0]), *proof_7_20[1:]]),
            invalid("PROOF_INVALID"),
        ),
        consistency(
            "wrong-old-root",
            "a valid proof against an old root of other entries",
            consistency_inputs(6, 8, old_root=mth([*ENTRIES[:5], b"rewritten"])),
            invalid("PROOF_INVALID"),
        ),
        consistency(
            "wrong-new-root",
            "a valid proof against a new root that rewrote history",
            consistency_inputs(7, 20, new_root=mth([*ENTRIES[:3], b"rewritten", *ENTRIES[4:20]])),
            invalid("PROOF_INVALID"),
        ),
        consistency(
            "power-of-two-old-root-repeated",
            "4 to 8 with the old root stated in the proof (it is implied)",
            consistency_inputs(4, 8, hashes=[mth(ENTRIES[:4]), *proof(4, ENTRIES[:8])]),
            invalid("PROOF_WRONG_LENGTH"),
        ),
        consistency(
            "short-root",
            "an old root of 16 bytes",
            consistency_inputs(6, 8, old_root=mth(ENTRIES[:6])[:16]),
            invalid("HASH_MALFORMED"),
        ),
    ]
    return vectors


def merkle_vectors() -> list[Json]:
    return hash_vectors() + inclusion_vectors() + consistency_vectors()
