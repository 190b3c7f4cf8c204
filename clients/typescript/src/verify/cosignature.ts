/**
 * C2SP tlog-cosignature v1.0.1, Ed25519: a witness's timestamped signature over a checkpoint. The signed message
 * is `cosignature/v1\ntime <unix seconds>\n` and the checkpoint's note text; the signature line carries
 * base64(key id || 8-byte big-endian timestamp || Ed25519 signature), the key id of signature type 0x04. The
 * reasons are the Python implementation's (memos_grpc/transparency/cosignature.py).
 */
import { PublicKey } from "./ed25519.js";
import { VerifyError } from "./errors.js";
import { ED25519_SIGNATURE_BYTES, parseNote, type NoteSignature, type NoteVerifier } from "./note.js";

const TIMESTAMP_BYTES = 8;
const COSIGNATURE_BYTES = TIMESTAMP_BYTES + ED25519_SIGNATURE_BYTES;
const MAX_TIMESTAMP = (1n << 63n) - 1n;

export type CosignatureStatus = "FRESH" | "STALE" | "FUTURE" | "INVALID";

export interface CosignatureResult {
  /** The verifier's label (a policy's witness name). */
  readonly name: string;
  readonly status: CosignatureStatus;
  readonly timestamp: bigint | null;
  readonly message: string;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

/** What an Ed25519 cosigner signs: the header line, the time line, the checkpoint's note text. */
export function cosignedMessage(checkpointText: string, timestamp: bigint): Uint8Array {
  return new Uint8Array(Buffer.from(`cosignature/v1\ntime ${timestamp}\n${checkpointText}`, "utf8"));
}

/** The cosignature's timestamp if it verifies with `verifier` (same name and key id); throws VerifyError. */
export function verifyCosignature(checkpointText: string, signature: NoteSignature, verifier: NoteVerifier): bigint {
  if (signature.name !== verifier.name || hex(signature.keyId) !== hex(verifier.keyId)) {
    throw new VerifyError("COSIGNATURE_KEY_MISMATCH", `the signature line is by ${signature.name}+${hex(signature.keyId)}, not ${verifier.name}`);
  }
  if (signature.signature.length !== COSIGNATURE_BYTES) {
    throw new VerifyError(
      "COSIGNATURE_INVALID",
      `cosignature by ${verifier.name} is ${signature.signature.length} bytes after its key id; ${COSIGNATURE_BYTES} expected`,
    );
  }
  const timestamp = Buffer.from(signature.signature).readBigUInt64BE(0);
  if (timestamp > MAX_TIMESTAMP) throw new VerifyError("COSIGNATURE_INVALID", `cosignature by ${verifier.name} has a timestamp over 2^63 - 1`);
  const message = cosignedMessage(checkpointText, timestamp);
  if (!new PublicKey(verifier.publicKey).verify(signature.signature.subarray(TIMESTAMP_BYTES), message)) {
    throw new VerifyError("COSIGNATURE_INVALID", `cosignature by ${verifier.name} does not verify`);
  }
  return timestamp;
}

/**
 * One result per signature line made under a known witness's key name and key id (other lines are ignored), in
 * the order of `verifiers` then of the lines. FRESH when `now - maxAge <= timestamp <= now` (unix seconds).
 */
export function checkCosignatures(
  checkpointText: string,
  signatures: readonly NoteSignature[],
  verifiers: ReadonlyMap<string, NoteVerifier>,
  now: bigint,
  maxAge: bigint,
): CosignatureResult[] {
  const results: CosignatureResult[] = [];
  for (const [label, verifier] of verifiers) {
    for (const signature of signatures) {
      if (signature.name !== verifier.name || hex(signature.keyId) !== hex(verifier.keyId)) continue;
      let timestamp: bigint;
      try {
        timestamp = verifyCosignature(checkpointText, signature, verifier);
      } catch (error) {
        if (!(error instanceof VerifyError)) throw error;
        results.push({ name: label, status: "INVALID", timestamp: null, message: error.message });
        continue;
      }
      const status: CosignatureStatus = timestamp > now ? "FUTURE" : now - timestamp > maxAge ? "STALE" : "FRESH";
      results.push({ name: label, status, timestamp, message: "" });
    }
  }
  return results;
}

/**
 * The time of `verifier`'s fresh cosignature on the checkpoint note; throws VerifyError otherwise. Only the note's
 * grammar is checked, not the log's signature (openNote does that): a line under the witness's name and key id
 * must be there (COSIGNATURE_MISSING), every such line must verify (COSIGNATURE_INVALID), and one must be dated
 * within `now - maxAge .. now` (COSIGNATURE_STALE, COSIGNATURE_FUTURE).
 */
export function verifyCosigned(note: string, verifier: NoteVerifier, now: bigint, maxAge: bigint): bigint {
  const parsed = parseNote(note);
  const results = checkCosignatures(parsed.text, parsed.signatures, new Map([[verifier.name, verifier]]), now, maxAge);
  if (results.length === 0) throw new VerifyError("COSIGNATURE_MISSING", `no cosignature by ${verifier.name}`);
  for (const result of results) if (result.status === "INVALID") throw new VerifyError("COSIGNATURE_INVALID", result.message);
  const fresh = results.filter((r) => r.status === "FRESH").map((r) => r.timestamp as bigint);
  if (fresh.length > 0) return fresh.reduce((a, b) => (a > b ? a : b));
  if (results.some((r) => r.status === "FUTURE")) throw new VerifyError("COSIGNATURE_FUTURE", `the cosignature by ${verifier.name} is dated after now`);
  throw new VerifyError("COSIGNATURE_STALE", `the cosignature by ${verifier.name} is older than ${maxAge} s`);
}
