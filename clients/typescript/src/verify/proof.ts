/**
 * C2SP tlog-proof@v1 files (docs/marketplace.md, "Proof files"): an entry's index, its inclusion path and the
 * cosigned checkpoint, verified offline against a log key, a policy and its witnesses. `verifyProof` never throws
 * on a bad proof: it reports every shortfall, in the Python implementation's order and with its reasons
 * (memos_grpc/transparency/proof.py): format, log signature, inclusion, cosignature, quorum, freshness.
 */
import { decodePaddedBase64 } from "./base64.js";
import { parseCheckpoint, type Checkpoint } from "./checkpoint.js";
import { checkCosignatures } from "./cosignature.js";
import { VerifyError } from "./errors.js";
import { HASH_SIZE, leafHash, verifyInclusion } from "./merkle.js";
import { MAX_NOTE_BYTES, openNote, type NoteSignature, type NoteVerifier } from "./note.js";
import { satisfied, type Policy } from "./policy.js";

export const PROOF_HEADER = "c2sp.org/tlog-proof@v1";
/** An inclusion path in a tree of at most 2^63 - 1 leaves has at most 63 hashes. */
const MAX_PATH_HASHES = 63;
const MAX_EXTRA_BYTES = 4096;
const MAX_INDEX = (1n << 63n) - 1n;
const INDEX = /^index ([0-9]+)$/;
const EXTRA = /^extra ([A-Za-z0-9+/=]+)$/;
const DECIMAL = /^(?:0|[1-9][0-9]{0,18})$/;

export interface TlogProof {
  readonly index: bigint;
  readonly path: readonly Uint8Array[];
  /** The signed checkpoint note, verbatim. */
  readonly checkpoint: string;
  /** Opaque, unauthenticated application data (the `extra` line); null when absent. */
  readonly extra: Uint8Array | null;
}

export type Check = "FORMAT" | "LOG_SIGNATURE" | "INCLUSION" | "COSIGNATURE" | "QUORUM" | "FRESHNESS";

export interface Shortfall {
  readonly check: Check;
  readonly reason: string;
  readonly message: string;
}

export interface ProofVerification {
  readonly shortfalls: readonly Shortfall[];
  /** The first shortfall's reason ("" when verified). */
  readonly reason: string;
  readonly index: bigint | null;
  readonly checkpoint: Checkpoint | null;
  /** Policy names of the witnesses whose cosignature verified and is fresh. */
  readonly freshWitnesses: readonly string[];
  /** Policy names of the witnesses whose cosignature verified but is too old or dated in the future. */
  readonly staleWitnesses: readonly string[];
}

function malformed(message: string): VerifyError {
  return new VerifyError("TLOG_PROOF_MALFORMED", message);
}

/** The proof file; throws VerifyError TLOG_PROOF_MALFORMED. The checkpoint note is split off, not checked. */
export function parseTlogProof(text: string): TlogProof {
  if (text.length > MAX_NOTE_BYTES + 8192) throw malformed("the proof file is too large");
  if (!text.isWellFormed() || text.startsWith("\ufeff")) throw malformed("the proof is not UTF-8 text without a byte order mark");
  if (/[\x00-\x09\x0b-\x1f]/.test(text)) throw malformed("the proof holds a control character other than newline (a CR?)");
  const split = text.indexOf("\n\n");
  const checkpoint = split < 0 ? "" : text.slice(split + 2);
  if (checkpoint === "") throw malformed("no blank line followed by the checkpoint");
  const lines = text.slice(0, split).split("\n");
  if (lines[0] !== PROOF_HEADER) throw malformed(`the first line is not ${JSON.stringify(PROOF_HEADER)}`);
  let position = 1;
  let extra: Uint8Array | null = null;
  if (position < lines.length && lines[position]!.startsWith("extra")) {
    const match = EXTRA.exec(lines[position]!);
    extra = match ? decodePaddedBase64(match[1]!) : null;
    if (extra === null || extra.length === 0 || extra.length > MAX_EXTRA_BYTES) {
      throw malformed(`the extra line is not 'extra <base64 of 1..${MAX_EXTRA_BYTES} bytes>'`);
    }
    position++;
  }
  const match = position < lines.length ? INDEX.exec(lines[position]!) : null;
  if (match === null || !DECIMAL.test(match[1]!) || BigInt(match[1]!) > MAX_INDEX) {
    throw malformed(`no 'index <decimal 0..${MAX_INDEX} without leading zeros>' line`);
  }
  const hashes = lines.slice(position + 1);
  if (hashes.length > MAX_PATH_HASHES) throw malformed(`the inclusion path has ${hashes.length} hashes; at most ${MAX_PATH_HASHES}`);
  const path = hashes.map((line, i) => {
    const digest = decodePaddedBase64(line);
    if (digest === null || digest.length !== HASH_SIZE) throw malformed(`path hash ${i + 1} is not ${HASH_SIZE} bytes of padded standard base64`);
    return digest;
  });
  return { index: BigInt(match[1]!), path, checkpoint, extra };
}

