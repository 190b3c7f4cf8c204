/**
 * VaultService and SchedulerService on main, beyond the tour: payload blobs streamed up and down, an activation
 * cube naming one, the lifecycle (versions, rollback, freeze, unfreeze, archive, merge, delete), server-side bundle
 * verification, and transforms as operations. The live servers have no model: a transform that needs one, and
 * GetModel, are refused with their reason; demoting an activation cube to its text needs none and runs as an
 * operation that is watched to its end.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { before, describe, it } from "node:test";

import { Code, type MemosClient } from "../client.js";
import { LifecycleState, MemoryType, type BlobRef, type MemCube } from "../gen/memos/v1/cube_pb.js";
import { Operation_State } from "../gen/memos/v1/scheduler_service_pb.js";
import { collect, concat, mainClient, refused, unique } from "./live.js";

const SOURCE = "The kettle whistles at one hundred degrees";

function text(cube: MemCube | undefined): string {
  return cube?.payload.case === "plaintext" ? cube.payload.value.text : "";
}

async function* twoPieces(data: Uint8Array): AsyncGenerator<Uint8Array> {
  yield data.subarray(0, 40);
  yield data.subarray(40);
}

describe("vault and scheduler on main", () => {
  const u = unique();
  const client: MemosClient = mainClient();
  const parent = `spaces/ts-vault-${u}`;
  // 96 bytes: 24 float32 values of shape 1x2x3x4, standing for a KV cache.
  const data = new Uint8Array(Buffer.concat([0, 1, 2].map((i) => createHash("sha256").update(`${SOURCE}${i}`).digest())));
  const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
  let blob: BlobRef;
  let activation: MemCube;

  before(async () => {
    await client.createSpace(`ts-vault-${u}`);
  });

  it("streams a payload up and down, and names it in an activation cube", async () => {
    await refused(client.writePayload(parent, data, { expectedDigest: `sha256:${"0".repeat(64)}` }), Code.InvalidArgument, "PAYLOAD_DIGEST_MISMATCH");
    blob = await client.writePayload(parent, twoPieces(data), { expectedDigest: digest, expectedSize: data.length, mediaType: "application/octet-stream" });
    assert.equal(blob.digest, digest);
    assert.equal(blob.sizeBytes, 96n);
    activation = await client.createCube(parent, {
      cubeId: "kettle-cache",
      cube: {
        payload: {
          case: "activation",
          value: { blob, modelFingerprint: "ts-test-model", dtype: "float32", shape: [1n, 2n, 3n, 4n], sourceText: SOURCE },
        },
      },
    });
    assert.equal(activation.type, MemoryType.ACTIVATION);
    assert.deepEqual(concat(await collect(client.readPayload(activation.name))), data);
    assert.deepEqual(concat(await collect(client.readPayload(activation.name, { offset: 10, limit: 20 }))), data.subarray(10, 30));
    await refused(collect(client.readPayload(activation.name, { offset: 1000 })), Code.InvalidArgument, "OFFSET_OUT_OF_RANGE");
  });

  it("keeps versions, rolls back, freezes, archives, merges and deletes", async () => {
    const checked = await client.createCube(parent, { cubeId: "draft", validateOnly: true, cube: { payload: { case: "plaintext", value: { text: "Tea at four" } } } });
    assert.equal(checked.name, `${parent}/cubes/draft`);
    await refused(client.getCube(`${parent}/cubes/draft`), Code.NotFound, "CUBE_NOT_FOUND");

    const tea = await client.createCube(parent, { cubeId: "tea", cube: { payload: { case: "plaintext", value: { text: "Tea at four" } } } });
    const later = await client.updateCube({ name: tea.name, etag: tea.etag, payload: { case: "plaintext", value: { text: "Tea at five" } } }, ["plaintext.text"]);
    assert.equal(later.version, 2n);
    const versions = await collect(client.listCubeVersions(tea.name, { pageSize: 1 }));
    assert.deepEqual(versions.map((v) => text(v)), ["Tea at five", "Tea at four"]);
    assert.equal(text(await client.getCube(`${tea.name}/versions/1`)), "Tea at four");
    const rolledBack = await client.rollbackCube(tea.name, 1, later.etag);
    assert.equal(rolledBack.version, 3n);
    assert.equal(text(rolledBack), "Tea at four");

    const frozen = await client.freezeCube(tea.name, rolledBack.etag);
    assert.equal(frozen.state, LifecycleState.FROZEN);
    await refused(client.updateCube({ ...frozen, tags: ["x"] }, ["tags"]), Code.FailedPrecondition, "CUBE_FROZEN");
    const thawed = await client.unfreezeCube(tea.name, frozen.etag);
    assert.notEqual(thawed.state, LifecycleState.FROZEN);
    const archived = await client.archiveCube(tea.name, thawed.etag);
    assert.equal(archived.state, LifecycleState.ARCHIVED);
    const found = await client.search({ parent, query: { case: "text", value: "tea" }, includeArchived: false });
    assert.ok(!found.results.some((r) => r.cube?.name === tea.name), "archived cubes leave search");

    const [milk, sugar] = await client.batchCreateCubes(parent, [
      { cubeId: "milk", cube: { payload: { case: "plaintext", value: { text: "Milk first" } } } },
      { cubeId: "sugar", cube: { payload: { case: "plaintext", value: { text: "Two sugars" } } } },
    ]);
    const merged = await client.mergeCubes(parent, [milk!.name, sugar!.name], {
      cubeId: "how-i-take-tea",
      cube: { payload: { case: "plaintext", value: { text: "Milk first, two sugars" } } },
    });
    assert.equal(text(merged), "Milk first, two sugars");
    assert.equal((await client.getCube(milk!.name)).state, LifecycleState.MERGED);

    const current = await client.getCube(sugar!.name);
    await refused(client.deleteCube(sugar!.name, tea.etag), Code.Aborted, "ETAG_MISMATCH");
    await client.deleteCube(sugar!.name, current.etag);
    await refused(client.getCube(sugar!.name), Code.NotFound, "CUBE_NOT_FOUND");
  });

  it("verifies a bundle on the server, and reports a tampered one", async () => {
    const chunks = await collect(client.exportBundle(parent, { names: [`${parent}/cubes/how-i-take-tea`] }));
    const good = await client.verifyBundle(chunks);
    assert.equal(good.valid, true, good.message);
    assert.equal(good.cubeCount, 1n);
    const bad = new Uint8Array(concat(chunks));
    const at = Buffer.from(bad).indexOf("Milk first, two sugars");
    assert.ok(at > 0);
    bad[at] = bad[at]! ^ 0x20;
    const report = await client.verifyBundle(bad);
    assert.equal(report.valid, false);
    assert.match(report.reason, /^BUNDLE_/);
  });

  it("refuses what needs the model the server lacks", async () => {
    await refused(client.getModel(), Code.FailedPrecondition, "MODEL_NOT_CONFIGURED");
    const plain = await client.createCube(parent, { cube: { payload: { case: "plaintext", value: { text: "Needs a model" } } } });
    await refused(
      client.transformCube({ parent, names: [plain.name], targetType: MemoryType.ACTIVATION }),
      Code.FailedPrecondition,
      "MODEL_NOT_CONFIGURED",
    );
    await refused(client.getOperation(`${parent}/operations/nothing-here`), Code.NotFound, "OPERATION_NOT_FOUND");
    await refused(client.cancelOperation(`${parent}/operations/nothing-here`), Code.NotFound, "OPERATION_NOT_FOUND");
  });

  it("demotes the activation cube to its text as an operation, watched to its end", async () => {
    const started = await client.transformCube({ parent, names: [activation.name], targetType: MemoryType.PLAINTEXT });
    assert.match(started.name, new RegExp(`^${parent}/operations/`));
    const states = [];
    let last;
    for await (last of client.watchOperation(started.name)) {
      states.push(last.state);
      if (last.done) break;
    }
    assert.equal(last?.state, Operation_State.SUCCEEDED, last?.error?.message);
    assert.equal(last?.cube, activation.name);
    const got = await client.getOperation(started.name);
    assert.equal(got.done, true);
    assert.equal(got.state, Operation_State.SUCCEEDED);
    // Cancelling a finished operation changes nothing.
    const cancelled = await client.cancelOperation(started.name);
    assert.equal(cancelled.state, Operation_State.SUCCEEDED);
    const demoted = await client.getCube(activation.name);
    assert.equal(demoted.type, MemoryType.PLAINTEXT);
    assert.equal(text(demoted), SOURCE);
  });
});
