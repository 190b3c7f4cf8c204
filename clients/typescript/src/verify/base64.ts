/**
 * The protocol's one base64 rule (docs/protocol.md, "The strict grammar"), as exact predicates (Buffer.from decodes
 * anything, so it only runs after the text passed).
 *
 * The rule: the standard alphabet with its `=` padding, no whitespace or other character, and canonical: the unused
 * bits of the last character are zero, so no two texts decode to the same bytes. A DSSE envelope's payload and
 * signatures may also use the URL-safe alphabet (never both in one text) and may leave the padding out; padding that
 * is present must be exactly right.
 *
 * - `decodeEnvelopeBase64`: a DSSE envelope's `payload` and `sig`.
 * - `decodePaddedBase64` (and its alias `decodeCanonicalBase64`): everything else (trust root keys, vkeys).
 */

const STANDARD = /^[A-Za-z0-9+/]*$/;
const URL_SAFE = /^[A-Za-z0-9_-]*$/;

function decode(text: unknown, dsse: boolean): Uint8Array | null {
  if (typeof text !== "string") return null;
  const body = text.replace(/=+$/, "");
  const padding = text.length - body.length;
  let standard: string;
  if (STANDARD.test(body)) standard = body;
  else if (dsse && URL_SAFE.test(body)) standard = body.replaceAll("-", "+").replaceAll("_", "/");
  else return null;
  if (body.length % 4 === 1) return null;
  const missing = (4 - (body.length % 4)) % 4;
  if (padding !== missing && !(dsse && padding === 0)) return null;
  const bytes = Buffer.from(standard, "base64");
  // Non-zero unused bits in the last character decode, but to bytes that encode differently: refuse them.
  if (bytes.toString("base64").replace(/=+$/, "") !== standard) return null;
  return new Uint8Array(bytes);
}

/** Standard or URL-safe, padded or not, canonical; null otherwise. */
export function decodeEnvelopeBase64(text: unknown): Uint8Array | null {
  return decode(text, true);
}

/** Standard alphabet with its padding, canonical; null otherwise. */
export function decodePaddedBase64(text: unknown): Uint8Array | null {
  return decode(text, false);
}

/** The same rule as `decodePaddedBase64` (kept for the vkey reader, which names it so). */
export function decodeCanonicalBase64(text: string): Uint8Array | null {
  return decode(text, false);
}
