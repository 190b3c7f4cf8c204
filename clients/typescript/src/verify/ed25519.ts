/**
 * Ed25519 through node:crypto (OpenSSL, the same verdicts as Python's `cryptography`), and key ids.
 *
 * A key id is the lowercase hex sha256 of the key's DER SubjectPublicKeyInfo. Small-order and non-canonical public
 * keys are refused where a trust root is parsed (`isStrictPublicKey`): OpenSSL verifies a small-order key's signature
 * over every message.
 */
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from "node:crypto";

export const PUBLIC_KEY_BYTES = 32;
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

export function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function spki(raw: Uint8Array): Buffer {
  return Buffer.concat([SPKI_PREFIX, raw]);
}

/** Lowercase hex sha256 of the raw key's DER SubjectPublicKeyInfo. */
export function keyId(raw: Uint8Array): string {
  return sha256Hex(spki(raw));
}

/** A raw 32-byte Ed25519 public key ready to verify with (parsed once). */
export class PublicKey {
  private readonly key: KeyObject | null;

  constructor(readonly raw: Uint8Array) {
    let key: KeyObject | null = null;
    if (raw.length === PUBLIC_KEY_BYTES) {
      try {
        key = createPublicKey({ key: spki(raw), format: "der", type: "spki" });
      } catch {
        key = null;
      }
    }
    this.key = key;
  }

  /** True if `signature` is a valid Ed25519 signature of `message` by this key. */
  verify(signature: Uint8Array, message: Uint8Array): boolean {
    if (this.key === null || signature.length !== 64) return false;
    try {
      return cryptoVerify(null, message, this.key, signature);
    } catch {
      return false;
    }
  }
}

// The field prime 2^255 - 19, and the y coordinates of the eight points of small order (RFC 8032 encodings).
const P = (1n << 255n) - 19n;
const SMALL_ORDER_Y = new Set<bigint>([
  0n,
  1n,
  P - 1n,
  // y of the points of order 8: ±sqrt((1 ± sqrt(... ))) as in libsodium's blocklist.
  0x7a03ac9277fdc74ec6cc392cfa53202a0f67100d760b3cba4fd84d3d706a17c7n,
  0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n,
]);

/** Canonical (y < p) and not of small order: the keys the protocol accepts where it parses one. */
export function isStrictPublicKey(raw: Uint8Array): boolean {
  if (raw.length !== PUBLIC_KEY_BYTES) return false;
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? (raw[i] as number) & 0x7f : (raw[i] as number));
  if (y >= P) return false;
  return !SMALL_ORDER_Y.has(y);
}
