/**
 * Offline bundle verification: a ustar stream of `memos-bundle`, `statement.dsse.json`, then the cube and blob
 * entries the signed statement lists, read once front to back through the steps of docs/protocol.md. The first
 * failure gives its stable reason; a verdict does not depend on how the input is cut into chunks.
 */
import { createHash } from "node:crypto";

import {
  EnvelopeFormatError,
  parseEnvelope,
  STATEMENT_PAYLOAD_TYPE,
  verifyEnvelope,
  type Envelope,
  type TrustedKey,
} from "./dsse.js";
import { sha256Hex } from "./ed25519.js";
import { VerifyError } from "./errors.js";
import { integerIn, integerValue, isObject, parseJson, type JsonObject, type JsonValue } from "./json.js";
import { TarReader, type Chunks } from "./tar.js";
import type { Instant } from "./time.js";

export const MARKER_NAME = "memos-bundle";
export const ENVELOPE_NAME = "statement.dsse.json";
export const MAJOR_VERSION = 1n;
export const MAX_MARKER_BYTES = 64;
export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER;
export const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
export const PREDICATE_TYPE = "https://memos-grpc.dev/MemCubeBundle/v1";

const HEX64 = /^[0-9a-f]{64}$/;
const CUBE_ENTRY = /^cubes\/[A-Za-z0-9][A-Za-z0-9._-]{0,94}\.pb$/;
const BLOB_ENTRY = /^blobs\/sha256\/([0-9a-f]{64})$/;

export interface BundleLimits {
  readonly maxEntryBytes: number;
  readonly maxBundleBytes: number;
  readonly maxEntries: number;
  readonly maxEnvelopeBytes: number;
  readonly maxCubeBytes: number;
}

/** Which keys must sign: the role's keys by key id (tried in this order), its threshold, and pinned key ids. */
export interface TrustPolicy {
  readonly role: string;
  readonly keys: ReadonlyMap<string, TrustedKey>;
  readonly threshold: number;
  readonly requiredKeyIds?: readonly string[];
}

export interface Subject {
  readonly name: string;
  readonly sha256: string;
  readonly size: number;
}

export interface Statement {
  readonly subjects: ReadonlyMap<string, Subject>;
  readonly predicate: JsonObject;
}

export interface BundleReport {
  valid: boolean;
  /** The stable reason ("" when valid). */
  reason: string;
  message: string;
  /** Lowercase hex sha256 of the verified statement bytes. */
  statementSha256: string;
  statement: Statement | null;
  cubeCount: number;
  blobCount: number;
  bundleBytes: number;
}

function statementEnvelope(data: Uint8Array): Envelope {
  let envelope: Envelope;
  try {
    envelope = parseEnvelope(data);
  } catch (error) {
    if (error instanceof EnvelopeFormatError) {
      throw new VerifyError("BUNDLE_ENVELOPE_MALFORMED", `the envelope is malformed: ${error.message}`);
    }
    throw error;
  }
  if (envelope.payloadType !== STATEMENT_PAYLOAD_TYPE) {
    throw new VerifyError(
      "BUNDLE_PAYLOAD_TYPE_INVALID",
      `payloadType is ${JSON.stringify(envelope.payloadType.slice(0, 80))}; a bundle's is ${STATEMENT_PAYLOAD_TYPE}`,
    );
  }
  return envelope;
}

/** Steps 2 and 3: decodes a statement envelope and checks its signatures; returns the verified payload. */
export function verifyStatementEnvelope(data: Uint8Array, policy: TrustPolicy, now: Instant): Uint8Array {
  const envelope = statementEnvelope(data);
  const verification = verifyEnvelope(envelope, policy.keys, policy.threshold, now);
  if (verification.shortfall !== null) {
    throw new VerifyError(`BUNDLE_${verification.shortfall}`, `${verification.message} (role ${policy.role})`);
  }
  const missing = (policy.requiredKeyIds ?? []).find((k) => !verification.counted.includes(k));
  if (missing !== undefined) {
    throw new VerifyError(
      "BUNDLE_REQUIRED_SIGNER_MISSING",
      `the trust policy requires a signature by key ${missing}, and the bundle has none that counts`,
    );
  }
  return envelope.payload;
}

