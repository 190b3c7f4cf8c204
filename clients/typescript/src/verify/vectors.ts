/**
 * Runs one testdata/vectors/*.json object the way testdata/vectors/README.md says for its kind, giving the whole
 * outcome to compare with its `expected`. The conformance command and the tests share it, so they cannot drift.
 * A vector whose inputs are not what the kind needs throws BadRequestError; an unknown kind gives null.
 */
import { verifyBundle, verifyStatementEnvelope, type BundleLimits, type TrustPolicy } from "./bundle.js";
import { parseEnvelope, type TrustedKey } from "./dsse.js";
import { sha256Hex, PublicKey } from "./ed25519.js";
import { VerifyError } from "./errors.js";
import { encodeEntry, parseEntry } from "./entries.js";
import { openNote, type NoteVerifier } from "./note.js";
import { parsePolicy, parseVkey, PolicyError, satisfied } from "./policy.js";
import { checkpointBody, parseCheckpoint } from "./checkpoint.js";
import { verifyCosigned } from "./cosignature.js";
import { verifyProof } from "./proof.js";
import { parseTerms, permits, termsDigest, type Terms } from "./terms.js";
import { verifyGrant } from "./grants.js";
import { leafHash, rootFromLeaves, verifyConsistency, verifyInclusion } from "./merkle.js";
import { parseTime, type Instant } from "./time.js";
import { parseTrustRoot, verifyRootUpdate } from "./trustroot.js";

export type Outcome = Record<string, unknown> & { valid: boolean; reason: string };
type Inputs = Record<string, unknown>;

export class BadRequestError extends Error {}

/**
 * JSON.parse for request lines and vector files, keeping every integer past 2^53 exact as a bigint (from its source
 * text): a tree size reaches 2^63 - 1, which a double rounds. A number written with a fraction or an exponent is
 * not an integer even when its value is one (`1.0`, `1e2`): it becomes NaN, which no input accepts, as the
 * reference reads it as a float. Protocol data never comes through here (json.ts).
 */
export function parseRequestJson(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) => {
    if (typeof value !== "number" || context?.source === undefined) return value;
    if (!/^-?[0-9]+$/.test(context.source)) return Number.NaN;
    return Number.isSafeInteger(value) ? value : BigInt(context.source);
  });
}

/** Whether every string in a parsed JSON value, member names included, is Unicode text (no lone surrogate). */
export function wellFormed(value: unknown): boolean {
  if (typeof value === "string") return value.isWellFormed();
  if (Array.isArray(value)) return value.every(wellFormed);
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).every(([name, member]) => name.isWellFormed() && wellFormed(member));
  }
  return true;
}

function isRecord(value: unknown): value is Inputs {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function field(inputs: Inputs, name: string): unknown {
  if (!Object.hasOwn(inputs, name)) throw new BadRequestError(`inputs has no ${name}`);
  return inputs[name];
}

function text(inputs: Inputs, name: string): string {
  const value = field(inputs, name);
  if (typeof value !== "string") throw new BadRequestError(`inputs.${name} is not a string`);
  return value;
}

/**
 * The largest chunk size, threshold, limit, use count or age a request may give: 2^53 - 1, the largest integer every
 * JSON reader holds exactly (docs/conformance.md, "Integers").
 */
export const MAX_REQUEST_INTEGER = Number.MAX_SAFE_INTEGER;
/** The largest Merkle tree size or index a request may give: 2^64 - 1, so the verifier refuses those past 2^63 - 1. */
const MAX_TREE_INTEGER = 2n ** 64n - 1n;

/** An integer input from 0 to MAX_REQUEST_INTEGER: one out of range is the request's mistake, never the verifier's. */
function int(inputs: Inputs, name: string): number {
  const value = field(inputs, name);
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new BadRequestError(`inputs.${name} is not an integer from 0 to ${MAX_REQUEST_INTEGER}`);
  }
  return value;
}

/** A Merkle tree size or index: a uint64, as RFC 9162 has them; the verifier refuses those past 2^63 - 1. */
function treeInteger(inputs: Inputs, name: string): bigint {
  const value = field(inputs, name);
  const integer = typeof value === "number" && Number.isSafeInteger(value) ? BigInt(value) : value;
  if (typeof integer !== "bigint" || integer < 0n || integer > MAX_TREE_INTEGER) {
    throw new BadRequestError(`inputs.${name} is not an integer from 0 to 2^64 - 1`);
  }
  return integer;
}

function list<T>(inputs: Inputs, name: string, item: (value: unknown) => value is T): T[] {
  const value = field(inputs, name);
  if (!Array.isArray(value) || !value.every(item)) throw new BadRequestError(`inputs.${name} is not a list of the right items`);
  return value;
}

