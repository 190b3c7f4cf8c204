/**
 * C2SP signed-note v1.0.0 (docs/marketplace.md, "Signed notes"): text, a blank line, then signature lines
 * `— <key name> <base64(4-byte key id || signature)>`. Opening a note checks its grammar, ignores signatures from
 * keys the caller does not know (rotation and cosigning depend on it), refuses one from a known key that does not
 * verify, and refuses a note no known key verified; the reasons are the Python implementation's
 * (memos_grpc/transparency/note.py).
 */
import { decodePaddedBase64 } from "./base64.js";
import { PublicKey } from "./ed25519.js";
import { VerifyError } from "./errors.js";
import { validKeyName } from "./policy.js";

export const KEY_ID_BYTES = 4;
export const ED25519_SIGNATURE_BYTES = 64;
/** Signature lines a note may carry (Go's golang.org/x/mod/sumdb/note stops at 100). */
export const MAX_SIGNATURES = 100;
export const MAX_NOTE_BYTES = 1 << 20;
/** Decoded bytes of one signature, key id included: room for post-quantum signatures of unknown keys. */
const MAX_SIGNATURE_BYTES = 8192;
const SIGNATURE_LINE = /^\u2014 ([^ ]+) ([A-Za-z0-9+/=]+)$/;
// C0 controls but the newline.
const CONTROL = /[\x00-\x09\x0b-\x1f]/;

export interface NoteVerifier {
  readonly name: string;
  readonly keyId: Uint8Array;
  readonly publicKey: Uint8Array;
}

export interface NoteSignature {
  readonly name: string;
  readonly keyId: Uint8Array;
  readonly signature: Uint8Array;
}

export interface SignedNote {
  /** The text, its final newline included: what the signatures sign. */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
  /** Names of the known verifiers whose signature verified, in the order of their first line. */
  readonly verifiedBy: readonly string[];
}

function noteError(reason: string, message: string): VerifyError {
  return new VerifyError(reason, message);
}

function parseSignatureLine(number: number, line: string): NoteSignature {
  const match = SIGNATURE_LINE.exec(line);
  if (match === null) throw noteError("NOTE_SIGNATURE_MALFORMED", `signature line ${number} is not '\u2014 <key name> <base64>'`);
  const name = match[1]!;
  if (!validKeyName(name)) throw noteError("NOTE_SIGNATURE_MALFORMED", `signature line ${number} has an invalid key name`);
  const raw = decodePaddedBase64(match[2]!);
  if (raw === null) throw noteError("NOTE_SIGNATURE_MALFORMED", `signature line ${number} is not standard padded base64`);
  if (raw.length <= KEY_ID_BYTES || raw.length > MAX_SIGNATURE_BYTES) {
    throw noteError(
      "NOTE_SIGNATURE_MALFORMED",
      `signature line ${number} decodes to ${raw.length} bytes; a key id and 1 to ${MAX_SIGNATURE_BYTES - KEY_ID_BYTES} signature bytes expected`,
    );
  }
  return { name, keyId: raw.subarray(0, KEY_ID_BYTES), signature: raw.subarray(KEY_ID_BYTES) };
}

/** The note's text and signature lines, grammar checked, no signature verified; throws VerifyError (NOTE_*). */
export function parseNote(note: string): { text: string; signatures: NoteSignature[] } {
  if (note.length > MAX_NOTE_BYTES) throw noteError("NOTE_TOO_LARGE", `the note is over ${MAX_NOTE_BYTES} bytes`);
  if (!note.isWellFormed()) throw noteError("NOTE_MALFORMED", "the note is not valid UTF-8 (a lone surrogate)");
  if (note.startsWith("\ufeff")) throw noteError("NOTE_MALFORMED", "the note starts with a byte order mark");
  if (Buffer.byteLength(note, "utf8") > MAX_NOTE_BYTES) throw noteError("NOTE_TOO_LARGE", `the note is over ${MAX_NOTE_BYTES} bytes`);
  if (CONTROL.test(note)) throw noteError("NOTE_MALFORMED", "the note holds a control character other than newline (a CR, a tab?)");
  if (!note.endsWith("\n")) throw noteError("NOTE_MALFORMED", "the note does not end with a newline");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw noteError("NOTE_MALFORMED", "the note has no blank line before its signatures");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (text.replace(/^\n+|\n+$/g, "") === "" || text.startsWith("\n") || text.includes("\n\n")) {
    throw noteError("NOTE_MALFORMED", "the note text is empty or holds a blank line");
  }
  if (block === "") throw noteError("NOTE_MALFORMED", "the note has no signature lines");
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) {
    throw noteError("NOTE_TOO_MANY_SIGNATURES", `the note carries ${lines.length} signature lines; at most ${MAX_SIGNATURES}`);
  }
  return { text, signatures: lines.map((line, i) => parseSignatureLine(i + 1, line)) };
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

/** Parses the note and verifies it (see the module comment); throws VerifyError with a stable reason. */
export function openNote(note: string, verifiers: readonly NoteVerifier[]): SignedNote {
  const known = new Map<string, NoteVerifier>();
  for (const candidate of verifiers) {
    const pair = `${candidate.name}\n${hex(candidate.keyId)}`;
    const seen = known.get(pair);
    if (seen !== undefined && hex(seen.publicKey) !== hex(candidate.publicKey)) {
      // Two keys under one name and id: whoever configured them made a mistake no verifier can resolve.
      throw noteError("NOTE_VERIFIER_AMBIGUOUS", `two verifier keys share the name ${candidate.name} and key id ${hex(candidate.keyId)}`);
    }
    known.set(pair, candidate);
  }
  const parsed = parseNote(note);
  const message = Buffer.from(parsed.text, "utf8");
  const verified: string[] = [];
  parsed.signatures.forEach((signature, index) => {
    const verifier = known.get(`${signature.name}\n${hex(signature.keyId)}`);
    if (verifier === undefined) return;
    // Every line from a known key is checked, repeats included: a bad one refuses the note.
    if (signature.signature.length !== ED25519_SIGNATURE_BYTES || !new PublicKey(verifier.publicKey).verify(signature.signature, message)) {
      throw noteError(
        "NOTE_SIGNATURE_INVALID",
        `signature line ${index + 1} by known key ${signature.name}+${hex(signature.keyId)} does not verify`,
      );
    }
    if (!verified.includes(verifier.name)) verified.push(verifier.name);
  });
  if (verified.length === 0) throw noteError("NOTE_UNVERIFIED", "no known key signed the note");
  return { text: parsed.text, signatures: parsed.signatures, verifiedBy: verified };
}
