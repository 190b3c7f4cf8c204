/**
 * The trust root (docs/protocol.md, "The trust root"): parsing within the protocol's bounds, and checking a proposed
 * update against the root in force (next version, not expired, signed by a threshold of the current admin keys and
 * of its own). Every failure throws VerifyError with a TRUST_ROOT_* reason.
 */
import { decodePaddedBase64 } from "./base64.js";
import { EnvelopeFormatError, parseEnvelope, verifyEnvelope, type Envelope, type TrustedKey } from "./dsse.js";
import { isStrictPublicKey, keyId, PUBLIC_KEY_BYTES, PublicKey } from "./ed25519.js";
import { VerifyError } from "./errors.js";
import { integerIn, integerValue, isObject, parseJson, type JsonObject, type JsonValue } from "./json.js";
import { parsePolicy, PolicyError } from "./policy.js";
import { compareTime, parseTime, type Instant } from "./time.js";

export const TRUST_ROOT_TYPE = "https://memos-grpc.dev/TrustRoot/v1";
export const TRUST_ROOT_PAYLOAD_TYPE = "application/vnd.memos.trustroot+json";
export const ROLES = ["admin", "node", "publisher", "marketplace"] as const;
const MAX_VERSION = Number.MAX_SAFE_INTEGER;
const MAX_THRESHOLD = 256;
const MAX_KEYS = 1024;
const MAX_KEY_NAME_CHARS = 256;
const MAX_MARKETPLACE_LOGS = 16;
const MAX_LOG_POLICY_BYTES = 16 * 1024;

export interface Role {
  readonly keyIds: readonly string[];
  readonly threshold: number;
}

export interface TrustRoot {
  readonly version: number;
  readonly expires: Instant;
  readonly keys: ReadonlyMap<string, TrustedKey>;
  readonly roles: ReadonlyMap<string, Role>;
  /** The C2SP tlog-policy text of each marketplace log the root trusts. */
  readonly marketplaceLogs: readonly string[];
}

/** The keys trusted for `role`, by key id, in the role's order. */
export function keysFor(root: TrustRoot, role: string): Map<string, TrustedKey> {
  const found = new Map<string, TrustedKey>();
  for (const id of root.roles.get(role)?.keyIds ?? []) {
    const key = root.keys.get(id);
    if (key !== undefined) found.set(id, key);
  }
  return found;
}

export function thresholdFor(root: TrustRoot, role: string): number {
  return root.roles.get(role)?.threshold ?? 1;
}

function malformed(message: string): VerifyError {
  return new VerifyError("TRUST_ROOT_MALFORMED", message);
}

function object(value: JsonValue | undefined, what: string): JsonObject {
  if (!isObject(value)) throw malformed(`${what} must be a JSON object`);
  return value;
}

function required(document: JsonObject, name: string): JsonValue {
  const value = document.get(name);
  if (value === undefined) throw malformed(`the trust root has no ${name}`);
  return value;
}

function time(value: JsonValue | undefined, what: string): Instant {
  const parsed = parseTime(value);
  if (parsed === null) throw malformed(`${what} is not an RFC 3339 time between years 1 and 9999 in UTC`);
  return parsed;
}

function optionalTime(value: JsonValue | undefined, what: string): Instant | null {
  return value === undefined || value === null ? null : time(value, what);
}

/** Parses a trust root payload; unknown members are ignored. Throws VerifyError(TRUST_ROOT_MALFORMED). */
export function parseTrustRoot(payload: Uint8Array): TrustRoot {
  let document: JsonValue;
  try {
    document = parseJson(payload);
  } catch (error) {
    throw malformed(`the trust root is not JSON: ${(error as Error).message}`);
  }
  if (!isObject(document) || document.get("_type") !== TRUST_ROOT_TYPE) {
    throw malformed(`a trust root needs _type ${TRUST_ROOT_TYPE}`);
  }
  const version = required(document, "version");
  if (!integerIn(version, 1, MAX_VERSION)) throw malformed("the trust root version must be an integer from 1 to 2^53 - 1");
  const rawKeys = object(required(document, "keys"), "keys");
  if (rawKeys.size > MAX_KEYS) throw malformed(`the trust root lists ${rawKeys.size} keys; at most ${MAX_KEYS}`);
  const keys = new Map<string, TrustedKey>();
  for (const [kid, entry] of rawKeys) keys.set(kid, parseKey(kid, object(entry, `key ${kid.slice(0, 80)}`)));
  const roles = new Map<string, Role>();
  for (const [name, entry] of object(required(document, "roles"), "roles")) {
    if (!(ROLES as readonly string[]).includes(name)) throw malformed(`role ${name.slice(0, 40)} is not one of ${ROLES.join(", ")}`);
    roles.set(name, parseRole(name, object(entry, `role ${name}`), keys));
  }
  if ((roles.get("admin")?.keyIds.length ?? 0) === 0) throw malformed("a trust root needs an admin role with at least one key");
  const logs = document.has("marketplaceLogs") ? marketplaceLogs(document.get("marketplaceLogs") as JsonValue) : [];
  const expires = time(required(document, "expires"), "expires");
  return { version: integerValue(version), expires, keys, roles, marketplaceLogs: logs };
}

