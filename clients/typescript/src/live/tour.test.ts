/**
 * The tour of the README against main over mTLS with a bearer token: a space, a batch of cubes, a search, paging,
 * an update with a mask and an etag, a stale update refused, a bundle exported and verified offline against
 * main's trust root, imported, and a recall. Then the market over TLS with a token, a call without a token, and an
 * AbortSignal that cancels a call in flight.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Code, MemosClient } from "../client.js";
import { SemanticType } from "../gen/memos/v1/cube_pb.js";
import { keysFor, thresholdFor, verifyBundle } from "../verify/index.js";
import { BUNDLE_LIMITS, collect, mainClient, marketClient, now, refused, topology, trustRootOf, unique } from "./live.js";

const TEA = "Alice prefers green tea";

describe("the tour on main (mTLS and a token)", () => {
  const client: MemosClient = mainClient();
  const space = `ts-tour-${unique()}`;
  const parent = `spaces/${space}`;

  it("runs every step of the README's tour", async () => {
    const created = await client.createSpace(space, "TypeScript tour");
    assert.equal(created.name, parent);

    const cubes = await client.batchCreateCubes(parent, [
      { cube: { payload: { case: "plaintext", value: { text: TEA } }, tags: ["drinks"], semanticType: SemanticType.PREFERENCE } },
      { cubeId: "bob-birthday", cube: { payload: { case: "plaintext", value: { text: "Bob was born on 3 May" } } } },
      { cube: { payload: { case: "plaintext", value: { text: "Carol takes her coffee black" } }, tags: ["drinks"] } },
    ]);
    assert.equal(cubes.length, 3);
    assert.ok(cubes.some((c) => c.name === `${parent}/cubes/bob-birthday`));

    // Search: the tea fact first.
    const hits = await client.searchText(parent, "what does Alice drink?", 2);
    assert.equal(hits.results.length, 2);
    const first = hits.results[0]?.cube?.payload;
    assert.equal(first?.case === "plaintext" ? first.value.text : "", TEA);

    // Paging: pages of 2 hold all three, the first page full and with a token, then the rest.
    const page = await client.vault.listCubes({ parent, pageSize: 2 });
    assert.equal(page.cubes.length, 2);
    assert.notEqual(page.nextPageToken, "");
    const listed = await collect(client.listCubes(parent, "", 2));
    assert.deepEqual(listed.map((c) => c.name).sort(), cubes.map((c) => c.name).sort());

    // An update with a mask changes only the masked field and gives a new etag; the old etag is refused after.
    const bob = await client.getCube(`${parent}/cubes/bob-birthday`);
    const updated = await client.updateCube({ ...bob, tags: ["birthdays"], priority: 99 }, ["tags"]);
    assert.deepEqual(updated.tags, ["birthdays"]);
    assert.equal(updated.priority, bob.priority, "priority is not in the mask: unchanged");
    assert.deepEqual(updated.payload, bob.payload);
    assert.notEqual(updated.etag, bob.etag);
    assert.equal(updated.version, bob.version + 1n);
    const stale = await refused(client.updateCube({ ...bob, tags: ["stale"] }, ["tags"]), Code.Aborted, "ETAG_MISMATCH");
    assert.match(stale.message, /etag/i);
    assert.deepEqual((await client.getCube(bob.name)).tags, ["birthdays"], "the refused update changed nothing");

    // Export, verified offline with the package's verifier against main's trust root.
    const chunks = await collect(client.exportBundle(parent));
    const root = await trustRootOf(client);
    const report = await verifyBundle(
      chunks,
      { role: "node", keys: keysFor(root, "node"), threshold: thresholdFor(root, "node") },
      BUNDLE_LIMITS,
      now(),
    );
    assert.equal(report.reason, "");
    assert.equal(report.valid, true);
    assert.equal(report.cubeCount, 3);

    // Import into a second space: three cubes created.
    await client.createSpace(`${space}-copy`);
    const imported = await client.importBundle(`${parent}-copy`, chunks);
    assert.equal(imported.createdCount, 3n);
    assert.equal(imported.verification?.valid, true);
    assert.equal(imported.verification?.statementDigest, `sha256:${report.statementSha256}`);

    // Recall: items within the budget.
    const plan = await client.recall(parent, "drinks", 200);
    assert.ok(plan.items.length > 0);
    assert.ok(plan.tokensUsed <= plan.tokenBudget && plan.tokenBudget === 200);
  });
});

describe("connections", () => {
  it("reaches the market over TLS with a token", async () => {
    const market = marketClient();
    const published = await market.getTrustRoot();
    assert.ok(published.version >= 1n);
    const log = await market.getCheckpoint();
    assert.equal(log.origin, topology.market.log_origin);
  });

  it("refuses a call without a token, with its reason", async () => {
    const anonymous = marketClient("");
    await refused(anonymous.getTrustRoot(), Code.Unauthenticated, "MISSING_CREDENTIAL");
  });

  it("cancels a call in flight when its AbortSignal aborts", async () => {
    const market = marketClient();
    const controller = new AbortController();
    // A subscription to events nothing will publish waits on the server until it is cancelled.
    const events = market.subscribe({ tags: [`ts-never-${unique()}`] }, { signal: controller.signal });
    const next = events.next();
    controller.abort();
    const cancelled = await refused(next, Code.Canceled, "");
    assert.ok(cancelled.message.length > 0);
    // The client goes on working after the cancelled call.
    assert.ok((await market.getTrustRoot()).version >= 1n);
  });
});
