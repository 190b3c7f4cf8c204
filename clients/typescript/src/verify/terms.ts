/**
 * A release's terms (docs/marketplace.md, "Terms"): I-JSON with ODRL 2.2 names, read strictly, and the check a
 * buyer's governance runs per use. The grammar, bounds, reasons and their order are the Python implementation's
 * (memos_grpc/marketplace/terms.py).
 */
import { sha256Hex } from "./ed25519.js";
import { VerifyError } from "./errors.js";
import { integerIn, integerValue, JsonError, parseJson, type JsonObject, type JsonValue } from "./json.js";
import { checkLicenseExpression } from "./spdx.js";
import { compareTime, parseTime, type Instant } from "./time.js";

export const ACTIONS = ["import", "recall", "search", "export", "transform", "redistribute"] as const;
const LEFT_OPERANDS = ["count", "dateTime", "elapsedTime"];
const OPERATOR = "lteq";
export const MAX_TERMS_BYTES = 64 * 1024;
const MAX_PRICE_LABEL_CHARS = 256;
const MAX_MAX_OFFLINE_SECONDS = 366 * 86400;
const MAX_ELAPSED_SECONDS = 36500 * 86400;
const MEMBERS = new Set(["license", "permission", "prohibition", "priceLabel", "maxOfflineSeconds"]);
const REQUIRED = ["license", "permission", "maxOfflineSeconds"];
const PERMISSION_MEMBERS = new Set(["action", "constraint"]);
const PROHIBITION_MEMBERS = new Set(["action"]);
const CONSTRAINT_MEMBERS = new Set(["leftOperand", "operator", "rightOperand"]);
const DATE_TIME = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$/;
const NUMBER = "(0|[1-9][0-9]{0,8})";
const ELAPSED = new RegExp(`^P(?:${NUMBER}D)?(?:(T)(?:${NUMBER}H)?(?:${NUMBER}M)?(?:${NUMBER}S)?)?$`);
/** Control characters (C0, DEL, C1) have no place in a label shown to people. */
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

export interface Permission {
  readonly action: string;
  /** At most this many uses in all (`count lteq N`); null: no count limit. */
  readonly count: number | null;
  /** No use after this instant (`dateTime lteq T`). */
  readonly until: Instant | null;
  /** No use later than this many seconds after the grant's start (`elapsedTime lteq D`). */
  readonly elapsedSeconds: number | null;
}

export interface Decision {
  readonly allowed: boolean;
  readonly reason: string;
  /** The uses left after this one; null when there is no count limit. */
  readonly remaining: number | null;
}

export interface Terms {
  /** The JSON object, as read. */
  readonly document: JsonObject;
  readonly license: string;
  readonly permissions: readonly Permission[];
  readonly prohibitions: readonly string[];
  readonly priceLabel: string | null;
  readonly maxOfflineSeconds: number;
}

function error(reason: string, message: string): VerifyError {
  return new VerifyError(reason, message);
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return value instanceof Map;
}

function members(document: JsonObject, allowed: Set<string>, where: string): void {
  const unknown = [...document.keys()].filter((name) => !allowed.has(name)).sort();
  if (unknown.length > 0) {
    throw error(
      "TERMS_UNKNOWN_MEMBER",
      `${where} hold unknown member(s) ${unknown.slice(0, 5).map((n) => JSON.stringify(n.slice(0, 60))).join(", ")}; ` +
        `the members are ${[...allowed].sort().join(", ")} (names are case-sensitive)`,
    );
  }
}

function action(value: JsonValue | undefined, where: string): string {
  if (typeof value !== "string" || !(ACTIONS as readonly string[]).includes(value)) {
    throw error("TERMS_ACTION_UNKNOWN", `${where}.action must be one of ${ACTIONS.join(", ")}`);
  }
  return value;
}

/** An ISO 8601 duration of the subset PnDTnHnMnS, in seconds (1 s to 36,500 days); throws VerifyError. */
export function parseElapsedTime(value: JsonValue | undefined, at = "elapsedTime"): number {
  const match = typeof value === "string" ? ELAPSED.exec(value) : null;
  const [d, t, h, m, s] = match ? match.slice(1) : [];
  const parts = [d, h, m, s].filter((part) => part !== undefined);
  // "P" alone, or "T" with nothing after it, is no duration.
  if (match === null || parts.length === 0 || (t !== undefined && h === undefined && m === undefined && s === undefined)) {
    throw error("TERMS_CONSTRAINT_INVALID", `${at}: an elapsedTime is an ISO 8601 duration PnDTnHnMnS (days, hours, minutes, seconds), like P30D`);
  }
  const seconds = Number(d ?? 0) * 86400 + Number(h ?? 0) * 3600 + Number(m ?? 0) * 60 + Number(s ?? 0);
  if (seconds < 1 || seconds > MAX_ELAPSED_SECONDS) throw error("TERMS_CONSTRAINT_INVALID", `${at}: an elapsedTime is from 1 second to 36500 days`);
  return seconds;
}