function isString(value: unknown): value is string {
  return typeof value === "string";
}

function instant(inputs: Inputs, name: string): Instant {
  const parsed = parseTime(text(inputs, name));
  if (parsed === null) throw new BadRequestError(`inputs.${name} is not an RFC 3339 time`);
  return parsed;
}

function b64(value: unknown, name: string): Uint8Array {
  if (typeof value !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) {
    throw new BadRequestError(`${name} is not standard base64`);
  }
  return new Uint8Array(Buffer.from(value, "base64"));
}

function policy(inputs: Inputs): TrustPolicy {
  const threshold = int(inputs, "threshold");
  const required = field(inputs, "required_key_ids");
  if (!Array.isArray(required) || !required.every((k) => typeof k === "string")) {
    throw new BadRequestError("inputs.required_key_ids is not a list of strings");
  }
  const list = field(inputs, "trusted_keys");
  if (!Array.isArray(list)) throw new BadRequestError("inputs.trusted_keys is not a list");
  const keys = new Map<string, TrustedKey>();
  for (const item of list) {
    if (!isRecord(item)) throw new BadRequestError("a trusted key is not an object");
    const when = (name: string): Instant | null => (Object.hasOwn(item, name) ? instant(item, name) : null);
    const id = text(item, "key_id");
    keys.set(id, {
      keyId: id,
      publicKey: new PublicKey(b64(item["public_key"], "trusted_keys[].public_key")),
      notBefore: when("not_before"),
      notAfter: when("not_after"),
      revokedAt: when("revoked_at"),
    });
  }
  return { role: "node", keys, threshold, requiredKeyIds: required as string[] };
}

function* split(data: Uint8Array, chunk: number): Generator<Uint8Array> {
  if (chunk === 0) {
    yield data;
    return;
  }
  for (let start = 0; start < data.length; start += chunk) yield data.subarray(start, start + chunk);
}

function failed(error: unknown): Outcome {
  if (error instanceof VerifyError) return { valid: false, reason: error.reason };
  throw error;
}

async function runEnvelope(inputs: Inputs): Promise<Outcome> {
  const envelope = text(inputs, "envelope");
  const trust = policy(inputs);
  const now = instant(inputs, "now");
  try {
    const payload = verifyStatementEnvelope(Buffer.from(envelope, "utf8"), trust, now);
    return { valid: true, reason: "", payload_sha256: sha256Hex(payload) };
  } catch (error) {
    return failed(error);
  }
}

async function runBundle(inputs: Inputs, chunk: number): Promise<Outcome> {
  const data = b64(inputs["bundle"], "inputs.bundle");
  const trust = policy(inputs);
  const now = instant(inputs, "now");
  const raw = field(inputs, "limits");
  if (!isRecord(raw)) throw new BadRequestError("inputs.limits is not an object");
  const limits: BundleLimits = {
    maxEntryBytes: int(raw, "max_entry_bytes"),
    maxBundleBytes: int(raw, "max_bundle_bytes"),
    maxEntries: int(raw, "max_entries"),
    maxEnvelopeBytes: int(raw, "max_envelope_bytes"),
    maxCubeBytes: int(raw, "max_cube_bytes"),
  };
  const report = await verifyBundle(split(data, chunk), trust, limits, now);
  if (!report.valid) return { valid: false, reason: report.reason };
  return {
    valid: true,
    reason: "",
    statement_sha256: report.statementSha256,
    cube_count: report.cubeCount,
    blob_count: report.blobCount,
  };
}

async function runTrustRootUpdate(inputs: Inputs): Promise<Outcome> {
  const now = instant(inputs, "now");
  const current = text(inputs, "current_root");
  const proposed = text(inputs, "proposed_root");
  let root;
  try {
    root = parseTrustRoot(parseEnvelope(Buffer.from(current, "utf8")).payload);
  } catch (error) {
    throw new BadRequestError(`inputs.current_root is not a trust root: ${(error as Error).message}`);
  }
  try {
    const updated = verifyRootUpdate(root, Buffer.from(proposed, "utf8"), now);
    return { valid: true, reason: "", version: updated.root.version };
  } catch (error) {
    return failed(error);
  }
}

