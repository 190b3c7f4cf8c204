/**
 * The two base64 rules of the protocol, as exact predicates (Buffer.from decodes anything, so it only runs after).
 *
 * - `decodeEnvelopeBase64`: a DSSE envelope's payload and signatures: the standard or the URL-safe alphabet (not
 *   both), padded or not, nothing else (no whitespace), unused trailing bits ignored.
 * - `decodePaddedBase64`: keys in a trust root: the standard alphabet, padded to a multiple of four.
 */

const STANDARD = /^[A-Za-z0-9+/]*={0,2}$/;

function padFits(text: string): boolean {
  const data = text.replace(/=+$/, "").length;
  const pad = text.length - data;
  const needed = (4 - (data % 4)) % 4;
  if (data % 4 === 1) return false;
  return pad <= needed;
}

/** Standard or URL-safe, padded or not; null when it is neither. */
export function decodeEnvelopeBase64(text: unknown): Uint8Array | null {
  if (typeof text !== "string") return null;
  let standard = text;
  if (text.includes("-") || text.includes("_")) {
    if (text.includes("+") || text.includes("/")) return null;
    standard = text.replaceAll("-", "+").replaceAll("_", "/");
  }
  if (!STANDARD.test(standard) || !padFits(standard)) return null;
  return new Uint8Array(Buffer.from(standard, "base64"));
}

/** Standard alphabet with its padding; null otherwise. */
export function decodePaddedBase64(text: unknown): Uint8Array | null {
  if (typeof text !== "string" || !STANDARD.test(text) || text.length % 4 !== 0) return null;
  const data = text.replace(/=+$/, "").length;
  if (data % 4 === 1) return null;
  return new Uint8Array(Buffer.from(text, "base64"));
}

/** Standard base64 with padding that re-encodes to the same text (no stray trailing bits); null otherwise. */
export function decodeCanonicalBase64(text: string): Uint8Array | null {
  const bytes = decodePaddedBase64(text);
  if (bytes === null || Buffer.from(bytes).toString("base64") !== text) return null;
  return bytes;
}
