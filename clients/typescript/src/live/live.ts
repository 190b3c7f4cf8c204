/**
 * The live topology the suite runs against (tests/interop/_live.py): a marketplace node ("market", TLS + bearer
 * token) and a node that trusts, follows and witnesses it ("main", mTLS + bearer token), described by the JSON
 * file that MEMOS_LIVE names. Also the suite's shared helpers: unique names, refusals asserted by code and reason,
 * and the offline verifier's view of a node's trust root.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

import { Code, MemosClient, MemosError } from "../client.js";
import { keysFor, parseEnvelope, parseTrustRoot, parseTime, type Instant, type TrustRoot } from "../verify/index.js";

interface NodeFile {
  readonly address: string;
  readonly admin_token: string;
}

interface TopologyFile {
  readonly ca_file: string;
  readonly client_cert_file: string;
  readonly client_key_file: string;
  readonly main: NodeFile;
  readonly market: NodeFile & { readonly log_origin: string; readonly log_vkey: string; readonly witness_vkey?: string };
  readonly [other: string]: unknown;
}

function readTopology(): TopologyFile {
  const file = process.env["MEMOS_LIVE"];
  if (!file) {
    // A live suite that finds no servers fails: it must never pass by testing nothing.
    throw new Error(
      "MEMOS_LIVE is not set: the live suite needs running servers. Start them with " +
        "`python -m tests.interop._live /tmp/live.json` at the top of the repository, then run " +
        "`MEMOS_LIVE=/tmp/live.json npm run test:live`",
    );
  }
  return JSON.parse(readFileSync(file, "utf8")) as TopologyFile;
}

export const topology = readTopology();
const ca = readFileSync(topology.ca_file);
const cert = readFileSync(topology.client_cert_file);
const key = readFileSync(topology.client_key_file);

/** A client of main: mTLS (the test CA's client certificate) and a bearer token (main's admin by default). */
export function mainClient(token: string = topology.main.admin_token): MemosClient {
  return MemosClient.connect({ baseUrl: `https://${topology.main.address}`, token, ca, cert, key, timeoutMs: 60_000 });
}

/** A client of the market: TLS and a bearer token (the market's admin by default; "" sends none). */
export function marketClient(token: string = topology.market.admin_token): MemosClient {
  return MemosClient.connect({ baseUrl: `https://${topology.market.address}`, token, ca, timeoutMs: 60_000 });
}

/** The PEM of the test CA, for calls that make a node dial a peer. */
export const caPem = ca;

/** A suffix unique to this run and file: the other client's suite runs against the same servers. */
export function unique(): string {
  return `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}

/** Awaits `call`, which must be refused with `code` and ErrorInfo `reason`; returns the error. */
export async function refused(call: Promise<unknown> | (() => Promise<unknown>), code: Code, reason: string): Promise<MemosError> {
  try {
    await (typeof call === "function" ? call() : call);
  } catch (error) {
    assert.ok(error instanceof MemosError, `expected a MemosError, got ${String(error)}`);
    assert.deepEqual([Code[error.code], error.reason], [Code[code], reason], error.message);
    return error;
  }
  assert.fail(`the call succeeded; expected ${Code[code]} ${reason}`);
}

/** Collects an async iterable into an array. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Concatenated bytes. */
export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

/** Now, as the verifier reads times. */
export function now(): Instant {
  return parseTime(new Date().toISOString().replace(/\.\d+Z$/, "Z")) as Instant;
}

/** Now in unix seconds, as the log's verifiers read times. */
export function unixNow(): bigint {
  return BigInt(Math.floor(Date.now() / 1000));
}

/** A node's trust root as the offline verifier reads it from GetTrustRoot's signed envelope. */
export async function trustRootOf(client: MemosClient): Promise<TrustRoot> {
  const published = await client.getTrustRoot();
  return parseTrustRoot(parseEnvelope(published.signedEnvelope).payload);
}

/** The keys of `role` in `root` (by key id). */
export { keysFor };

/** Generous limits for verifying the small bundles of the suite. */
export const BUNDLE_LIMITS = {
  maxEntryBytes: 1 << 30,
  maxBundleBytes: 1 << 30,
  maxEntries: 100_000,
  maxEnvelopeBytes: 1 << 24,
  maxCubeBytes: 1 << 26,
};