function invalid(message: string): VerifyError {
  return new VerifyError("BUNDLE_STATEMENT_INVALID", message);
}

/** Parses verified statement bytes; unknown members are ignored. */
export function parseStatement(payload: Uint8Array, maxSubjects: number): Statement {
  let document: JsonValue;
  try {
    document = parseJson(payload);
  } catch (error) {
    throw invalid(`the statement is not JSON: ${(error as Error).message}`);
  }
  if (!isObject(document)) throw invalid("the statement is not a JSON object");
  if (document.get("_type") !== STATEMENT_TYPE) throw invalid(`the statement's _type must be ${STATEMENT_TYPE}`);
  if (document.get("predicateType") !== PREDICATE_TYPE) {
    throw invalid(`the statement's predicateType must be ${PREDICATE_TYPE}`);
  }
  const raw = document.get("subject");
  const predicate = document.has("predicate") ? document.get("predicate") : new Map();
  if (!Array.isArray(raw) || !isObject(predicate)) throw invalid("the statement needs a subject list and a predicate object");
  if (raw.length > maxSubjects) {
    throw new VerifyError(
      "BUNDLE_TOO_MANY_ENTRIES",
      `the statement lists ${raw.length} entries; the limit is ${maxSubjects}`,
    );
  }
  const subjects = new Map<string, Subject>();
  raw.forEach((item, index) => {
    const subject = parseSubject(index, item);
    if (subjects.has(subject.name)) throw invalid(`the statement lists ${JSON.stringify(subject.name)} twice`);
    subjects.set(subject.name, subject);
  });
  return { subjects, predicate };
}

function parseSubject(index: number, item: JsonValue): Subject {
  const where = `subject[${index}]`;
  const digest = isObject(item) ? item.get("digest") : undefined;
  const annotations = isObject(item) ? item.get("annotations") : undefined;
  if (
    !isObject(item) ||
    !item.has("name") ||
    !isObject(digest) ||
    !digest.has("sha256") ||
    !isObject(annotations) ||
    !annotations.has("size")
  ) {
    throw invalid(`${where} needs name, digest.sha256 and annotations.size`);
  }
  const name = item.get("name");
  const sha256 = digest.get("sha256");
  const size = annotations.get("size");
  if (typeof name !== "string" || typeof sha256 !== "string" || !HEX64.test(sha256)) {
    throw invalid(`${where} has a bad name or sha256`);
  }
  if (!integerIn(size, 0, MAX_SAFE_INTEGER)) throw invalid(`${where} size must be an integer from 0 to 2^53 - 1`);
  const blob = BLOB_ENTRY.exec(name);
  if (blob === null && !CUBE_ENTRY.test(name)) {
    throw invalid(`${where} names ${JSON.stringify(name.slice(0, 120))}; entries are cubes/<id>.pb or blobs/sha256/<hex>`);
  }
  if (blob !== null && blob[1] !== sha256) throw invalid(`${where}: a blob's name must be its own sha256`);
  return { name, sha256, size: integerValue(size) };
}

function checkMarker(data: Uint8Array): void {
  // As ASCII (other bytes never count as digits or spaces), stripped of ASCII whitespace, up to the first '.'.
  const text = Array.from(data, (b) => (b < 0x80 ? String.fromCharCode(b) : "\ufffd"))
    .join("")
    .replace(/^[\t\n\x0b\x0c\r\x1c-\x1f ]+|[\t\n\x0b\x0c\r\x1c-\x1f ]+$/g, "");
  const major = text.split(".", 1)[0] ?? "";
  if (!/^[0-9]+$/.test(major)) {
    throw new VerifyError("BUNDLE_MARKER_MISSING", `the format marker reads ${JSON.stringify(text.slice(0, 20))}, not a version`);
  }
  if (BigInt(major) !== MAJOR_VERSION) {
    throw new VerifyError(
      "BUNDLE_VERSION_UNSUPPORTED",
      `bundle format version ${major.slice(0, 20)} is not supported; this verifier reads version ${MAJOR_VERSION}`,
    );
  }
}

