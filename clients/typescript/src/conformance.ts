#!/usr/bin/env node
/**
 * memos-conformance: the TypeScript implementation of the protocol's conformance interface.
 *
 * Reads one JSON request a line on stdin, `{"id": "<string>", "vector": <a testdata/vectors/*.json object>,
 * "chunk": <int>}`, and writes one JSON answer a line on stdout, in order: `{"id", "valid", "reason"}`. A kind it
 * does not run answers UNSUPPORTED_KIND, a request it cannot read BAD_REQUEST, and a verifier that throws where it
 * should have answered INTERNAL_ERROR (a bug, reported on stderr). Nothing a request holds stops the command.
 */
import { createInterface } from "node:readline";

import { BadRequestError, parseRequestJson, runVector } from "./verify/vectors.js";

async function answer(line: string): Promise<{ id: string; valid: boolean; reason: string }> {
  let request: unknown;
  try {
    request = parseRequestJson(line);
  } catch {
    return { id: "", valid: false, reason: "BAD_REQUEST" };
  }
  const record = typeof request === "object" && request !== null && !Array.isArray(request) ? (request as Record<string, unknown>) : {};
  const id = typeof record["id"] === "string" ? record["id"] : "";
  const chunk = record["chunk"] ?? 0;
  if (typeof record["id"] !== "string" || typeof chunk !== "number" || !Number.isSafeInteger(chunk) || chunk < 0) {
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

function write(text: string): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(text, (error) => (error ? reject(error) : resolve())));
}

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === "") continue;
    await write(JSON.stringify(await answer(line)) + "\n");
  }
}

await main();
