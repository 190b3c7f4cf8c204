/**
 * The README's five-minute tour, as a program: a space, a batch of cubes, a search, paging, an update with a mask
 * and an etag, a refused call and its reason, a bundle exported and verified offline against the server's trust
 * root, imported into a second space, and a recall. MEMOS_SERVER (default http://127.0.0.1:50051), MEMOS_TOKEN and,
 * for TLS, MEMOS_CA (a PEM file), and for mTLS MEMOS_CERT and MEMOS_KEY (PEM files) say where and who.
 */
import { readFileSync } from "node:fs";

import { MemosClient, MemosError } from "../client.js";
import { SemanticType } from "../gen/memos/v1/cube_pb.js";
import { keysFor, parseEnvelope, parseTrustRoot, thresholdFor, verifyBundle } from "../verify/index.js";
import { parseTime } from "../verify/time.js";

const client = MemosClient.connect({
  baseUrl: process.env["MEMOS_SERVER"] ?? "http://127.0.0.1:50051",
  token: process.env["MEMOS_TOKEN"] ?? "",
  ...(process.env["MEMOS_CA"] ? { ca: readFileSync(process.env["MEMOS_CA"]) } : {}),
  ...(process.env["MEMOS_CERT"] ? { cert: readFileSync(process.env["MEMOS_CERT"]) } : {}),
  ...(process.env["MEMOS_KEY"] ? { key: readFileSync(process.env["MEMOS_KEY"]) } : {}),
});
const space = `tour-${Date.now()}`;
const parent = `spaces/${space}`;

await client.createSpace(space, "TypeScript tour");
const created = await client.batchCreateCubes(parent, [
  { cube: { payload: { case: "plaintext", value: { text: "Alice prefers green tea" } }, tags: ["drinks"], semanticType: SemanticType.PREFERENCE } },
  { cubeId: "bob-birthday", cube: { payload: { case: "plaintext", value: { text: "Bob was born on 3 May" } } } },
  { cube: { payload: { case: "plaintext", value: { text: "Carol takes her coffee black" } }, tags: ["drinks"] } },
]);
console.log(`created ${created.length} cubes`);

const hits = await client.searchText(parent, "what does Alice drink?", 2);
for (const hit of hits.results) console.log(`search: ${hit.score.toFixed(2)} ${hit.cube?.name}`);

let listed = 0;
for await (const cube of client.listCubes(parent, "", 2)) {
  listed++;
  console.log(`listed (pages of 2): ${cube.name}`);
}

const bob = await client.getCube(`${parent}/cubes/bob-birthday`);
const updated = await client.updateCube({ ...bob, tags: ["birthdays"] }, ["tags"]);
console.log(`updated ${updated.name}: tags ${updated.tags.join(",")}, etag ${bob.etag} -> ${updated.etag}`);
try {
  await client.updateCube({ ...bob, tags: ["stale"] }, ["tags"]); // bob.etag is the old one now
} catch (error) {
  if (!(error instanceof MemosError)) throw error;
  console.log(`refused: code ${error.code}, reason ${error.reason}`);
}

const chunks: Uint8Array[] = [];
for await (const chunk of client.exportBundle(parent)) chunks.push(chunk);
const trustRoot = await client.getTrustRoot();
const root = parseTrustRoot(parseEnvelope(trustRoot.signedEnvelope).payload);
const report = await verifyBundle(
  chunks,
  { role: "node", keys: keysFor(root, "node"), threshold: thresholdFor(root, "node") },
  { maxEntryBytes: 1 << 30, maxBundleBytes: 1 << 30, maxEntries: 100_000, maxEnvelopeBytes: 1 << 24, maxCubeBytes: 1 << 26 },
  parseTime(new Date().toISOString().replace(/\.\d+Z$/, "Z"))!,
);
console.log(`bundle verified offline: valid ${report.valid} ${report.reason}, ${report.cubeCount} cubes, statement ${report.statementSha256}`);

await client.createSpace(`${space}-copy`);
const imported = await client.importBundle(`spaces/${space}-copy`, chunks);
console.log(`imported ${imported.createdCount} cubes`);

const plan = await client.recall(parent, "drinks", 200);
console.log(`recall: ${plan.items.length} items, ${plan.tokensUsed} of ${plan.tokenBudget} tokens`);
if (!report.valid || listed !== 3 || imported.createdCount !== 3n) process.exit(1);
