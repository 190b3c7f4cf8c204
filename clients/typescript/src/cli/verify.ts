#!/usr/bin/env node
/**
 * memos-verify: verifies a bundle file offline, with no server: the signed statement against the keys of a trust
 * root's role (or keys given one by one), then every entry against the statement, streaming the file once. Prints
 * the verdict (VALID with the cube count and the statement digest, or the stable reason); exits 0 when the bundle
 * is valid, 1 when it is not or cannot be read, 2 on a usage error. The same command as the Go client's.
 *
 *   memos-verify --trust-root ROOT.json [--role node] [--require-key KEYID] [--at RFC3339] [--json] BUNDLE
 *   memos-verify --trust-key PUBKEY_B64 [--trust-key ...] [--threshold N] ... BUNDLE
 *
 * ROOT.json is a trust root's signed envelope, as `memos-grpc trust export --out ROOT.json` writes it. It is an
 * anchor: its own signatures are not checked, so it must come from a source already trusted. The limits are a
 * server's defaults (docs/configuration.md).
 */
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { parseArgs } from "node:util";

import { decodePaddedBase64 } from "../verify/base64.js";
import { verifyBundle, type BundleLimits, type TrustPolicy } from "../verify/bundle.js";
import { EnvelopeFormatError, parseEnvelope, type TrustedKey } from "../verify/dsse.js";
import { keyId, PUBLIC_KEY_BYTES, PublicKey } from "../verify/ed25519.js";
import { VerifyError } from "../verify/errors.js";
import { keysFor, parseTrustRoot, thresholdFor, TRUST_ROOT_PAYLOAD_TYPE, ROLES } from "../verify/trustroot.js";
import { parseTime, type Instant } from "../verify/time.js";

const USAGE = `usage: memos-verify (--trust-root ROOT.json | --trust-key PUBKEY_B64 ...) [options] BUNDLE

  --trust-root FILE     a trust root envelope file (memos-grpc trust export); the keys and threshold of --role
  --trust-key B64       a trusted Ed25519 public key, base64 (repeatable; instead of --trust-root)
  --threshold N         with --trust-key: distinct trusted keys that must sign (default 1)
  --role ROLE           whose signatures count: ${ROLES.join(", ")} (default node)
  --require-key KEYID   a key id that must be among the signers (repeatable)
  --at RFC3339          verify as of this time (default: now)
  --json                print the verdict as JSON
`;

/** A server's default import limits: 4 GiB for any one entry, 64 GiB in all, 250,000 entries, 64 MiB, 1 MiB. */
const DEFAULT_LIMITS: BundleLimits = {
  maxEntryBytes: 4 * 2 ** 30,
  maxBundleBytes: 64 * 2 ** 30,
  maxEntries: 250_000,
  maxEnvelopeBytes: 64 * 2 ** 20,
  maxCubeBytes: 2 ** 20,
};

/** Each read of the bundle file: large reads keep the number of chunks (and awaits) per byte low. */
const READ_BYTES = 1 << 20;
const MAX_ROOT_FILE_BYTES = 4 << 20;

class UsageError extends Error {}

/** The verdict as --json prints it (the Go command prints the same members). */
interface Result {
  file: string;
  valid: boolean;
  reason: string;
  message: string;
  role: string;
  threshold: number;
  statement_sha256: string;
  cube_count: number;
  blob_count: number;
  bundle_bytes: number;
  verified_at: string;
}

interface Options {
  file: string;
  policy: TrustPolicy;
  now: Instant;
  json: boolean;
}

function nowInstant(): Instant {
  const ms = Date.now();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

function formatTime(at: Instant): string {
  return new Date(at.seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

async function readSmall(path: string, limit: number): Promise<Uint8Array> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(limit + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled > limit) throw new Error(`${path}: over ${limit} bytes, too large for a trust root`);
    }
    return buffer.subarray(0, filled);
  } finally {
    await handle.close();
  }
}

async function rootPolicy(path: string, role: string, required: string[]): Promise<TrustPolicy> {
  const data = await readSmall(path, MAX_ROOT_FILE_BYTES);
  let payload: Uint8Array;
  try {
    const envelope = parseEnvelope(data);
    if (envelope.payloadType !== TRUST_ROOT_PAYLOAD_TYPE) {
      throw new VerifyError("TRUST_ROOT_MALFORMED", `a trust root envelope has payloadType ${TRUST_ROOT_PAYLOAD_TYPE}`);
    }
    payload = envelope.payload;
  } catch (error) {
    if (error instanceof EnvelopeFormatError) {
      throw new VerifyError("TRUST_ROOT_MALFORMED", `the trust root envelope is malformed: ${error.message}`);
    }
    throw error;
  }
  const root = parseTrustRoot(payload);
  return { role, keys: keysFor(root, role), threshold: thresholdFor(root, role), requiredKeyIds: required };
}