function constrained(name: string, item: JsonObject, where: string): Permission {
  const permission = { action: name, count: null as number | null, until: null as Instant | null, elapsedSeconds: null as number | null };
  if (!item.has("constraint")) return permission;
  const value = item.get("constraint");
  // An empty list would be a second way to write "no constraint": absent is the one way.
  if (!Array.isArray(value) || value.length === 0) throw error("TERMS_CONSTRAINT_INVALID", `${where}.constraint must be a non-empty list (or absent)`);
  const seen = new Set<string>();
  value.forEach((constraint, index) => {
    const at = `${where}.constraint[${index}]`;
    if (!isObject(constraint)) throw error("TERMS_CONSTRAINT_INVALID", `${at} must be an object`);
    members(constraint, CONSTRAINT_MEMBERS, at);
    for (const member of [...CONSTRAINT_MEMBERS].sort()) {
      if (!constraint.has(member)) throw error("TERMS_MISSING_MEMBER", `${at} needs ${JSON.stringify(member)}`);
    }
    const operand = constraint.get("leftOperand");
    if (typeof operand !== "string" || !LEFT_OPERANDS.includes(operand)) {
      throw error("TERMS_CONSTRAINT_INVALID", `${at}.leftOperand must be one of ${LEFT_OPERANDS.join(", ")}`);
    }
    if (constraint.get("operator") !== OPERATOR) throw error("TERMS_CONSTRAINT_INVALID", `${at}.operator must be ${JSON.stringify(OPERATOR)}`);
    if (seen.has(operand)) throw error("TERMS_CONSTRAINT_INVALID", `${where} limits ${operand} twice`);
    seen.add(operand);
    const right = constraint.get("rightOperand");
    if (operand === "count") {
      if (!integerIn(right, 1, MAX_SAFE)) throw error("TERMS_CONSTRAINT_INVALID", `${at}: a count is an integer from 1 to 2^53 - 1`);
      permission.count = integerValue(right);
    } else if (operand === "dateTime") {
      const when = typeof right === "string" && DATE_TIME.test(right) ? parseTime(right) : null;
      if (when === null) throw error("TERMS_CONSTRAINT_INVALID", `${at}: a dateTime is an RFC 3339 UTC time to the second, like 2027-01-01T00:00:00Z`);
      permission.until = when;
    } else {
      permission.elapsedSeconds = parseElapsedTime(right, at);
    }
  });
  return permission;
}

function permissions(value: JsonValue | undefined): Permission[] {
  if (!Array.isArray(value)) throw error("TERMS_VALUE_INVALID", "permission must be a list of {action, constraint} objects");
  const found: Permission[] = [];
  value.forEach((item, index) => {
    const where = `permission[${index}]`;
    if (!isObject(item)) throw error("TERMS_VALUE_INVALID", `${where} must be an object`);
    members(item, PERMISSION_MEMBERS, where);
    if (!item.has("action")) throw error("TERMS_MISSING_MEMBER", `${where} needs 'action'`);
    const name = action(item.get("action"), where);
    if (found.some((p) => p.action === name)) throw error("TERMS_ACTION_REPEATED", `${name} is permitted twice; give it one permission`);
    found.push(constrained(name, item, where));
  });
  return found;
}

function prohibitions(value: JsonValue | undefined): string[] {
  // A non-empty list when present: absent is the one way to prohibit nothing explicitly.
  if (!Array.isArray(value) || value.length === 0) {
    throw error("TERMS_VALUE_INVALID", "prohibition must be a non-empty list of {action} objects (or absent)");
  }
  const found: string[] = [];
  value.forEach((item, index) => {
    const where = `prohibition[${index}]`;
    if (!isObject(item)) throw error("TERMS_VALUE_INVALID", `${where} must be an object`);
    members(item, PROHIBITION_MEMBERS, where);
    if (!item.has("action")) throw error("TERMS_MISSING_MEMBER", `${where} needs 'action'`);
    const name = action(item.get("action"), where);
    if (found.includes(name)) throw error("TERMS_ACTION_REPEATED", `${name} is prohibited twice`);
    found.push(name);
  });
  return found;
}

