package verify

import (
	"bytes"
	"crypto/sha256"
	"math/bits"
)

// RFC 6962 / RFC 9162 §2.1 Merkle trees, as memos_grpc/transparency/merkle.py verifies them: the proof length is
// checked before any hashing, so a proof one hash short or long is PROOF_WRONG_LENGTH, never a root mismatch.
// Reasons, first that applies: HASH_MALFORMED, SIZE_OUT_OF_RANGE, INDEX_OUT_OF_RANGE, PROOF_WRONG_LENGTH,
// PROOF_INVALID.

// HashSize is the size of every tree hash (sha256).
const HashSize = 32

// MaxTreeSize is the largest tree size and index bound: sizes are unsigned 63-bit numbers.
const MaxTreeSize = 1<<63 - 1

// EmptyRoot is the root of the empty tree, sha256 of nothing.
var EmptyRoot = func() []byte { sum := sha256.Sum256(nil); return sum[:] }()

// LeafHash is sha256(0x00 || entry).
func LeafHash(entry []byte) []byte {
	sum := sha256.Sum256(append([]byte{0}, entry...))
	return sum[:]
}

// NodeHash is sha256(0x01 || left || right).
func NodeHash(left, right []byte) []byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(left)
	h.Write(right)
	return h.Sum(nil)
}

// RootFromLeaves is the tree hash over leaf hashes, pairing neighbours level by level and carrying an odd last
// node up unchanged (the same tree as the RFC's split at the largest power of two).
func RootFromLeaves(leaves [][]byte) []byte {
	if len(leaves) == 0 {
		return EmptyRoot
	}
	level := leaves
	for len(level) > 1 {
		paired := make([][]byte, 0, (len(level)+1)/2)
		for i := 0; i+1 < len(level); i += 2 {
			paired = append(paired, NodeHash(level[i], level[i+1]))
		}
		if len(level)%2 == 1 {
			paired = append(paired, level[len(level)-1])
		}
		level = paired
	}
	return level[0]
}

func checkHashes(proof [][]byte, named ...any) error {
	for i := 0; i < len(named); i += 2 {
		if len(named[i+1].([]byte)) != HashSize {
			return fail("HASH_MALFORMED", "the %s is not a %d-byte hash", named[i], HashSize)
		}
	}
	for position, value := range proof {
		if len(value) != HashSize {
			return fail("HASH_MALFORMED", "hash %d of the proof is not %d bytes", position, HashSize)
		}
	}
	return nil
}

func checkSize(name string, size uint64) error {
	if size > MaxTreeSize {
		return fail("SIZE_OUT_OF_RANGE", "%s %d is not a tree size (0 to 2**63 - 1)", name, size)
	}
	return nil
}

// VerifyInclusion checks RFC 9162 §2.1.3.2: leaf (a leaf hash) is at index of the tree of size whose root is root.
func VerifyInclusion(leaf []byte, index, size uint64, proof [][]byte, root []byte) error {
	if err := checkHashes(proof, "leaf", leaf, "root", root); err != nil {
		return err
	}
	if err := checkSize("size", size); err != nil {
		return err
	}
	if index >= size {
		return fail("INDEX_OUT_OF_RANGE", "index %d is not in a tree of %d (0 to size - 1)", index, size)
	}
	inner := bits.Len64(index ^ (size - 1))
	expected := inner + bits.OnesCount64(index>>inner)
	if len(proof) != expected {
		return fail("PROOF_WRONG_LENGTH", "an inclusion proof of index %d in a tree of %d holds %d hashes, not %d",
			index, size, expected, len(proof))
	}
	fn, sn, r := index, size-1, leaf
	for _, p := range proof {
		if sn == 0 {
			return fail("PROOF_WRONG_LENGTH", "the inclusion proof is longer than the tree is deep")
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn, sn = fn>>1, sn>>1
	}
	if sn != 0 {
		return fail("PROOF_WRONG_LENGTH", "the inclusion proof is shorter than the tree is deep")
	}
	if !bytes.Equal(r, root) {
		return fail("PROOF_INVALID", "the inclusion proof of index %d does not lead to the root of %d", index, size)
	}
	return nil
}

// VerifyConsistency checks RFC 9162 §2.1.4.2: the tree of newSize (newRoot) extends the one of oldSize (oldRoot).
// Equal sizes take an empty proof and equal roots; old size 0 an empty proof and the empty tree's root.
func VerifyConsistency(oldSize, newSize uint64, oldRoot, newRoot []byte, proof [][]byte) error {
	if err := checkHashes(proof, "old root", oldRoot, "new root", newRoot); err != nil {
		return err
	}
	if err := checkSize("old size", oldSize); err != nil {
		return err
	}
	if err := checkSize("new size", newSize); err != nil {
		return err
	}
	if oldSize > newSize {
		return fail("SIZE_OUT_OF_RANGE", "old size %d is larger than new size %d", oldSize, newSize)
	}
	if oldSize == 0 || oldSize == newSize {
		if len(proof) != 0 {
			return fail("PROOF_WRONG_LENGTH", "a consistency proof from %d to %d is empty, not %d hashes",
				oldSize, newSize, len(proof))
		}
		if oldSize == newSize && !bytes.Equal(oldRoot, newRoot) {
			return fail("PROOF_INVALID", "two different roots for the tree size %d", oldSize)
		}
		if oldSize == 0 && !bytes.Equal(oldRoot, EmptyRoot) {
			return fail("PROOF_INVALID", "the old root is not the empty tree's hash, the only root of size 0")
		}
		return nil
	}
	fork := bits.Len64((oldSize - 1) ^ (newSize - 1))
	shift := bits.TrailingZeros64(oldSize)
	whole := oldSize == 1<<shift // old is a power of two: its root is the proof's unstated first node
	expected := fork - shift + bits.OnesCount64((oldSize-1)>>fork)
	if !whole {
		expected++
	}
	if len(proof) != expected {
		return fail("PROOF_WRONG_LENGTH", "a consistency proof from %d to %d holds %d hashes, not %d",
			oldSize, newSize, expected, len(proof))
	}
	path := proof
	if whole {
		path = append([][]byte{oldRoot}, proof...)
	}
	fn, sn := oldSize-1, newSize-1
	for fn&1 == 1 {
		fn, sn = fn>>1, sn>>1
	}
	fr, sr := path[0], path[0]
	for _, c := range path[1:] {
		if sn == 0 {
			return fail("PROOF_WRONG_LENGTH", "the consistency proof is longer than the new tree is deep")
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			for fn&1 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn, sn = fn>>1, sn>>1
	}
	if sn != 0 {
		return fail("PROOF_WRONG_LENGTH", "the consistency proof is shorter than the new tree is deep")
	}
	if !bytes.Equal(fr, oldRoot) {
		return fail("PROOF_INVALID", "the consistency proof does not lead to the old root of %d", oldSize)
	}
	if !bytes.Equal(sr, newRoot) {
		return fail("PROOF_INVALID", "the consistency proof does not lead to the new root of %d", newSize)
	}
	return nil
}
