#!/usr/bin/env node
/**
 * memos-conformance: the TypeScript implementation of the protocol's conformance interface.
 *
 * Reads one JSON request a line on stdin, `{"id": "<string>", "vector": <a testdata/vectors/*.json object>,
 * "chunk": <int>}`, and writes one JSON answer a line on stdout, in order: `{"id", "valid", "reason"}`. A kind it
 * does not run answers UNSUPPORTED_KIND, a request it cannot read BAD_REQUEST, and a verifier that throws where it
 * should have answered INTERNAL_ERROR (a bug, reported on stderr). Nothing a request holds stops the command.
 *
 * Lines are read as bytes and split at LF only, as the reference reads them: a line that is not UTF-8, or whose
 * JSON escapes a lone surrogate, is BAD_REQUEST (docs/conformance.md), never text with U+FFFD in its place.
 */
import { BadRequestError, MAX_REQUEST_INTEGER, parseRequestJson, runVector, wellFormed } from "./verify/vectors.js";

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const BAD = { id: "", valid: false, reason: "BAD_REQUEST" } as const;

/** The request a line holds, or null if it is not JSON in UTF-8 whose strings are all Unicode text. */
function readLine(line: Uint8Array): unknown {
  try {
    const request = parseRequestJson(utf8.decode(line));
    return wellFormed(request) ? request : null;
  } catch {
    return null;
  }
}

async function answer(line: Uint8Array): Promise<{ id: string; valid: boolean; reason: string }> {
  const request = readLine(line);
  if (typeof request !== "object" || request === null || Array.isArray(request)) return BAD;
  const record = request as Record<string, unknown>;
  if (typeof record["id"] !== "string") return BAD;
  const id = record["id"];
  // Absent is 0; null, 97.0 (NaN here), "97" and 2^53 (a bigint here) are not chunks.
  const chunk = Object.hasOwn(record, "chunk") ? record["chunk"] : 0;
  if (typeof chunk !== "number" || !Number.isSafeInteger(chunk) || chunk < 0 || chunk > MAX_REQUEST_INTEGER) {
    return { id, valid: false, reason: "BAD_REQUEST" };
  }
  try {
    const outcome = await runVector(record["vector"], chunk);
    if (outcome === null) return { id, valid: false, reason: "UNSUPPORTED_KIND" };
    return { id, valid: outcome.valid, reason: outcome.reason };
  } catch (error) {
    if (error instanceof BadRequestError) return { id, valid: false, reason: "BAD_REQUEST" };
    process.stderr.write(`memos-conformance: request ${JSON.stringify(id)}: ${(error as Error).stack ?? String(error)}\n`);
    return { id, valid: false, reason: "INTERNAL_ERROR" };
  }
}

/** The input split at LF bytes (the last line may lack one), each line's bytes whole. */
async function* lines(input: AsyncIterable<Buffer>): AsyncGenerator<Uint8Array> {
  let pending: Buffer[] = [];
  for await (const chunk of input) {
    let start = 0;
    for (let end = chunk.indexOf(0x0a); end >= 0; end = chunk.indexOf(0x0a, start)) {
      pending.push(chunk.subarray(start, end));
      yield Buffer.concat(pending);
      pending = [];
      start = end + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length > 0) yield Buffer.concat(pending);
}

function write(text: string): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(text, (error) => (error ? reject(error) : resolve())));
}

async function main(): Promise<void> {
  for await (const line of lines(process.stdin)) {
    // A blank line is not a request (the runner never sends one).
    if (/^[ \t\r]*$/.test(Buffer.from(line).toString("latin1"))) continue;
    await write(JSON.stringify(await answer(line)) + "\n");
  }
}

await main();