const JSON_REASONS: Record<string, string> = {
  ENCODING: "TERMS_ENCODING_INVALID",
  DUPLICATE_MEMBER: "TERMS_DUPLICATE_MEMBER",
  NUMBER: "TERMS_NUMBER_INVALID",
};

/** Terms from a JSON value already read strictly (a grant's `terms`); throws VerifyError (TERMS_*). */
export function termsFromJson(document: JsonValue): Terms {
  if (!isObject(document)) throw error("TERMS_JSON_INVALID", "the terms must be a JSON object");
  members(document, MEMBERS, "the terms");
  for (const name of REQUIRED) if (!document.has(name)) throw error("TERMS_MISSING_MEMBER", `the terms need ${JSON.stringify(name)}`);
  const license = checkLicenseExpression(document.get("license"));
  const permitted = permissions(document.get("permission"));
  const prohibited = document.has("prohibition") ? prohibitions(document.get("prohibition")) : [];
  const both = [...new Set(permitted.map((p) => p.action))].filter((a) => prohibited.includes(a)).sort();
  if (both.length > 0) throw error("TERMS_CONFLICT", `${both.join(", ")} is both permitted and prohibited`);
  const label = document.get("priceLabel") ?? null;
  if (label !== null && (typeof label !== "string" || [...label].length < 1 || [...label].length > MAX_PRICE_LABEL_CHARS || CONTROL.test(label))) {
    throw error("TERMS_VALUE_INVALID", `priceLabel must be 1 to ${MAX_PRICE_LABEL_CHARS} characters of text without control characters`);
  }
  const offline = document.get("maxOfflineSeconds");
  if (!integerIn(offline, 1, MAX_MAX_OFFLINE_SECONDS)) {
    throw error("TERMS_VALUE_INVALID", `maxOfflineSeconds must be an integer from 1 to ${MAX_MAX_OFFLINE_SECONDS}`);
  }
  return {
    document,
    license,
    permissions: permitted,
    prohibitions: prohibited,
    priceLabel: label as string | null,
    maxOfflineSeconds: integerValue(offline),
  };
}

/** Terms from their bytes, as I-JSON under the grammar of docs/marketplace.md; throws VerifyError (TERMS_*). */
export function parseTerms(data: Uint8Array): Terms {
  if (data.length > MAX_TERMS_BYTES) throw error("TERMS_TOO_LARGE", `the terms are ${data.length} bytes; at most ${MAX_TERMS_BYTES}`);
  let document: JsonValue;
  try {
    document = parseJson(data);
  } catch (failure) {
    if (!(failure instanceof JsonError)) throw failure;
    throw error(JSON_REASONS[failure.problem] ?? "TERMS_JSON_INVALID", `the terms are not strict I-JSON: ${failure.message}`);
  }
  return termsFromJson(document);
}

/** sha256 hex of the exact bytes terms were read from. */
export function termsDigest(data: Uint8Array): string {
  return sha256Hex(data);
}

/**
 * May the licensee use the cubes for `action` once more, having used them `usesSoFar` times? `grantedAt` is the
 * grant's start (its notBefore), from which elapsedTime runs. Every limit is inclusive (ODRL lteq).
 */
export function permits(terms: Terms, name: string, usesSoFar: number, grantedAt: Instant, now: Instant): Decision {
  if (!(ACTIONS as readonly string[]).includes(name)) throw new RangeError(`${JSON.stringify(name)} is not an action terms can name`);
  if (usesSoFar < 0) throw new RangeError("usesSoFar is never negative");
  if (terms.prohibitions.includes(name)) return { allowed: false, reason: "TERMS_ACTION_PROHIBITED", remaining: 0 };
  const permission = terms.permissions.find((p) => p.action === name);
  if (permission === undefined) return { allowed: false, reason: "TERMS_ACTION_NOT_PERMITTED", remaining: 0 };
  if (permission.until !== null && compareTime(now, permission.until) > 0) return { allowed: false, reason: "TERMS_DATETIME_PASSED", remaining: 0 };
  if (permission.elapsedSeconds !== null) {
    const limit = { seconds: grantedAt.seconds + permission.elapsedSeconds, nanos: grantedAt.nanos };
    if (compareTime(now, limit) > 0) return { allowed: false, reason: "TERMS_ELAPSED_TIME_PASSED", remaining: 0 };
  }
  if (permission.count === null) return { allowed: true, reason: "", remaining: null };
  if (usesSoFar >= permission.count) return { allowed: false, reason: "TERMS_COUNT_EXHAUSTED", remaining: 0 };
  return { allowed: true, reason: "", remaining: permission.count - usesSoFar - 1 };
}
