/**
 * RFC 6962 / RFC 9162 §2.1 Merkle trees: leaf and node hashes, roots, and verification of inclusion (§2.1.3.2) and
 * consistency (§2.1.4.2) proofs, with the same edge cases and reasons as the Python implementation
 * (memos_grpc/transparency/merkle.py).
 *
 * Sizes and indexes are bigints: a tree size reaches 2^63 - 1, past what a double holds. The proof length is checked
 * before any hashing, so a proof one hash short or long is PROOF_WRONG_LENGTH, never a root mismatch. Reasons, first
 * that applies: HASH_MALFORMED, SIZE_OUT_OF_RANGE, INDEX_OUT_OF_RANGE, PROOF_WRONG_LENGTH, PROOF_INVALID.
 */
import { createHash } from "node:crypto";

import { VerifyError } from "./errors.js";

export const HASH_SIZE = 32;
/** Tree sizes and indexes are unsigned 63-bit numbers (a checkpoint's size is at most 2^63 - 1). */
export const MAX_SIZE = (1n << 63n) - 1n;
export const EMPTY_ROOT = new Uint8Array(createHash("sha256").digest());

export function leafHash(entry: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(Uint8Array.of(0)).update(entry).digest());
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(Uint8Array.of(1)).update(left).update(right).digest());
}

/** MTH over leaf hashes, pairing neighbours level by level and carrying an odd last node up unchanged. */
export function rootFromLeaves(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return EMPTY_ROOT;
  let level = [...leaves];
  while (level.length > 1) {
    const paired: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) paired.push(nodeHash(level[i]!, level[i + 1]!));
    if (level.length % 2 === 1) paired.push(level.at(-1)!);
    level = paired;
  }
  return level[0]!;
}

function bitLength(n: bigint): bigint {
  return BigInt(n.toString(2).length - (n === 0n ? 1 : 0));
}

function bitCount(n: bigint): bigint {
  let count = 0n;
  for (const digit of n.toString(2)) if (digit === "1") count++;
  return count;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function checkHashes(proof: readonly Uint8Array[], named: Record<string, Uint8Array>): void {
  for (const [name, value] of Object.entries(named)) {
    if (value.length !== HASH_SIZE) throw new VerifyError("HASH_MALFORMED", `the ${name} is not a ${HASH_SIZE}-byte hash`);
  }
  proof.forEach((value, position) => {
    if (value.length !== HASH_SIZE) {
      throw new VerifyError("HASH_MALFORMED", `hash ${position} of the proof is not ${HASH_SIZE} bytes`);
    }
  });
}

function checkSize(name: string, value: bigint): void {
  if (value < 0n || value > MAX_SIZE) throw new VerifyError("SIZE_OUT_OF_RANGE", `${name} ${value} is not a tree size (0 to 2^63 - 1)`);
}

function checkSizes(oldSize: bigint, newSize: bigint): void {
  checkSize("old size", oldSize);
  checkSize("new size", newSize);
  if (oldSize > newSize) throw new VerifyError("SIZE_OUT_OF_RANGE", `old size ${oldSize} is larger than new size ${newSize}`);
}

function wrongLength(message: string): VerifyError {
  return new VerifyError("PROOF_WRONG_LENGTH", message);
}

/** RFC 9162 §2.1.3.2: `leaf` (a leaf hash) is at `index` of the tree of `size` whose root is `root`; throws VerifyError. */
export function verifyInclusion(leaf: Uint8Array, index: bigint, size: bigint, proof: readonly Uint8Array[], root: Uint8Array): void {
  checkHashes(proof, { "leaf hash": leaf, root });
  checkSize("size", size);
  if (index < 0n || index >= size) {
    throw new VerifyError("INDEX_OUT_OF_RANGE", `index ${index} is not in a tree of ${size} (0 to size - 1)`);
  }
  const inner = bitLength(index ^ (size - 1n));
  const expected = inner + bitCount(index >> inner);
  if (BigInt(proof.length) !== expected) {
    throw wrongLength(`an inclusion proof of index ${index} in a tree of ${size} holds ${expected} hashes, not ${proof.length}`);
  }
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw wrongLength("the inclusion proof is longer than the tree is deep");
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while (fn !== 0n && (fn & 1n) === 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw wrongLength("the inclusion proof is shorter than the tree is deep");
  if (!equal(r, root)) throw new VerifyError("PROOF_INVALID", `the inclusion proof of index ${index} does not lead to the root of ${size}`);
}

/** RFC 9162 §2.1.4.2: the tree of `newSize` (`newRoot`) extends the one of `oldSize` (`oldRoot`); throws VerifyError. */
export function verifyConsistency(
  oldSize: bigint,
  newSize: bigint,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): void {
  checkHashes(proof, { "old root": oldRoot, "new root": newRoot });
  checkSizes(oldSize, newSize);
  if (oldSize === 0n || oldSize === newSize) {
    if (proof.length > 0) throw wrongLength(`a consistency proof from ${oldSize} to ${newSize} is empty, not ${proof.length} hashes`);
    if (oldSize === newSize && !equal(oldRoot, newRoot)) {
      throw new VerifyError("PROOF_INVALID", `two different roots for the tree size ${oldSize}`);
    }
    // Every tree extends the empty one, whose only root is sha256 of nothing.
    if (oldSize === 0n && !equal(oldRoot, EMPTY_ROOT)) {
      throw new VerifyError("PROOF_INVALID", "the old root is not the empty tree's hash, the only root of size 0");
    }
    return;
  }
  const fork = bitLength((oldSize - 1n) ^ (newSize - 1n));
  const shift = bitLength(oldSize & -oldSize) - 1n;
  // A power-of-two old tree's root is the proof's unstated first node.
  const whole = oldSize === 1n << shift;
  const expected = (whole ? 0n : 1n) + fork - shift + bitCount((oldSize - 1n) >> fork);
  if (BigInt(proof.length) !== expected) {
    throw wrongLength(`a consistency proof from ${oldSize} to ${newSize} holds ${expected} hashes, not ${proof.length}`);
  }
  const path = whole ? [oldRoot, ...proof] : [...proof];
  let fn = oldSize - 1n;
  let sn = newSize - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0n) throw wrongLength("the consistency proof is longer than the new tree is deep");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while (fn !== 0n && (fn & 1n) === 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw wrongLength("the consistency proof is shorter than the new tree is deep");
  if (!equal(fr, oldRoot)) throw new VerifyError("PROOF_INVALID", `the consistency proof does not lead to the old root of ${oldSize}`);
  if (!equal(sr, newRoot)) throw new VerifyError("PROOF_INVALID", `the consistency proof does not lead to the new root of ${newSize}`);
}
