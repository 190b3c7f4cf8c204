/**
 * License grants (docs/marketplace.md, "License grants"): a DSSE envelope, signed by the marketplace key, granting
 * one release to one licensee. `verifyGrant` never throws on a bad grant: its result is valid only when the grant
 * holds for this licensee now, and otherwise gives the first reason in the Python implementation's order
 * (memos_grpc/marketplace/grants.py): the envelope's form, its payloadType, the signature, the predicateType, the
 * statement and predicate, the terms, the licensee, then `notBefore <= now < notAfter`.
 */
import { parseEnvelope, STATEMENT_PAYLOAD_TYPE, verifyEnvelope, type Shortfall, type TrustedKey } from "./dsse.js";
import { sha256Hex } from "./ed25519.js";
import { VerifyError } from "./errors.js";
import { integerIn, integerValue, parseJson, type JsonObject, type JsonValue } from "./json.js";
import { termsFromJson, type Terms } from "./terms.js";
import { compareTime, parseTime, type Instant } from "./time.js";

export const GRANT_PREDICATE_TYPE = "https://memos-grpc.dev/LicenseGrant/v1";
const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
const MAX_GRANT_BYTES = 256 * 1024;
const MAX_RELEASE_ID_CHARS = 64;
const SEMVER_IDENT = "(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)";
const RELEASE_NAME = new RegExp(
  "^listings/[a-z][a-z0-9-]{0,62}/releases/" +
    `(?:0|[1-9][0-9]*)\\.(?:0|[1-9][0-9]*)\\.(?:0|[1-9][0-9]*)(?:-${SEMVER_IDENT}(?:\\.${SEMVER_IDENT})*)?$`,
);
const PRINCIPAL_NAME = /^principals\/[a-z][a-z0-9-]{0,62}$/;
const HEX64 = /^[0-9a-f]{64}$/;
/** A C2SP checkpoint origin, kept to printable ASCII without spaces. */
const LOG_ORIGIN = /^[\x21-\x7e]{1,255}$/;
const DATE_TIME = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$/;
const STATEMENT_MEMBERS = ["_type", "subject", "predicateType", "predicate"];
const SUBJECT_MEMBERS = ["name", "digest"];
const PREDICATE_MEMBERS = ["license", "logOrigin", "licensee", "terms", "notBefore", "notAfter", "publishLogIndex"];
const LICENSEE_MEMBERS = ["principal", "keyId"];
const SHORTFALLS: Record<Shortfall, string> = {
  SIGNATURE_INVALID: "GRANT_SIGNATURE_INVALID",
  SIGNER_REVOKED: "GRANT_SIGNER_REVOKED",
  SIGNER_EXPIRED: "GRANT_SIGNER_EXPIRED",
  THRESHOLD_NOT_MET: "GRANT_UNTRUSTED_SIGNER",
  UNTRUSTED_SIGNER: "GRANT_UNTRUSTED_SIGNER",
};

export interface Grant {
  readonly release: string;
  /** `sha256:<hex>` of the release statement. */
  readonly releaseDigest: string;
  readonly license: string;
  readonly logOrigin: string;
  readonly licenseePrincipal: string;
  readonly licenseeKeyId: string;
  readonly terms: Terms;
  readonly notBefore: Instant;
  readonly notAfter: Instant;
  readonly publishLogIndex: number;
  /** `sha256:<hex>` of the statement bytes the marketplace signed. */
  readonly statementDigest: string;
  /** Key id of the marketplace key whose signature counted. */
  readonly signer: string;
}

export interface GrantVerification {
  /** "" when the grant holds. */
  readonly reason: string;
  readonly message: string;
  readonly grant: Grant | null;
}

function malformed(message: string, reason = "GRANT_MALFORMED"): VerifyError {
  return new VerifyError(reason, message);
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return value instanceof Map;
}

function exactly(document: JsonObject, members: string[], where: string): void {
  const unknown = [...document.keys()].filter((name) => !members.includes(name));
  const missing = members.filter((name) => !document.has(name));
  if (unknown.length > 0 || missing.length > 0) {
    throw malformed(`${where} must hold exactly ${[...members].sort().join(", ")}`);
  }
}

export function isReleaseName(name: unknown): name is string {
  return typeof name === "string" && RELEASE_NAME.test(name) && name.slice(name.lastIndexOf("/") + 1).length <= MAX_RELEASE_ID_CHARS;
}

function time(predicate: JsonObject, field: string): Instant {
  const value = predicate.get(field);
  const when = typeof value === "string" && DATE_TIME.test(value) ? parseTime(value) : null;
  if (when === null) throw malformed(`predicate.${field} must be an RFC 3339 UTC time to the second, like 2026-06-01T00:00:00Z`);
  return when;
}

function subject(value: JsonValue | undefined): [string, string] {
  if (!Array.isArray(value) || value.length !== 1 || !isObject(value[0])) {
    throw malformed("the statement's subject must be a list of exactly one release");
  }
  const item = value[0];
  exactly(item, SUBJECT_MEMBERS, "subject[0]");
  const name = item.get("name");
  const digest = item.get("digest");
  if (!isReleaseName(name)) throw malformed("subject[0].name must be listings/<listing>/releases/<semver>");
  if (!isObject(digest)) throw malformed("subject[0].digest must be an object");
  exactly(digest, ["sha256"], "subject[0].digest");
  const hex = digest.get("sha256");
  if (typeof hex !== "string" || !HEX64.test(hex)) throw malformed("subject[0].digest.sha256 must be 64 lowercase hex digits");
  return [name, `sha256:${hex}`];
}