async function runMerkle(inputs: Inputs): Promise<Outcome> {
  const operation = text(inputs, "operation");
  if (operation === "hashes") {
    const leaves = list(inputs, "entries", isString).map((e) => leafHash(b64(e, "inputs.entries[]")));
    const hex = (hash: Uint8Array): string => Buffer.from(hash).toString("hex");
    const nodes = [];
    for (let level = 0; 2 ** level <= leaves.length; level++) {
      for (let index = 0; index < Math.floor(leaves.length / 2 ** level); index++) {
        const subtree = leaves.slice(index * 2 ** level, (index + 1) * 2 ** level);
        nodes.push({ level, index, hash: hex(rootFromLeaves(subtree)) });
      }
    }
    const roots = [];
    for (let size = 0; size <= leaves.length; size++) roots.push(hex(rootFromLeaves(leaves.slice(0, size))));
    return { valid: true, reason: "", leaf_hashes: leaves.map(hex), nodes, roots };
  }
  const proof = list(inputs, "proof", isString).map((h) => b64(h, "inputs.proof[]"));
  try {
    if (operation === "inclusion") {
      const leaf = b64(inputs["leaf_hash"], "inputs.leaf_hash");
      const root = b64(inputs["root"], "inputs.root");
      verifyInclusion(leaf, treeInteger(inputs, "index"), treeInteger(inputs, "size"), proof, root);
    } else if (operation === "consistency") {
      const oldSize = treeInteger(inputs, "old_size");
      const newSize = treeInteger(inputs, "new_size");
      verifyConsistency(oldSize, newSize, b64(inputs["old_root"], "inputs.old_root"), b64(inputs["new_root"], "inputs.new_root"), proof);
    } else {
      throw new BadRequestError(`inputs.operation ${JSON.stringify(operation)} is not hashes, inclusion or consistency`);
    }
  } catch (error) {
    return failed(error);
  }
  return { valid: true, reason: "" };
}