/**
 * Verifies a bundle without importing it, reading `chunks` once. Never throws for a bad bundle: the report says
 * why (`valid`, `reason`, `message`). With `policy` null only integrity is checked (entries against the statement).
 */
export async function verifyBundle(
  chunks: Chunks,
  policy: TrustPolicy | null,
  limits: BundleLimits,
  now: Instant,
): Promise<BundleReport> {
  const report: BundleReport = {
    valid: false,
    reason: "",
    message: "",
    statementSha256: "",
    statement: null,
    cubeCount: 0,
    blobCount: 0,
    bundleBytes: 0,
  };
  const reader = new TarReader(chunks, {
    maxEntryBytes: limits.maxEntryBytes,
    maxBundleBytes: limits.maxBundleBytes,
    maxEntries: limits.maxEntries,
  });
  try {
    await run(reader, policy, limits, now, report);
    report.valid = true;
  } catch (error) {
    if (!(error instanceof VerifyError)) throw error;
    report.reason = error.reason;
    report.message = error.message;
  } finally {
    report.bundleBytes = reader.bytesRead;
  }
  return report;
}

async function run(
  reader: TarReader,
  policy: TrustPolicy | null,
  limits: BundleLimits,
  now: Instant,
  report: BundleReport,
): Promise<void> {
  const marker = await reader.next();
  if (marker === null || marker.name !== MARKER_NAME) {
    throw new VerifyError("BUNDLE_MARKER_MISSING", `the first entry must be ${MARKER_NAME}; this is not a memos bundle`);
  }
  checkMarker(await reader.readAll(MAX_MARKER_BYTES));
  const envelopeEntry = await reader.next();
  if (envelopeEntry === null || envelopeEntry.name !== ENVELOPE_NAME) {
    throw new VerifyError("BUNDLE_ENVELOPE_MISSING", `the second entry must be ${ENVELOPE_NAME}`);
  }
  const data = await reader.readAll(limits.maxEnvelopeBytes);
  const payload = policy === null ? statementEnvelope(data).payload : verifyStatementEnvelope(data, policy, now);
  report.statementSha256 = sha256Hex(payload);
  const statement = parseStatement(payload, Math.max(0, limits.maxEntries - 2));
  report.statement = statement;
  const seen = new Set<string>();
  for (let entry = await reader.next(); entry !== null; entry = await reader.next()) {
    const subject = statement.subjects.get(entry.name);
    if (subject === undefined) {
      throw new VerifyError(
        "BUNDLE_UNLISTED_ENTRY",
        `entry ${JSON.stringify(entry.name.slice(0, 120))} is not listed in the signed statement`,
      );
    }
    if (entry.size !== subject.size) {
      throw new VerifyError(
        "BUNDLE_SIZE_MISMATCH",
        `entry ${JSON.stringify(entry.name)} holds ${entry.size} bytes; the statement says ${subject.size}`,
      );
    }
    const hash = createHash("sha256");
    if (subject.name.startsWith("blobs/")) {
      for await (const piece of reader.data()) hash.update(piece);
      report.blobCount++;
    } else {
      hash.update(await reader.readAll(limits.maxCubeBytes));
      report.cubeCount++;
    }
    const actual = hash.digest("hex");
    if (actual !== subject.sha256) {
      if (subject.name.startsWith("blobs/")) report.blobCount--;
      else report.cubeCount--;
      throw new VerifyError(
        "BUNDLE_DIGEST_MISMATCH",
        `entry ${JSON.stringify(entry.name)} has sha256 ${actual}; the signed statement says ${subject.sha256}`,
      );
    }
    seen.add(entry.name);
  }
  const missing = [...statement.subjects.keys()].filter((name) => !seen.has(name));
  if (missing.length > 0) {
    throw new VerifyError(
      "BUNDLE_MISSING_ENTRY",
      `${missing.length} entries the statement lists are missing, e.g. ${JSON.stringify(missing[0])}`,
    );
  }
}