function report(
  shortfalls: Shortfall[],
  index: bigint | null = null,
  checkpoint: Checkpoint | null = null,
  freshWitnesses: string[] = [],
  staleWitnesses: string[] = [],
): ProofVerification {
  return { shortfalls, reason: shortfalls[0]?.reason ?? "", index, checkpoint, freshWitnesses, staleWitnesses };
}

/**
 * Checks that `entry` is in the log at the proof's index under a checkpoint the log signed (the log key's name is
 * the checkpoint's origin) and that a fresh quorum of `policy` cosigned it. `witnesses` maps the policy's witness
 * names to their keys; a cosignature counts when `now - maxAge <= its time <= now` (unix seconds).
 */
export function verifyProof(
  entry: Uint8Array,
  proofText: string,
  log: NoteVerifier,
  policy: Policy,
  witnesses: ReadonlyMap<string, NoteVerifier>,
  now: bigint,
  maxAge: bigint,
): ProofVerification {
  let proof: TlogProof;
  try {
    proof = parseTlogProof(proofText);
  } catch (error) {
    if (!(error instanceof VerifyError)) throw error;
    return report([{ check: "FORMAT", reason: error.reason, message: error.message }]);
  }
  let note;
  try {
    note = openNote(proof.checkpoint, [log]);
  } catch (error) {
    if (!(error instanceof VerifyError)) throw error;
    const signature = error.reason === "NOTE_SIGNATURE_INVALID" || error.reason === "NOTE_UNVERIFIED";
    return report(
      [
        signature
          ? { check: "LOG_SIGNATURE", reason: "TLOG_PROOF_LOG_SIGNATURE_INVALID", message: `checkpoint: ${error.message}` }
          : { check: "FORMAT", reason: "TLOG_PROOF_MALFORMED", message: `checkpoint: ${error.message}` },
      ],
      proof.index,
    );
  }
  let checkpoint: Checkpoint;
  try {
    checkpoint = parseCheckpoint(note.text);
  } catch (error) {
    if (!(error instanceof VerifyError)) throw error;
    return report([{ check: "FORMAT", reason: "TLOG_PROOF_MALFORMED", message: `checkpoint: ${error.message}` }], proof.index);
  }
  if (checkpoint.origin !== log.name) {
    const message = `the checkpoint's origin ${JSON.stringify(checkpoint.origin)} is not the log key's name ${JSON.stringify(log.name)}`;
    return report([{ check: "LOG_SIGNATURE", reason: "TLOG_PROOF_ORIGIN_MISMATCH", message }], proof.index, checkpoint);
  }
  const shortfalls: Shortfall[] = [];
  try {
    verifyInclusion(leafHash(entry), proof.index, checkpoint.size, proof.path, checkpoint.root);
  } catch (error) {
    if (!(error instanceof VerifyError)) throw error;
    shortfalls.push({ check: "INCLUSION", reason: "TLOG_PROOF_INCLUSION_INVALID", message: `${error.reason}: ${error.message}` });
  }
  const [fresh, aged, more] = cosignatures(note.text, note.signatures, policy, witnesses, now, maxAge);
  shortfalls.push(...more);
  return report(shortfalls, proof.index, checkpoint, fresh, aged);
}

/** (fresh witnesses, aged witnesses, shortfalls): a bad cosignature by a known witness refuses the proof. */
function cosignatures(
  text: string,
  signatures: readonly NoteSignature[],
  policy: Policy,
  witnesses: ReadonlyMap<string, NoteVerifier>,
  now: bigint,
  maxAge: bigint,
): [string[], string[], Shortfall[]] {
  const results = checkCosignatures(text, signatures, witnesses, now, maxAge);
  const shortfalls: Shortfall[] = results
    .filter((r) => r.status === "INVALID")
    .map((r) => ({ check: "COSIGNATURE", reason: "TLOG_PROOF_COSIGNATURE_INVALID", message: `witness ${JSON.stringify(r.name)}: ${r.message}` }));
  const fresh = [...new Set(results.filter((r) => r.status === "FRESH").map((r) => r.name))];
  const agedResults = results.filter((r) => r.status === "STALE" || r.status === "FUTURE");
  const aged = [...new Set(agedResults.map((r) => r.name).filter((name) => !fresh.includes(name)))];
  if (!satisfied(policy, fresh)) {
    if (satisfied(policy, [...fresh, ...aged])) {
      const future = agedResults.filter((r) => aged.includes(r.name)).every((r) => r.status === "FUTURE");
      shortfalls.push({
        check: "FRESHNESS",
        reason: future ? "TLOG_PROOF_COSIGNATURE_FUTURE" : "TLOG_PROOF_COSIGNATURE_STALE",
        message: `the quorum is met only with cosignatures dated in the future or older than ${maxAge} s: ${aged.join(", ")}`,
      });
    } else {
      shortfalls.push({
        check: "QUORUM",
        reason: "TLOG_PROOF_QUORUM_NOT_MET",
        message: `fresh cosignatures from ${fresh.length > 0 ? fresh.join(", ") : "no witness"} do not meet the quorum ${policy.quorum}`,
      });
    }
  }
  return [fresh, aged, shortfalls];
}