function parseKey(kid: string, entry: JsonObject): TrustedKey {
  if (entry.get("keytype") !== "ed25519") throw malformed(`key ${kid.slice(0, 80)} is not an ed25519 key`);
  const raw = decodePaddedBase64(required(entry, "public"));
  if (raw === null) throw malformed(`key ${kid.slice(0, 80)}: public is not base64`);
  if (raw.length !== PUBLIC_KEY_BYTES || keyId(raw) !== kid) {
    throw malformed(`key ${kid.slice(0, 80)}: the key id is not the sha256 of the public key's SubjectPublicKeyInfo`);
  }
  if (!isStrictPublicKey(raw)) throw malformed(`key ${kid}: a small-order or non-canonical Ed25519 public key`);
  const name = entry.has("name") ? entry.get("name") : "";
  if (typeof name !== "string" || [...name].length > MAX_KEY_NAME_CHARS) {
    throw malformed(`key ${kid}: name must be a string of at most ${MAX_KEY_NAME_CHARS} characters`);
  }
  return {
    keyId: kid,
    publicKey: new PublicKey(raw),
    name,
    notBefore: optionalTime(entry.get("notBefore"), "notBefore"),
    notAfter: optionalTime(entry.get("notAfter"), "notAfter"),
    revokedAt: optionalTime(entry.get("revokedAt"), "revokedAt"),
  };
}

function parseRole(name: string, entry: JsonObject, keys: ReadonlyMap<string, TrustedKey>): Role {
  const raw = required(entry, "keyids");
  if (!Array.isArray(raw) || !raw.every((k) => typeof k === "string")) {
    throw malformed(`role ${name}: keyids must be a list of key id strings`);
  }
  const keyIds = raw as string[];
  if (keyIds.some((k) => !keys.has(k))) throw malformed(`role ${name} names an unknown key`);
  if (new Set(keyIds).size !== keyIds.length) throw malformed(`role ${name} lists a key twice`);
  // A role without keys keeps threshold 1: it trusts no one, whatever its threshold.
  const highest = Math.min(MAX_THRESHOLD, Math.max(1, keyIds.length));
  const threshold = required(entry, "threshold");
  if (!integerIn(threshold, 1, highest)) throw malformed(`role ${name}: threshold must be an integer from 1 to ${highest}`);
  return { keyIds, threshold: integerValue(threshold) };
}

/** `marketplaceLogs`, read strictly: 1 to 16 objects with exactly `policy`, each a tlog-policy naming a log. */
function marketplaceLogs(value: JsonValue): string[] {
  if (!Array.isArray(value) || value.length < 1 || value.length > MAX_MARKETPLACE_LOGS) {
    throw malformed(`marketplaceLogs must be a list of 1 to ${MAX_MARKETPLACE_LOGS} logs`);
  }
  const texts: string[] = [];
  const origins = new Set<string>();
  value.forEach((item, index) => {
    const number = index + 1;
    if (!isObject(item) || item.size !== 1 || !item.has("policy")) {
      throw malformed(`marketplaceLogs[${number}] must be an object with exactly one member, "policy"`);
    }
    const text = item.get("policy");
    if (typeof text !== "string" || Buffer.byteLength(text, "utf8") > MAX_LOG_POLICY_BYTES) {
      throw malformed(`marketplaceLogs[${number}].policy must be a tlog-policy of at most ${MAX_LOG_POLICY_BYTES} bytes`);
    }
    let logs;
    try {
      logs = parsePolicy(text).logs;
    } catch (error) {
      if (error instanceof PolicyError) throw malformed(`marketplaceLogs[${number}].policy is refused (${error.reason})`);
      throw error;
    }
    if (logs.length === 0) throw malformed(`marketplaceLogs[${number}].policy names no log`);
    for (const log of logs) {
      if (origins.has(log.name)) throw malformed(`two marketplace logs have the origin ${log.name.slice(0, 80)}`);
      origins.add(log.name);
    }
    texts.push(text);
  });
  return texts;
}

/**
 * Checks a proposed trust root (envelope JSON bytes) against the current one at `now`; returns the new root.
 * Signatures by the current admin keys are checked before anything in the proposal is parsed.
 */
export function verifyRootUpdate(current: TrustRoot, envelopeJson: Uint8Array, now: Instant): { root: TrustRoot; envelope: Envelope } {
  let envelope: Envelope;
  try {
    envelope = parseEnvelope(envelopeJson);
  } catch (error) {
    if (error instanceof EnvelopeFormatError) throw malformed(`the trust root envelope is malformed: ${error.message}`);
    throw error;
  }
  if (envelope.payloadType !== TRUST_ROOT_PAYLOAD_TYPE) {
    throw malformed(`a trust root envelope has payloadType ${TRUST_ROOT_PAYLOAD_TYPE}`);
  }
  const byCurrent = verifyEnvelope(envelope, keysFor(current, "admin"), thresholdFor(current, "admin"), now);
  if (byCurrent.shortfall !== null) {
    throw new VerifyError(
      "TRUST_ROOT_THRESHOLD_NOT_MET",
      `the new trust root must be signed by ${thresholdFor(current, "admin")} current admin key(s): ${byCurrent.message}`,
    );
  }
  const proposed = parseTrustRoot(envelope.payload);
  if (proposed.version <= current.version) {
    throw new VerifyError(
      "TRUST_ROOT_ROLLBACK",
      `trust root version ${proposed.version} is not newer than the current ${current.version} (rollback)`,
    );
  }
  if (proposed.version !== current.version + 1) {
    throw new VerifyError(
      "TRUST_ROOT_VERSION_SKIPPED",
      `trust root version ${proposed.version} skips versions: the next is ${current.version + 1}`,
    );
  }
  if (compareTime(proposed.expires, now) <= 0) throw new VerifyError("TRUST_ROOT_EXPIRED", "the new trust root has expired (freeze)");
  const byNew = verifyEnvelope(envelope, keysFor(proposed, "admin"), thresholdFor(proposed, "admin"), now);
  if (byNew.shortfall !== null) {
    throw new VerifyError(
      "TRUST_ROOT_THRESHOLD_NOT_MET",
      `the new trust root must also be signed by ${thresholdFor(proposed, "admin")} of its own admin key(s): ${byNew.message}`,
    );
  }
  return { root: proposed, envelope };
}