function keysPolicy(texts: string[], threshold: number, role: string, required: string[]): TrustPolicy {
  const keys = new Map<string, TrustedKey>();
  for (const text of texts) {
    const raw = decodePaddedBase64(text);
    if (raw === null) throw new UsageError(`--trust-key ${JSON.stringify(text)} is not padded standard base64`);
    if (raw.length !== PUBLIC_KEY_BYTES) throw new UsageError(`an Ed25519 public key is 32 bytes, not ${raw.length}`);
    const id = keyId(raw);
    keys.set(id, { keyId: id, publicKey: new PublicKey(raw) });
  }
  return { role, keys, threshold, requiredKeyIds: required };
}

async function parse(argv: string[]): Promise<Options | null> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        "trust-root": { type: "string" },
        "trust-key": { type: "string", multiple: true, default: [] },
        "require-key": { type: "string", multiple: true, default: [] },
        role: { type: "string", default: "node" },
        threshold: { type: "string" },
        at: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return null;
  const trustRoot = values["trust-root"];
  const trustKeys = values["trust-key"];
  const role = values.role;
  if (positionals.length !== 1) throw new UsageError("give exactly one bundle file");
  if ((trustRoot === undefined) === (trustKeys.length === 0)) {
    throw new UsageError("give either --trust-root FILE or one or more --trust-key PUBKEY_B64");
  }
  if (trustRoot !== undefined && values.threshold !== undefined) {
    throw new UsageError("--threshold is for --trust-key; with --trust-root the role's own threshold applies");
  }
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new UsageError(`--role ${JSON.stringify(role)} is not one of ${ROLES.join(", ")}`);
  }
  const threshold = values.threshold === undefined ? 1 : Number(values.threshold);
  if (!Number.isSafeInteger(threshold) || threshold < 1) throw new UsageError("--threshold must be a whole number from 1");
  let now = nowInstant();
  if (values.at !== undefined) {
    const at = parseTime(values.at);
    if (at === null) throw new UsageError(`--at ${JSON.stringify(values.at)} is not an RFC 3339 time`);
    now = at;
  }
  const required = values["require-key"];
  const policy =
    trustRoot !== undefined ? await rootPolicy(trustRoot, role, required) : keysPolicy(trustKeys, threshold, role, required);
  return { file: positionals[0] as string, policy, now, json: values.json };
}

async function verifyFile(options: Options): Promise<Result> {
  const stream = createReadStream(options.file, { highWaterMark: READ_BYTES });
  const report = await verifyBundle(stream, options.policy, DEFAULT_LIMITS, options.now);
  stream.destroy(); // a refused bundle is not read to its end
  return {
    file: options.file,
    valid: report.valid,
    reason: report.reason,
    message: report.message,
    role: options.policy.role,
    threshold: options.policy.threshold,
    statement_sha256: report.valid ? report.statementSha256 : "",
    cube_count: report.valid ? report.cubeCount : 0,
    blob_count: report.valid ? report.blobCount : 0,
    bundle_bytes: report.bundleBytes,
    verified_at: formatTime(options.now),
  };
}

function text(result: Result): string {
  const lines = [
    result.valid ? `${result.file}: VALID` : `${result.file}: INVALID  ${result.reason}: ${result.message}`,
    `${"role:".padEnd(14)}${result.role} (threshold ${result.threshold})`,
  ];
  if (result.valid) {
    lines.push(`${"statement:".padEnd(14)}${result.statement_sha256}`);
    lines.push(`${"cubes:".padEnd(14)}${result.cube_count}`);
    lines.push(`${"blobs:".padEnd(14)}${result.blob_count}`);
    lines.push(`${"bundle bytes:".padEnd(14)}${result.bundle_bytes}`);
  }
  lines.push(`${"verified at:".padEnd(14)}${result.verified_at}`);
  return lines.join("\n") + "\n";
}

function write(stream: NodeJS.WriteStream, data: string): Promise<void> {
  return new Promise((resolve, reject) => stream.write(data, (error) => (error ? reject(error) : resolve())));
}

/** The command: its exit status. */
export async function main(argv: string[]): Promise<number> {
  let options: Options | null;
  try {
    options = await parse(argv);
  } catch (error) {
    await write(process.stderr, `error: ${(error as Error).message}\n`);
    if (error instanceof UsageError) {
      await write(process.stderr, USAGE);
      return 2;
    }
    return 1; // an unreadable or malformed trust root file
  }
  if (options === null) {
    await write(process.stdout, USAGE);
    return 0;
  }
  let result: Result;
  try {
    result = await verifyFile(options);
  } catch (error) {
    await write(process.stderr, `error: ${(error as Error).message}\n`);
    return 1;
  }
  await write(process.stdout, options.json ? JSON.stringify(result, null, 2) + "\n" : text(result));
  if (!result.valid) {
    await write(process.stderr, `error: the bundle is not valid: ${result.reason}: ${result.message}\n`);
    return 1;
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
