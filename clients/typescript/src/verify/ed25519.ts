/**
 * Ed25519 through node:crypto (OpenSSL, the same verdicts as Python's `cryptography`), and key ids.
 *
 * A key id is the lowercase hex sha256 of the key's DER SubjectPublicKeyInfo. Small-order and non-canonical public
 * keys (`isStrictPublicKey`) are refused wherever a key is read, and a `PublicKey` made of one verifies nothing:
 * OpenSSL verifies a small-order key's signature over many messages.
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
    // A small-order or non-canonical key verifies nothing, whichever path brought it here: OpenSSL accepts a
    // small-order key's signature over many messages.
    if (isStrictPublicKey(raw)) {
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

// Curve25519 in Edwards form (RFC 8032 5.1): the field prime, the curve constant d and sqrt(-1).
const P = (1n << 255n) - 19n;

function mod(a: bigint): bigint {
  const r = a % P;
  return r < 0n ? r + P : r;
}

function power(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = mod(base);
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
  }
  return result;
}

const D = mod(-121665n * power(121666n, P - 2n));
const SQRT_MINUS_ONE = power(2n, (P - 1n) / 4n);

/** Projective doubling on -x^2 + y^2 = 1 + d x^2 y^2 (the "dbl-2008-bbjlp" formulas with a = -1). */
function double(x: bigint, y: bigint, z: bigint): [bigint, bigint, bigint] {
  const b = mod((x + y) * (x + y));
  const c = mod(x * x);
  const d = mod(y * y);
  const e = mod(-c);
  const f = mod(e + d);
  const j = mod(f - 2n * z * z);
  return [mod((b - c - d) * j), mod(f * (e - d)), mod(f * j)];
}

/** True when `raw` does not decode canonically (RFC 8032 5.1.3) or decodes to a point whose order divides 8. */
function smallOrderOrInvalid(raw: Uint8Array): boolean {
  let encoded = 0n;
  for (let i = PUBLIC_KEY_BYTES - 1; i >= 0; i--) encoded = (encoded << 8n) | BigInt(raw[i] as number);
  const y = encoded & ((1n << 255n) - 1n);
  const sign = encoded >> 255n;
  if (y >= P) return true;
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  // x = u v^3 (u v^7)^((p-5)/8): the square root of u/v with one exponentiation (RFC 8032 5.1.3).
  let x = mod(u * power(v, 3n) * power(u * power(v, 7n), (P - 5n) / 8n));
  if (mod(v * x * x - u) !== 0n) {
    x = mod(x * SQRT_MINUS_ONE);
    if (mod(v * x * x - u) !== 0n) return true; // not on the curve
  }
  if (x === 0n && sign === 1n) return true;
  // 8 * point in projective coordinates (no inversions): the small-order points are those it takes to (0 : 1 : 1).
  let point: [bigint, bigint, bigint] = [x, y, 1n];
  for (let i = 0; i < 3; i++) point = double(...point);
  return point[0] === 0n && point[1] === point[2];
}

/**
 * 32 bytes, the canonical encoding (y below p, no sign bit on x = 0) of a point on the curve that is not of small
 * order: the keys the protocol accepts wherever it reads one (docs/protocol.md, "The strict grammar").
 */
export function isStrictPublicKey(raw: Uint8Array): boolean {
  return raw.length === PUBLIC_KEY_BYTES && !smallOrderOrInvalid(raw);
}
