/**
 * C2SP tlog-policy text and verifier keys (vkeys), as far as a trust root's `marketplaceLogs` needs them: a policy
 * parses under the grammar of docs/marketplace.md ("Log policies"), or `parsePolicy` throws PolicyError.
 */
import { decodeCanonicalBase64 } from "./base64.js";
import { isStrictPublicKey, sha256 } from "./ed25519.js";

export const ED25519_TYPE = 0x01;
export const COSIGNATURE_TYPE = 0x04;
const NONE = "none";
const MAX_LOGS = 64;
const MAX_WITNESSES = 64;
const MAX_GROUPS = 64;
const MAX_POLICY_CHARS = 64 * 1024;
const MAX_KEY_NAME_BYTES = 255;
const VKEY = /^([^+]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/;
const ALLOWED = /^[\t\n\x20-\x7e\u0080-\u{10ffff}]*$/u;
// Python's str.isspace(), which the reference uses for key names.
export const UNICODE_SPACE = /[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
const DECIMAL = /^(?:0|[1-9][0-9]{0,18})$/;

export class PolicyError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Vkey {
  readonly name: string;
  readonly keyId: Uint8Array;
  readonly type: number;
  readonly publicKey: Uint8Array;
}

export function validKeyName(name: string): boolean {
  return (
    name.length > 0 &&
    Buffer.byteLength(name, "utf8") <= MAX_KEY_NAME_BYTES &&
    !UNICODE_SPACE.test(name) &&
    !name.includes("+") &&
    !/[\x00-\x1f]/.test(name)
  );
}

/** `<name>+<8 hex key id>+<base64(type || key)>` of an Ed25519 key of type 0x01 or 0x04; throws VKEY_INVALID. */
export function parseVkey(text: string): Vkey {
  const match = VKEY.exec(text);
  if (match === null || !validKeyName(match[1] as string)) {
    throw new PolicyError("VKEY_INVALID", `${JSON.stringify(text.slice(0, 80))} is not a verifier key`);
  }
  const name = match[1] as string;
  const raw = decodeCanonicalBase64(match[3] as string);
  if (raw === null || raw.length !== 33 || (raw[0] !== ED25519_TYPE && raw[0] !== COSIGNATURE_TYPE)) {
    throw new PolicyError("VKEY_INVALID", `verifier key ${JSON.stringify(name)} is not an Ed25519 key`);
  }
  const type = raw[0] as number;
  const publicKey = raw.subarray(1);
  if (!isStrictPublicKey(publicKey)) {
    throw new PolicyError("VKEY_INVALID", `verifier key ${JSON.stringify(name)}: a small-order or non-canonical Ed25519 public key`);
  }
  const expected = sha256(Buffer.concat([Buffer.from(name + "\n", "utf8"), Buffer.from([type]), publicKey])).subarray(0, 4);
  if (Buffer.from(expected).toString("hex") !== match[2]) {
    throw new PolicyError("VKEY_INVALID", `verifier key ${JSON.stringify(name)} names a key id that is not its key's`);
  }
  return { name, keyId: expected, type, publicKey };
}

export interface Policy {
  readonly logs: readonly Vkey[];
  readonly witnesses: ReadonlyMap<string, Vkey>;
  readonly groups: ReadonlyMap<string, { threshold: number; members: readonly string[] }>;
  readonly quorum: string;
}

/** The policy in `text`; throws PolicyError (POLICY_* reasons) at the first line that breaks a rule. */
export function parsePolicy(text: string): Policy {
  if ([...text].length > MAX_POLICY_CHARS) throw new PolicyError("POLICY_TOO_LARGE", "the policy is too large");
  if (!text.isWellFormed() || text.startsWith("\ufeff")) throw new PolicyError("POLICY_MALFORMED", "the policy is not UTF-8 text");
  if (!ALLOWED.test(text)) throw new PolicyError("POLICY_MALFORMED", "the policy holds a control character");
  if (!text.endsWith("\n")) throw new PolicyError("POLICY_MALFORMED", "the policy does not end with a newline");
  const logs: Vkey[] = [];
  const witnesses = new Map<string, Vkey>();
  const groups = new Map<string, { threshold: number; members: string[] }>();
  const keys = new Set<string>();
  let quorum: string | null = null;
  const key = (vkey: string, type: number, what: string): Vkey => {
    let parsed: Vkey;
    try {
      parsed = parseVkey(vkey);
    } catch (error) {
      throw new PolicyError("POLICY_KEY_INVALID", `${what} key: ${(error as Error).message}`);
    }
    if (parsed.type !== type) throw new PolicyError("POLICY_KEY_INVALID", `${what} key has the wrong signature type`);
    const hex = Buffer.from(parsed.publicKey).toString("hex");
    if (keys.has(hex)) throw new PolicyError("POLICY_KEY_DUPLICATE", `${what} key is listed twice`);
    keys.add(hex);
    return parsed;
  };
  const define = (name: string): void => {
    if (name === NONE) throw new PolicyError("POLICY_NAME_DUPLICATE", "'none' is predefined");
    if (witnesses.has(name) || groups.has(name)) throw new PolicyError("POLICY_NAME_DUPLICATE", `${name} is already defined`);
  };
  for (const line of text.slice(0, -1).split("\n")) {
    const stripped = line.replace(/^[ \t]+|[ \t]+$/g, "");
    if (stripped === "" || stripped.startsWith("#")) continue;
    const [keyword, ...args] = stripped.split(/[ \t]+/);
    if (keyword === "log" && (args.length === 1 || args.length === 2)) {
      if (logs.length >= MAX_LOGS) throw new PolicyError("POLICY_TOO_LARGE", "too many logs");
      logs.push(key(args[0] as string, ED25519_TYPE, "log"));
    } else if (keyword === "witness" && (args.length === 2 || args.length === 3)) {
      const name = args[0] as string;
      define(name);
      if (witnesses.size >= MAX_WITNESSES) throw new PolicyError("POLICY_TOO_LARGE", "too many witnesses");
      witnesses.set(name, key(args[1] as string, COSIGNATURE_TYPE, `witness ${name}`));
    } else if (keyword === "group" && args.length >= 3) {
      const [name, thresholdText, ...members] = args as [string, string, ...string[]];
      define(name);
      if (groups.size >= MAX_GROUPS) throw new PolicyError("POLICY_TOO_LARGE", "too many groups");
      for (const member of members) {
        if (!witnesses.has(member) && !groups.has(member)) {
          throw new PolicyError("POLICY_NAME_UNDEFINED", `group ${name} names ${member}, not defined above`);
        }
      }
      if (new Set(members).size !== members.length) throw new PolicyError("POLICY_NAME_DUPLICATE", "a member twice");
      let threshold: number | null;
      if (thresholdText === "all") threshold = members.length;
      else if (thresholdText === "any") threshold = 1;
      else threshold = DECIMAL.test(thresholdText) && BigInt(thresholdText) <= BigInt(members.length) ? Number(thresholdText) : null;
      if (threshold === null || threshold < 1) throw new PolicyError("POLICY_THRESHOLD_INVALID", `group ${name}: bad threshold`);
      groups.set(name, { threshold, members });
    } else if (keyword === "quorum" && args.length === 1) {
      if (quorum !== null) throw new PolicyError("POLICY_QUORUM_INVALID", "a second quorum line");
      const name = args[0] as string;
      if (name !== NONE && !witnesses.has(name) && !groups.has(name)) {
        throw new PolicyError("POLICY_NAME_UNDEFINED", `quorum names ${name}, not defined above`);
      }
      quorum = name;
    } else {
      throw new PolicyError("POLICY_MALFORMED", "expected a log, witness, group or quorum line");
    }
  }
  if (quorum === null) throw new PolicyError("POLICY_QUORUM_INVALID", "the policy has no quorum line");
  return { logs, witnesses, groups, quorum };
}

/** True if the witnesses named (policy names, each with a verified cosignature) meet the policy's quorum. */
export function satisfied(policy: Policy, cosigned: Iterable<string>): boolean {
  const names = new Set(cosigned);
  const memo = new Map<string, boolean>();
  const witnessed = (name: string): boolean => {
    let met = memo.get(name);
    if (met === undefined) {
      const group = policy.groups.get(name);
      met = group === undefined ? policy.witnesses.has(name) && names.has(name) : group.members.filter(witnessed).length >= group.threshold;
      memo.set(name, met);
    }
    return met;
  };
  return policy.quorum === NONE || witnessed(policy.quorum);
}

/**
 * The latest time t such that the witnesses that cosigned at or after t meet the quorum (null: never); `times`
 * maps policy witness names to the time of their newest verified cosignature.
 */
export function quorumTime(policy: Policy, times: ReadonlyMap<string, bigint>): bigint | null {
  const moments = [...new Set(times.values())].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
  for (const moment of moments) {
    if (satisfied(policy, [...times].filter(([, when]) => when >= moment).map(([name]) => name))) return moment;
  }
  return null;
}
