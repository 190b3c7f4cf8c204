/**
 * memos-verify, run as a user runs it (the compiled command in a child process): a valid vector bundle is VALID
 * with its counts and statement digest, tampered ones are refused with the vector's reason and exit 1, a trust
 * root file gives its role's keys, and a command line that cannot run exits 2.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

const VECTORS = fileURLToPath(new URL("../../../../testdata/vectors/", import.meta.url));
const COMMAND = fileURLToPath(new URL("./verify.js", import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), "memos-verify-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface BundleVector {
  inputs: { now: string; bundle: string; trusted_keys: { public_key: string }[] };
  expected: { valid: boolean; reason: string; cube_count?: number; blob_count?: number; statement_sha256?: string };
}

/** The vector, and its bundle written to a file. */
function load(name: string): { vector: BundleVector; path: string } {
  const vector = JSON.parse(readFileSync(join(VECTORS, `${name}.json`), "utf8")) as BundleVector;
  const path = join(scratch, `${name}.tar`);
  writeFileSync(path, Buffer.from(vector.inputs.bundle, "base64"));
  return { vector, path };
}

function keyArgs(vector: BundleVector): string[] {
  return vector.inputs.trusted_keys.flatMap((k) => ["--trust-key", k.public_key]);
}

function verify(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const child = spawnSync(process.execPath, [COMMAND, ...args], { encoding: "utf8" });
  return { code: child.status, stdout: child.stdout, stderr: child.stderr };
}

test("a valid bundle is VALID, with its counts and statement digest", () => {
  const { vector, path } = load("bundle-valid");
  const { code, stdout, stderr } = verify(...keyArgs(vector), "--at", vector.inputs.now, path);
  assert.equal(code, 0, stdout + stderr);
  assert.match(stdout, new RegExp(`^${path}: VALID\n`));
  assert.ok(stdout.includes(`statement:    ${vector.expected.statement_sha256}\n`), stdout);
  assert.ok(stdout.includes("cubes:        3\n") && stdout.includes("blobs:        1\n"), stdout);
});

test("--json prints the verdict as the Go command does; options may follow the file", () => {
  const { vector, path } = load("bundle-valid");
  const { code, stdout, stderr } = verify(path, "--json", "--at", vector.inputs.now, ...keyArgs(vector));
  assert.equal(code, 0, stdout + stderr);
  assert.deepEqual(JSON.parse(stdout), {
    file: path,
    valid: true,
    reason: "",
    message: "",
    role: "node",
    threshold: 1,
    statement_sha256: vector.expected.statement_sha256,
    cube_count: vector.expected.cube_count,
    blob_count: vector.expected.blob_count,
    bundle_bytes: statSync(path).size,
    verified_at: vector.inputs.now,
  });
});

for (const name of [
  "bundle-digest-mismatch",
  "bundle-size-mismatch",
  "bundle-unlisted-entry",
  "bundle-missing-entry",
  "bundle-envelope-payload-flipped",
  "bundle-truncated-in-data",
  "bundle-nonzero-padding",
]) {
  test(`a tampered bundle is refused with its reason: ${name}`, () => {
    const { vector, path } = load(name);
    assert.equal(vector.expected.valid, false);
    const { code, stdout, stderr } = verify(...keyArgs(vector), "--at", vector.inputs.now, path);
    assert.equal(code, 1, stdout + stderr);
    assert.ok(stdout.startsWith(`${path}: INVALID  ${vector.expected.reason}: `), stdout);
    assert.ok(stderr.includes(`the bundle is not valid: ${vector.expected.reason}: `), stderr);
  });
}

/** A trust root file whose admin key signs the bundle vectors and whose node key is another one. */
function trustRoot(): string {
  const update = JSON.parse(readFileSync(join(VECTORS, "trust_root_update-add-node-key-valid.json"), "utf8"));
  const path = join(scratch, "root.json");
  writeFileSync(path, update.inputs.current_root as string);
  return path;
}

test("--trust-root trusts the keys of --role", () => {
  const { vector, path } = load("bundle-valid");
  const root = trustRoot();
  const admin = verify("--trust-root", root, "--role", "admin", "--at", vector.inputs.now, path);
  assert.equal(admin.code, 0, admin.stdout + admin.stderr);
  const node = verify("--trust-root", root, "--at", vector.inputs.now, path);
  assert.equal(node.code, 1, node.stdout + node.stderr);
  assert.ok(node.stdout.includes("INVALID  BUNDLE_UNTRUSTED_SIGNER: "), node.stdout);
});

test("a command line that cannot run exits 2; a missing file exits 1", () => {
  const { vector, path } = load("bundle-valid");
  const root = trustRoot();
  const keys = keyArgs(vector);
  const cases: Record<string, string[]> = {
    "no keys": [path],
    "root and keys": ["--trust-root", root, ...keys, path],
    "root and threshold": ["--trust-root", root, "--threshold", "2", path],
    "two files": [...keys, path, path],
    "unknown role": [...keys, "--role", "buyer", path],
    "key not base64": ["--trust-key", "not base64!", path],
    "key of 31 bytes": ["--trust-key", Buffer.alloc(31).toString("base64"), path],
    "time not RFC 3339": [...keys, "--at", "yesterday", path],
    "unknown option": [...keys, "--fast", path],
  };
  for (const [what, args] of Object.entries(cases)) {
    const { code, stderr } = verify(...args);
    assert.equal(code, 2, `${what}: ${stderr}`);
    assert.match(stderr, /^error: /, what);
  }
  const missing = verify(...keys, join(scratch, "absent.tar"));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /ENOENT/);
});