/** The grant a statement's bytes say; throws VerifyError with the reason. */
export function readGrantStatement(payload: Uint8Array, signer = ""): Grant {
  let statement: JsonValue;
  try {
    statement = parseJson(payload);
  } catch (error) {
    throw malformed(`the grant's statement is not strict I-JSON: ${(error as Error).message}`);
  }
  if (!isObject(statement)) throw malformed("the grant's statement is not a JSON object");
  if (statement.get("predicateType") !== GRANT_PREDICATE_TYPE) {
    throw malformed(`the statement's predicateType must be ${JSON.stringify(GRANT_PREDICATE_TYPE)}`, "GRANT_PREDICATE_TYPE_INVALID");
  }
  exactly(statement, STATEMENT_MEMBERS, "the statement");
  if (statement.get("_type") !== STATEMENT_TYPE) throw malformed(`the statement's _type must be ${JSON.stringify(STATEMENT_TYPE)}`);
  const [release, releaseDigest] = subject(statement.get("subject"));
  const predicate = statement.get("predicate");
  if (!isObject(predicate)) throw malformed("the predicate must be an object");
  exactly(predicate, PREDICATE_MEMBERS, "the predicate");
  const licensee = predicate.get("licensee");
  if (!isObject(licensee)) throw malformed("predicate.licensee must be an object");
  exactly(licensee, LICENSEE_MEMBERS, "predicate.licensee");
  const principal = licensee.get("principal");
  const keyId = licensee.get("keyId");
  if (typeof principal !== "string" || !PRINCIPAL_NAME.test(principal)) throw malformed("predicate.licensee.principal must be principals/<id>");
  if (typeof keyId !== "string" || !HEX64.test(keyId)) throw malformed("predicate.licensee.keyId must be a key id: 64 lowercase hex digits");
  const origin = predicate.get("logOrigin");
  if (typeof origin !== "string" || !LOG_ORIGIN.test(origin)) throw malformed("predicate.logOrigin must be 1 to 255 printable ASCII characters");
  const notBefore = time(predicate, "notBefore");
  const notAfter = time(predicate, "notAfter");
  if (compareTime(notBefore, notAfter) >= 0) throw malformed("predicate.notBefore must be before predicate.notAfter");
  const index = predicate.get("publishLogIndex");
  if (!integerIn(index, 0, Number.MAX_SAFE_INTEGER)) throw malformed("predicate.publishLogIndex must be an integer from 0 to 2^53 - 1");
  let terms: Terms;
  try {
    terms = termsFromJson(predicate.get("terms")!);
  } catch (error) {
    if (!(error instanceof VerifyError)) throw error;
    const reason = error.reason === "TERMS_UNKNOWN_MEMBER" ? "GRANT_TERMS_UNKNOWN_MEMBER" : "GRANT_TERMS_INVALID";
    throw malformed(`the grant's terms are refused (${error.reason}): ${error.message}`, reason);
  }
  if (predicate.get("license") !== terms.license) throw malformed("predicate.license must be the terms' license");
  return {
    release,
    releaseDigest,
    license: terms.license,
    logOrigin: origin,
    licenseePrincipal: principal,
    licenseeKeyId: keyId,
    terms,
    notBefore,
    notAfter,
    publishLogIndex: integerValue(index),
    statementDigest: `sha256:${sha256Hex(payload)}`,
    signer,
  };
}

/** Checks a grant for one licensee at `now`: signature by a trusted marketplace key, grammar, licensee, window. */
export function verifyGrant(
  envelopeText: Uint8Array,
  trusted: ReadonlyMap<string, TrustedKey>,
  licenseePrincipal: string,
  licenseeKeyId: string,
  now: Instant,
): GrantVerification {
  const refuse = (reason: string, message: string, grant: Grant | null = null): GrantVerification => ({ reason, message, grant });
  if (envelopeText.length > MAX_GRANT_BYTES) return refuse("GRANT_MALFORMED", `the grant is ${envelopeText.length} bytes; at most ${MAX_GRANT_BYTES}`);
  let envelope;
  try {
    envelope = parseEnvelope(envelopeText);
  } catch (error) {
    return refuse("GRANT_MALFORMED", `the grant is not a DSSE envelope: ${(error as Error).message}`);
  }
  if (envelope.payloadType !== STATEMENT_PAYLOAD_TYPE) {
    return refuse("GRANT_MALFORMED", `the grant's payloadType must be ${JSON.stringify(STATEMENT_PAYLOAD_TYPE)}`);
  }
  const checked = verifyEnvelope(envelope, trusted, 1, now);
  if (checked.shortfall !== null) {
    return refuse(SHORTFALLS[checked.shortfall], `the grant is not signed by a trusted marketplace key: ${checked.message}`);
  }
  let grant: Grant;
  try {
    grant = readGrantStatement(envelope.payload, checked.counted[0]);
  } catch (error) {
    if (!(error instanceof VerifyError)) throw error;
    return refuse(error.reason, error.message);
  }
  if (grant.licenseePrincipal !== licenseePrincipal || grant.licenseeKeyId !== licenseeKeyId) {
    return refuse("GRANT_OTHER_LICENSEE", `the grant licenses ${grant.licenseePrincipal}, not ${licenseePrincipal} with this key`, grant);
  }
  if (compareTime(now, grant.notBefore) < 0) return refuse("GRANT_NOT_YET_VALID", "the grant is not valid yet", grant);
  if (compareTime(now, grant.notAfter) >= 0) return refuse("GRANT_EXPIRED", "the grant has expired", grant);
  return refuse("", "", grant);
}
