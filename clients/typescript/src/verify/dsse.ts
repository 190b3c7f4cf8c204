/**
 * DSSE envelopes: the pre-authentication encoding, strict decoding and threshold verification.
 *
 * The payload is verified as the bytes the envelope carries; nothing is parsed before its signatures count. When
 * too few signatures count, the shortfall is the first that applies in the precedence of docs/protocol.md.
 */
import { decodeEnvelopeBase64 } from "./base64.js";
import { PublicKey } from "./ed25519.js";
import { isObject, parseJson, type JsonValue } from "./json.js";
import { compareTime, type Instant } from "./time.js";

export const STATEMENT_PAYLOAD_TYPE = "application/vnd.in-toto+json";
export const MAX_SIGNATURES = 256;

/** `DSSEv1 SP len(type) SP type SP len(body) SP body`, lengths in bytes as ASCII decimal. */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = Buffer.from(payloadType, "utf8");
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `),
    type,
    Buffer.from(` ${payload.length} `),
    payload,
  ]);
}

export interface Signature {
  readonly keyid: string;
  readonly sig: Uint8Array;
}

export interface Envelope {
  readonly payloadType: string;
  readonly payload: Uint8Array;
  readonly signatures: readonly Signature[];
}

export class EnvelopeFormatError extends Error {}

/** Decodes envelope JSON; unknown members are ignored. Throws EnvelopeFormatError. */
export function parseEnvelope(data: Uint8Array): Envelope {
  let document: JsonValue;
  try {
    document = parseJson(data);
  } catch (error) {
    throw new EnvelopeFormatError(`the envelope is not JSON: ${(error as Error).message}`);
  }
  if (!isObject(document)) throw new EnvelopeFormatError("the envelope is not a JSON object");
  const payloadType = document.get("payloadType");
  if (typeof payloadType !== "string") throw new EnvelopeFormatError("the envelope has no payloadType string");
  const payload = decodeEnvelopeBase64(document.get("payload"));
  if (payload === null) throw new EnvelopeFormatError("payload is not valid base64");
  const raw = document.get("signatures");
  if (!Array.isArray(raw)) throw new EnvelopeFormatError("the envelope has no signatures list");
  if (raw.length > MAX_SIGNATURES) {
    throw new EnvelopeFormatError(`the envelope carries ${raw.length} signatures; at most ${MAX_SIGNATURES}`);
  }
  const signatures = raw.map((item, index): Signature => {
    if (!isObject(item)) throw new EnvelopeFormatError(`signatures[${index}] is not an object`);
    const keyid = item.has("keyid") ? item.get("keyid") : "";
    if (typeof keyid !== "string") throw new EnvelopeFormatError(`signatures[${index}].keyid is not a string`);
    const sig = decodeEnvelopeBase64(item.get("sig"));
    if (sig === null) throw new EnvelopeFormatError(`signatures[${index}].sig is not valid base64`);
    return { keyid, sig };
  });
  return { payloadType, payload, signatures };
}

/** A key trusted for a purpose, with its optional validity window and revocation time. */
export interface TrustedKey {
  readonly keyId: string;
  readonly publicKey: PublicKey;
  readonly name?: string;
  readonly notBefore?: Instant | null;
  readonly notAfter?: Instant | null;
  readonly revokedAt?: Instant | null;
}

export function isRevoked(key: TrustedKey, now: Instant): boolean {
  return key.revokedAt != null && compareTime(now, key.revokedAt) >= 0;
}

/** Inside its validity window and not revoked. */
export function validAt(key: TrustedKey, now: Instant): boolean {
  if (isRevoked(key, now)) return false;
  if (key.notBefore != null && compareTime(now, key.notBefore) < 0) return false;
  return !(key.notAfter != null && compareTime(now, key.notAfter) >= 0);
}

export type Shortfall =
  | "SIGNATURE_INVALID"
  | "SIGNER_REVOKED"
  | "SIGNER_EXPIRED"
  | "THRESHOLD_NOT_MET"
  | "UNTRUSTED_SIGNER";

export interface EnvelopeVerification {
  /** null when the threshold was met. */
  readonly shortfall: Shortfall | null;
  readonly message: string;
  readonly counted: readonly string[];
}

type Status = "COUNTED" | "DUPLICATE_KEY" | "UNKNOWN_KEY" | "BAD_SIGNATURE" | "KEY_REVOKED" | "KEY_EXPIRED";

/** Checks each signature over the PAE against `trusted` (by key id, in order); counts distinct keys valid at `now`. */
export function verifyEnvelope(
  envelope: Envelope,
  trusted: ReadonlyMap<string, TrustedKey>,
  threshold: number,
  now: Instant,
): EnvelopeVerification {
  const message = pae(envelope.payloadType, envelope.payload);
  const counted: string[] = [];
  const statuses = new Set<Status>();
  for (const signature of envelope.signatures) statuses.add(checkOne(signature, message, trusted, now, counted));
  if (threshold >= 1 && counted.length >= threshold) return { shortfall: null, message: "", counted };
  const short = (shortfall: Shortfall, text: string): EnvelopeVerification => ({ shortfall, message: text, counted });
  if (statuses.has("BAD_SIGNATURE")) {
    return short("SIGNATURE_INVALID", "a signature by a trusted key does not verify: the bytes were changed");
  }
  if (statuses.has("KEY_REVOKED")) {
    return short("SIGNER_REVOKED", "a signing key is revoked, and too few other trusted keys signed");
  }
  if (statuses.has("KEY_EXPIRED")) {
    return short("SIGNER_EXPIRED", "a signing key is outside its validity window, and too few others signed");
  }
  if (counted.length > 0) {
    return short("THRESHOLD_NOT_MET", `${counted.length} distinct trusted key(s) signed; ${threshold} are required`);
  }
  if (envelope.signatures.length === 0) return short("UNTRUSTED_SIGNER", "the envelope carries no signature");
  return short("UNTRUSTED_SIGNER", "no signature is by a key trusted for this purpose");
}

function checkOne(
  signature: Signature,
  message: Uint8Array,
  trusted: ReadonlyMap<string, TrustedKey>,
  now: Instant,
  counted: string[],
): Status {
  // The keyid is a hint: try the key it names first, then every other trusted key.
  const hinted = trusted.get(signature.keyid);
  const candidates = hinted ? [hinted, ...[...trusted.values()].filter((k) => k !== hinted)] : [...trusted.values()];
  for (const key of candidates) {
    if (!key.publicKey.verify(signature.sig, message)) continue;
    if (isRevoked(key, now)) return "KEY_REVOKED";
    if (!validAt(key, now)) return "KEY_EXPIRED";
    if (counted.includes(key.keyId)) return "DUPLICATE_KEY";
    counted.push(key.keyId);
    return "COUNTED";
  }
  return hinted ? "BAD_SIGNATURE" : "UNKNOWN_KEY";
}
