/**
 * The `memstore-entry/v1` line format (docs/marketplace.md, "Log entries"): what one leaf of the marketplace's
 * transparency log holds. `parseEntry` accepts exactly the bytes `encodeEntry` writes, with the same reasons as the
 * Python implementation (memos_grpc/marketplace/entries.py).
 */
import { VerifyError } from "./errors.js";

export const ENTRY_HEADER = "memstore-entry/v1";
export const ENTRY_TYPES = ["publish", "grant", "yank", "revoke", "key"] as const;
/** Only yank and revoke carry a `ref` line, and they always do. */
const REF_TYPES = new Set(["yank", "revoke"]);
export const MAX_ENTRY_BYTES = 64 * 1024;
/** Log indexes are tree sizes minus one: a tree holds at most 2^63 - 1 leaves. */
export const MAX_LOG_INDEX = (1n << 63n) - 2n;

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const KEY_ID = /^[0-9a-f]{64}$/;
const DECIMAL = /^(0|[1-9][0-9]{0,18})$/;
const OTHER_VERSION = /^memstore-entry\/v[0-9]{1,9}$/;
const FIELDS = ["type", "subject", "statement", "signer"] as const;

export interface Entry {
  type: string;
  /** The release statement the event concerns, `sha256:<hex>`. */
  subject: string;
  /** sha256 of the payload bytes of the signed envelope that records the event, `sha256:<hex>`. */
  statement: string;
  /** The signer's key id (64 lowercase hex). */
  signer: string;
  /** The log index a yank or revoke acts on (a bigint: it reaches 2^63 - 2); null for every other type. */
  ref: bigint | null;
}

function malformed(message: string): VerifyError {
  return new VerifyError("ENTRY_MALFORMED", message);
}

function value(lines: string[], number: number, field: string): string {
  const line = lines[number - 1];
  if (line === undefined || !line.startsWith(field + " ")) throw malformed(`line ${number} must be '${field} <value>'`);
  return line.slice(field.length + 1);
}

function checkType(kind: string): void {
  if (!(ENTRY_TYPES as readonly string[]).includes(kind)) {
    throw new VerifyError("ENTRY_TYPE_INVALID", `type ${JSON.stringify(kind.slice(0, 40))} is not one of ${ENTRY_TYPES.join(", ")}`);
  }
}

function checkDigest(field: string, digest: string): void {
  if (!DIGEST.test(digest)) throw new VerifyError("ENTRY_DIGEST_INVALID", `${field} must be sha256:<64 lowercase hex digits>`);
}

function parseRef(text: string): bigint {
  if (!DECIMAL.test(text) || BigInt(text) > MAX_LOG_INDEX) {
    throw new VerifyError(
      "ENTRY_REF_INVALID",
      `ref ${JSON.stringify(text.slice(0, 40))} must be decimal without sign or leading zeros, 0 to ${MAX_LOG_INDEX}`,
    );
  }
  return BigInt(text);
}

/** The entry `data` encodes, read by the one grammar of docs/marketplace.md; throws VerifyError. */
export function parseEntry(data: Uint8Array): Entry {
  if (data.length > MAX_ENTRY_BYTES) throw new VerifyError("ENTRY_TOO_LARGE", `the entry is ${data.length} bytes; at most ${MAX_ENTRY_BYTES}`);
  const nonAscii = data.findIndex((byte) => byte > 0x7f);
  if (nonAscii !== -1) throw malformed(`the entry is not ASCII (byte ${nonAscii})`);
  const text = Buffer.from(data).toString("latin1");
  if (text.includes("\r")) throw malformed('lines end with "\\n" alone; the entry holds a "\\r"');
  if (!text.endsWith("\n")) throw malformed('the entry must end with "\\n"');
  const lines = text.slice(0, -1).split("\n");
  if (lines[0] !== ENTRY_HEADER) {
    if (OTHER_VERSION.test(lines[0]!)) {
      throw new VerifyError("ENTRY_VERSION_UNSUPPORTED", `${JSON.stringify(lines[0])} is not ${JSON.stringify(ENTRY_HEADER)}`);
    }
    throw malformed(`the first line must be ${JSON.stringify(ENTRY_HEADER)}`);
  }
  const [kind, subject, statement, signer] = FIELDS.map((field, i) => value(lines, i + 2, field)) as [string, string, string, string];
  checkType(kind);
  checkDigest("subject", subject);
  checkDigest("statement", statement);
  if (!KEY_ID.test(signer)) throw new VerifyError("ENTRY_SIGNER_INVALID", "signer must be a key id: 64 lowercase hex digits");
  let ref: bigint | null = null;
  let count: number;
  if (REF_TYPES.has(kind)) {
    const line = lines[5];
    if (line === undefined) throw new VerifyError("ENTRY_REF_MISSING", `a ${kind} entry needs a line 6 'ref <log index>'`);
    if (!line.startsWith("ref ")) throw malformed("line 6 must be 'ref <log index>'");
    ref = parseRef(line.slice(4));
    count = 6;
  } else {
    if (lines.length > 5 && lines[5]!.startsWith("ref ")) throw new VerifyError("ENTRY_REF_UNEXPECTED", `a ${kind} entry carries no ref line`);
    count = 5;
  }
  if (lines.length > count) throw malformed(`a ${kind} entry has ${count} lines; this one has ${lines.length}`);
  return { type: kind, subject, statement, signer, ref };
}

/** The entry's bytes: what `parseEntry` reads back, byte for byte. */
export function encodeEntry(entry: Entry): Uint8Array {
  const lines = [ENTRY_HEADER, `type ${entry.type}`, `subject ${entry.subject}`, `statement ${entry.statement}`, `signer ${entry.signer}`];
  if (entry.ref !== null) lines.push(`ref ${entry.ref}`);
  return new Uint8Array(Buffer.from(lines.join("\n") + "\n", "latin1"));
}