/** A number when it is one exactly, else a bigint: what parseRequestJson reads the expected value as. */
function exact(value: bigint): number | bigint {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

async function runEntry(inputs: Inputs): Promise<Outcome> {
  const data = b64(inputs["entry"], "inputs.entry");
  let entry;
  try {
    entry = parseEntry(data);
  } catch (error) {
    return failed(error);
  }
  // One form per entry: what parseEntry accepts, encodeEntry writes back byte for byte.
  if (!Buffer.from(encodeEntry(entry)).equals(data)) throw new Error("a parsed entry does not encode back to its bytes");
  const { type, subject, statement, signer } = entry;
  return { valid: true, reason: "", type, subject, statement, signer, ref: entry.ref === null ? null : exact(entry.ref) };
}

function noteVerifier(vkey: unknown, name: string): NoteVerifier {
  if (typeof vkey !== "string") throw new BadRequestError(`${name} is not a vkey string`);
  try {
    const { name: keyName, keyId, publicKey } = parseVkey(vkey);
    return { name: keyName, keyId, publicKey };
  } catch (error) {
    throw new BadRequestError(`${name}: ${(error as Error).message}`);
  }
}

async function runNote(inputs: Inputs): Promise<Outcome> {
  const note = text(inputs, "note");
  const verifiers = list(inputs, "verifiers", isString).map((v) => noteVerifier(v, "inputs.verifiers[]"));
  try {
    return { valid: true, reason: "", verified_by: [...openNote(note, verifiers).verifiedBy] };
  } catch (error) {
    return failed(error);
  }
}

async function runCheckpoint(inputs: Inputs): Promise<Outcome> {
  const body = text(inputs, "text");
  let checkpoint;
  try {
    checkpoint = parseCheckpoint(body);
  } catch (error) {
    return failed(error);
  }
  if (checkpointBody(checkpoint) !== body) throw new Error("a parsed checkpoint does not write back the same text");
  return {
    valid: true,
    reason: "",
    // A decimal string: sizes reach 2^63 - 1, past what a double holds.
    size: String(checkpoint.size),
    origin: checkpoint.origin,
    root: Buffer.from(checkpoint.root).toString("base64"),
    extensions: [...checkpoint.extensions],
  };
}

async function runCosignature(inputs: Inputs): Promise<Outcome> {
  const note = text(inputs, "note");
  const maxAge = BigInt(int(inputs, "max_age_seconds"));
  const now = BigInt(instant(inputs, "now").seconds);
  const witness = noteVerifier(inputs["witness"], "inputs.witness");
  try {
    return { valid: true, reason: "", timestamp: exact(verifyCosigned(note, witness, now, maxAge)) };
  } catch (error) {
    return failed(error);
  }
}

async function runTlogPolicy(inputs: Inputs): Promise<Outcome> {
  const policyText = text(inputs, "policy");
  const cosigned = list(inputs, "cosigned", isString);
  try {
    return { valid: true, reason: "", satisfied: satisfied(parsePolicy(policyText), cosigned) };
  } catch (error) {
    if (error instanceof PolicyError) return { valid: false, reason: error.reason };
    throw error;
  }
}

async function runTlogProof(inputs: Inputs): Promise<Outcome> {
  const entry = b64(inputs["entry"], "inputs.entry");
  const proof = text(inputs, "proof");
  const log = noteVerifier(inputs["log"], "inputs.log");
  const now = BigInt(instant(inputs, "now").seconds);
  const maxAge = BigInt(int(inputs, "max_age_seconds"));
  let policy;
  try {
    // The policy says whom the verifier trusts: one that does not parse is the caller's mistake.
    policy = parsePolicy(text(inputs, "policy"));
  } catch (error) {
    if (error instanceof PolicyError) throw new BadRequestError(`inputs.policy: ${error.message}`);
    throw error;
  }
  const report = verifyProof(entry, proof, log, policy, policy.witnesses, now, maxAge);
  if (report.shortfalls.length > 0) return { valid: false, reason: report.reason };
  return { valid: true, reason: "", index: exact(report.index as bigint) };
}

function decisions(terms: Terms, grantedAt: Instant, checks: unknown[]): Record<string, unknown>[] {
  // Every check is read before any is decided, so a malformed one is a bad request whatever its place.
  const read = checks.map((check) => {
    if (!isRecord(check)) throw new BadRequestError("a check is not an object");
    return { action: text(check, "action"), uses: int(check, "uses_so_far"), now: instant(check, "now") };
  });
  return read.map(({ action, uses, now }) => {
    const decision = permits(terms, action, uses, grantedAt, now);
    return { allowed: decision.allowed, reason: decision.reason, remaining: decision.remaining };
  });
}

async function runTerms(inputs: Inputs): Promise<Outcome> {
  const data = b64(inputs["terms"], "inputs.terms");
  const checks = Object.hasOwn(inputs, "checks") ? list(inputs, "checks", isRecord) : null;
  const grantedAt = checks !== null ? instant(inputs, "granted_at") : null;
  let terms;
  try {
    terms = parseTerms(data);
  } catch (error) {
    return failed(error);
  }
  const outcome: Outcome = {
    valid: true,
    reason: "",
    digest: termsDigest(data),
    license: terms.license,
    permitted: terms.permissions.map((p) => p.action),
  };
  if (checks !== null && grantedAt !== null) outcome["decisions"] = decisions(terms, grantedAt, checks);
  return outcome;
}

async function runGrant(inputs: Inputs): Promise<Outcome> {
  const trusted = policy({ ...inputs, threshold: 1, required_key_ids: [] }).keys;
  const grant = text(inputs, "grant");
  const now = instant(inputs, "now");
  const principal = text(inputs, "licensee_principal");
  const keyId = text(inputs, "licensee_key_id");
  const checks = list(inputs, "checks", isRecord);
  const result = verifyGrant(Buffer.from(grant, "utf8"), trusted, principal, keyId, now);
  if (result.reason !== "") return { valid: false, reason: result.reason };
  const granted = result.grant!;
  // Decisions run on the grant's terms from its notBefore, the time the license began.
  return {
    valid: true,
    reason: "",
    statement_sha256: granted.statementDigest.slice("sha256:".length),
    release: granted.release,
    publish_log_index: granted.publishLogIndex,
    decisions: decisions(granted.terms, granted.notBefore, checks),
  };
}

const RUNNERS: Record<string, (inputs: Inputs, chunk: number) => Promise<Outcome>> = {
  envelope: runEnvelope,
  bundle: runBundle,
  trust_root_update: runTrustRootUpdate,
  merkle: runMerkle,
  entry: runEntry,
  note: runNote,
  checkpoint: runCheckpoint,
  cosignature: runCosignature,
  "tlog-policy": runTlogPolicy,
  "tlog-proof": runTlogProof,
  terms: runTerms,
  grant: runGrant,
};

export const KINDS = Object.keys(RUNNERS);

/** The vector's whole outcome; null for a kind this verifier does not run. Throws BadRequestError. */
export async function runVector(vector: unknown, chunk: number): Promise<Outcome | null> {
  if (!isRecord(vector) || typeof vector["kind"] !== "string") throw new BadRequestError("the vector has no kind");
  // A vector that cannot be read is a bad request whatever its kind, as the reference checks it.
  const inputs = vector["inputs"];
  if (!isRecord(inputs)) throw new BadRequestError("the vector has no inputs object");
  const runner = Object.hasOwn(RUNNERS, vector["kind"]) ? RUNNERS[vector["kind"]] : undefined;
  if (runner === undefined) return null;
  return runner(inputs, chunk);
}
