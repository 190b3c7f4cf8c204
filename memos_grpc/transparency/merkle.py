"""RFC 6962 / RFC 9162 §2.1 Merkle trees: hashing, proof generation from stored subtree hashes, verification.

A tree of ``size`` leaves is the RFC's MTH: leaf hashes are ``sha256(0x00 || entry)``, interior nodes
``sha256(0x01 || left || right)``, the empty tree ``sha256("")``, and a tree of n > 1 leaves splits at the
largest power of two below n. Every node of such a tree is either a complete subtree (2**level leaves starting
at a multiple of 2**level) or lies on the right edge; so a store keeps hashes by ``(level, index)`` as subtrees
complete, and the generators here derive the right-edge hashes they need from those (at most one per level),
never from a rebuild of the tree.

Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency), as transparency-dev does, with
the proof length checked first so a proof one hash short or long is refused as such, not as a root mismatch.
Edge cases, decided here once for every caller:

- an inclusion proof needs ``0 <= index < size`` (so nothing is included in the empty tree, and ``index ==
  size`` is refused); in a tree of one leaf the proof is empty and the root is the leaf hash;
- a consistency proof between equal sizes is empty and the two roots must be equal;
- a consistency proof from size 0 is empty (every tree extends the empty one, RFC 9162 §2.1.4 defines proofs
  only for 0 < old < new) and the old root must be the empty tree's hash, the only root a tree of size 0 has.

Inclusion proofs hold at most ⌈log2 size⌉ hashes; consistency proofs at most ⌈log2 new⌉ + 1 (the RFC's own
example, 3 -> 7, takes 4): the extra hash is the old tree's subtree the proof starts from when ``old`` is not a
power of two.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from memos_grpc import reasons

HASH_SIZE = 32
#: Tree sizes and indexes are unsigned 63-bit numbers (a checkpoint's size is at most 2**63 - 1).
MAX_SIZE = 2**63 - 1
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: ``node(level, index)``: the hash of the complete subtree of 2**level leaves from leaf ``index * 2**level``.
NodeSource = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A refused proof or proof request; ``reason`` is stable (the gRPC layer maps it to a status)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# -- hashing -----------------------------------------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over ``leaf_hashes`` (already leaf-hashed), by pairing level by level.

    Pairing neighbours and carrying an odd last node up unchanged builds the same tree as the RFC's split at the
    largest power of two: the reference for tests and small trees.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


# -- a follower's frontier ------------------------------------------------------------------------------------


def frontier_append(frontier: Sequence[bytes], size: int, leaf: bytes) -> list[bytes]:
    """The frontier of a tree of ``size`` leaves with one more leaf hash appended.

    A tree's frontier (its compact range from 0) is the roots of its complete subtrees, largest first, one per set
    bit of its size: all a follower keeps to extend the tree leaf by leaf and compute every later root, so that
    entries read from a log are proved to be the ones its checkpoints sign without any proof from the log.
    """
    if len(frontier) != size.bit_count():
        raise ProofError(
            reasons.FRONTIER_INVALID, f"a frontier of a tree of {size} leaves holds {size.bit_count()} hashes"
        )
    merged = list(frontier)
    node, remaining = leaf, size
    while remaining & 1:  # each trailing one bit is a complete subtree the new leaf's subtree now pairs with
        node = node_hash(merged.pop(), node)
        remaining >>= 1
    merged.append(node)
    return merged


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """MTH of the tree whose frontier this is: the subtrees folded right to left (the RFC's split, recursively)."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for subtree in reversed(frontier[:-1]):
        root = node_hash(subtree, root)
    return root


# -- generation ---------------------------------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2): where RFC 6962 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


class _Subtrees:
    """Hashes of the ranges a proof names: complete ones from ``node``, right-edge ones folded from those."""

    def __init__(self, node: NodeSource) -> None:
        self._node = node
        self._folded: dict[tuple[int, int], bytes] = {}

    def root(self, start: int, end: int) -> bytes:
        """MTH of leaves ``[start, end)``; ``start`` is a multiple of a power of two >= ``end - start``."""
        count = end - start
        if count & (count - 1) == 0:
            level = count.bit_length() - 1
            return self._node(level, start >> level)
        # Right-edge ranges nest ([k, n) holds [k + k', n)): remembering them keeps a proof at O(log n) node reads.
        key = (start, end)
        if key not in self._folded:
            k = _split(count)
            self._folded[key] = node_hash(self.root(start, start + k), self.root(start + k, end))
        return self._folded[key]


def tree_root(size: int, node: NodeSource) -> bytes:
    """The root of the first ``size`` leaves from stored complete-subtree hashes (at most one read per level)."""
    _check_size("size", size)
    return EMPTY_ROOT if size == 0 else _Subtrees(node).root(0, size)


def inclusion_proof(index: int, size: int, node: NodeSource) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:size]), leaf to root."""
    _check_size("size", size)
    _check_index(index, size)
    subtrees = _Subtrees(node)
    proof: list[bytes] = []
    start, end = 0, size
    # Walk from the root down, then reverse: PATH lists the deepest sibling first.
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(subtrees.root(start + k, end))
            end = start + k
        else:
            proof.append(subtrees.root(start, start + k))
            start += k
    proof.reverse()
    return proof


def consistency_proof(old_size: int, new_size: int, node: NodeSource) -> list[bytes]:
    """RFC 6962 PROOF(old_size, D[0:new_size]); empty when ``old_size`` is 0 or equal to ``new_size``."""
    _check_sizes(old_size, new_size)
    if old_size in (0, new_size):
        return []
    subtrees = _Subtrees(node)
    proof: list[bytes] = []
    m, start, end, whole = old_size, 0, new_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            proof.append(subtrees.root(start + k, end))
            end = start + k
        else:
            proof.append(subtrees.root(start, start + k))
            m -= k
            start += k
            whole = False
    if not whole:  # SUBPROOF(m, D[m], false) names the old subtree; with b true it is the old root, known already
        proof.append(subtrees.root(start, end))
    proof.reverse()
    return proof


# -- verification ---------------------------------------------------------------------------------------------


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: ``leaf`` (a leaf hash) is at ``index`` of the tree of ``size`` whose root is ``root``."""
    _check_hashes(leaf=leaf, root=root, proof=proof)
    _check_size("size", size)
    _check_index(index, size)
    inner = (index ^ (size - 1)).bit_length()
    expected = inner + (index >> inner).bit_count()
    if len(proof) != expected:
        raise ProofError(
            reasons.PROOF_WRONG_LENGTH,
            f"an inclusion proof of index {index} in a tree of {size} holds {expected} hashes, not {len(proof)}",
        )
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError(reasons.PROOF_WRONG_LENGTH, "the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(reasons.PROOF_WRONG_LENGTH, "the inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError(
            reasons.PROOF_INVALID, f"the inclusion proof of index {index} does not lead to the root of {size}"
        )


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: the tree of ``new_size`` (``new_root``) extends the one of ``old_size`` (``old_root``)."""
    _check_hashes(old_root=old_root, new_root=new_root, proof=proof)
    _check_sizes(old_size, new_size)
    if old_size in (0, new_size):
        if proof:
            raise ProofError(
                reasons.PROOF_WRONG_LENGTH,
                f"a consistency proof from {old_size} to {new_size} is empty, not {len(proof)} hashes",
            )
        if old_size == new_size and old_root != new_root:
            raise ProofError(reasons.PROOF_INVALID, f"two different roots for the tree size {old_size}")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ProofError(
                reasons.PROOF_INVALID, "the old root is not the empty tree's hash, the only root of size 0"
            )
        return
    fork = ((old_size - 1) ^ (new_size - 1)).bit_length()
    shift = (old_size & -old_size).bit_length() - 1  # trailing zero bits of old_size
    whole = old_size == 1 << shift  # old is a power of two: its root is the proof's unstated first node
    expected = (0 if whole else 1) + fork - shift + ((old_size - 1) >> fork).bit_count()
    if len(proof) != expected:
        raise ProofError(
            reasons.PROOF_WRONG_LENGTH,
            f"a consistency proof from {old_size} to {new_size} holds {expected} hashes, not {len(proof)}",
        )
    path = [old_root, *proof] if whole else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(reasons.PROOF_WRONG_LENGTH, "the consistency proof is longer than the new tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(reasons.PROOF_WRONG_LENGTH, "the consistency proof is shorter than the new tree is deep")
    if fr != old_root:
        raise ProofError(reasons.PROOF_INVALID, f"the consistency proof does not lead to the old root of {old_size}")
    if sr != new_root:
        raise ProofError(reasons.PROOF_INVALID, f"the consistency proof does not lead to the new root of {new_size}")


# -- arguments ------------------------------------------------------------------------------------------------


def _check_size(name: str, value: int) -> None:
    if type(value) is not int or not 0 <= value <= MAX_SIZE:
        raise ProofError(reasons.SIZE_OUT_OF_RANGE, f"{name} {value!r} is not a tree size (0 to 2**63 - 1)")


def _check_index(index: int, size: int) -> None:
    if type(index) is not int or not 0 <= index < size:
        raise ProofError(reasons.INDEX_OUT_OF_RANGE, f"index {index!r} is not in a tree of {size} (0 to size - 1)")


def _check_sizes(old_size: int, new_size: int) -> None:
    _check_size("old size", old_size)
    _check_size("new size", new_size)
    if old_size > new_size:
        raise ProofError(reasons.SIZE_OUT_OF_RANGE, f"old size {old_size} is larger than new size {new_size}")


def _check_hashes(proof: Sequence[bytes], **named: bytes) -> None:
    for name, value in named.items():
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ProofError(reasons.HASH_MALFORMED, f"the {name.replace('_', ' ')} is not a {HASH_SIZE}-byte hash")
    for position, value in enumerate(proof):
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ProofError(reasons.HASH_MALFORMED, f"hash {position} of the proof is not {HASH_SIZE} bytes")
