/**
 * Every testdata/vectors file of the kinds this verifier runs reaches its expected outcome (verdict, reason and,
 * when valid, digests, counts and version), bundles whole and in 512-, 97- and 1-byte chunks; and the conformance
 * command answers each one as the protocol says.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { KINDS, parseRequestJson, runVector } from "../verify/vectors.js";

const VECTORS = fileURLToPath(new URL("../../../../testdata/vectors/", import.meta.url));
const files = readdirSync(VECTORS)
  .filter((name) => name.endsWith(".json"))
  .sort();
const vectors = files.map((name) => ({ name, vector: parseRequestJson(readFileSync(VECTORS + name, "utf8")) as any }));
const ours = vectors.filter(({ vector }) => KINDS.includes(vector.kind));

test("the vectors of every kind this verifier runs are there, and it runs every kind they hold", () => {
  for (const kind of KINDS) assert.ok(ours.filter(({ vector }) => vector.kind === kind).length > 10, kind);
  assert.deepEqual([...new Set(vectors.map(({ vector }) => vector.kind))].filter((kind) => !KINDS.includes(kind)), []);
});

for (const { name, vector } of ours) {
  const chunks = vector.kind === "bundle" ? [0, 512, 97, 1] : [0];
  test(name, async () => {
    for (const chunk of chunks) {
      const outcome = await runVector(vector, chunk);
      assert.deepEqual(outcome, vector.expected, `${vector.description} (chunk ${chunk})`);
    }
  });
}

test("memos-conformance answers every vector in order, UNSUPPORTED_KIND and BAD_REQUEST included", async () => {
  const script = fileURLToPath(new URL("../conformance.js", import.meta.url));
  const child = spawn(process.execPath, [script], { stdio: ["pipe", "pipe", "inherit"] });
  const requests = vectors.map(({ name, vector }) => ({ id: name, vector, chunk: 97 }));
  // Integers past 2^53 (bigints) go back out as the digits they were read from.
  const raw = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;
  const lines = requests.map((r) => JSON.stringify(r, (_key, value: unknown) => (typeof value === "bigint" ? raw(value.toString()) : value)));
  // Every kind of testdata/vectors runs now: a made-up one shows what any other kind gets.
  lines.push(JSON.stringify({ id: "unknown", vector: { kind: "no-such-kind", inputs: {} }, chunk: 0 }));
  lines.push(JSON.stringify({ id: "broken", vector: { kind: "bundle", inputs: { bundle: "%%%" } }, chunk: 0 }));
  lines.push("not json");
  child.stdin.end(lines.join("\n") + "\n");
  let out = "";
  for await (const piece of child.stdout) out += piece;
  const answers = out.trim().split("\n").map((line) => JSON.parse(line));
  assert.equal(answers.length, requests.length + 3);
  requests.forEach((request, index) => {
    const expected = KINDS.includes(request.vector.kind)
      ? { id: request.id, valid: request.vector.expected.valid, reason: request.vector.expected.reason }
      : { id: request.id, valid: false, reason: "UNSUPPORTED_KIND" };
    assert.deepEqual(answers[index], expected);
  });
  assert.deepEqual(answers.at(-3), { id: "unknown", valid: false, reason: "UNSUPPORTED_KIND" });
  assert.deepEqual(answers.at(-2), { id: "broken", valid: false, reason: "BAD_REQUEST" });
  assert.deepEqual(answers.at(-1), { id: "", valid: false, reason: "BAD_REQUEST" });
});
