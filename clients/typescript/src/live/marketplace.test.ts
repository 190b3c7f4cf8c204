/**
 * The marketplace end to end across the two nodes. On the market, an owner (with a key the server keeps for it)
 * exports a signed release bundle of three facts, lists it and publishes it; a buyer finds it, acquires a license
 * for its key on main, and main pulls and imports the release (ImportRelease). Everything the market hands out is
 * verified offline with the package's verifier: the downloaded bundle, the grant, the tlog proofs, checkpoints,
 * inclusion and consistency proofs. Then main follows the log, the owner revokes and yanks, main sees the revocation
 * after a sync, and main, as the market's witness, cosigns the market's checkpoint.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { before, describe, it } from "node:test";

import { Code, releaseInfo, type MemosClient } from "../client.js";
import { HeldLicenseState } from "../gen/memos/v1/held_license_service_pb.js";
import { EventType, License_State, Release_State, type License, type Release } from "../gen/memos/v1/marketplace_service_pb.js";
import { SearchMode } from "../gen/memos/v1/vault_service_pb.js";
import {
  keysFor,
  leafHash,
  openNote,
  parseCheckpoint,
  parseEntry,
  parseNote,
  parsePolicy,
  parseVkey,
  thresholdFor,
  verifyBundle,
  verifyConsistency,
  verifyCosigned,
  verifyGrant,
  verifyInclusion,
  verifyProof,
  type Policy,
  type TrustRoot,
} from "../verify/index.js";
import {
  BUNDLE_LIMITS,
  collect,
  concat,
  mainClient,
  marketClient,
  now,
  refused,
  topology,
  trustRootOf,
  unique,
  unixNow,
} from "./live.js";

const FACTS = ["Rain follows a falling barometer", "Fog forms over cold water at dawn", "Hail needs strong updrafts"];
const TERMS = JSON.stringify({
  license: "CC-BY-4.0",
  permission: [{ action: "import" }, { action: "recall" }, { action: "search" }],
  maxOfflineSeconds: 86400,
});
/** Cosignatures and proofs older than this are stale to the suite (the log publishes each entry at once). */
const MAX_AGE = 3600n;

async function* slowly(chunks: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield chunk;
}

describe("the marketplace across market and main", () => {
  const u = unique();
  const marketAdmin = marketClient();
  const mainAdmin = mainClient();
  const log = parseVkey(topology.market.log_vkey);
  const listingId = `ts-weather-${u}`;
  const tag = `ts-${u}`;
  const ownerName = `principals/ts-owner-${u}`;
  const buyerName = `principals/ts-buyer-${u}`;
  let owner: MemosClient;
  let buyerOnMarket: MemosClient;
  let buyerToken: string;
  let buyer: MemosClient;
  let buyerKey: string;
  let mainRoot: TrustRoot;
  let policy: Policy;
  let bundle: Uint8Array;
  let release: Release;
  let license: License;

  /** The market's log entry at `index`, verbatim. */
  async function entryAt(index: bigint): Promise<Uint8Array> {
    const page = await marketAdmin.getEntries(index, 1);
    assert.equal(page.entries[0]?.index, index);
    return page.entries[0]!.data;
  }

  /** A tlog-proof@v1 text checked offline against the entry, the log key and main's log policy. */
  function checkProof(entry: Uint8Array, proof: string): void {
    const verdict = verifyProof(entry, proof, log, policy, policy.witnesses, unixNow(), MAX_AGE);
    assert.equal(verdict.reason, "", verdict.shortfalls.map((s) => s.message).join("; "));
  }

  before(async () => {
    for (const who of ["owner", "buyer"]) await marketAdmin.createPrincipal(`ts-${who}-${u}`);
    owner = marketClient((await marketAdmin.createCredential(ownerName, { description: "ts owner" })).token);
    buyerToken = (await marketAdmin.createCredential(buyerName)).token;
    buyerOnMarket = marketClient(buyerToken);
    // The same buyer on main, with an Ed25519 key of its own registered there: the licensee key.
    await mainAdmin.createPrincipal(`ts-buyer-${u}`);
    buyer = mainClient((await mainAdmin.createCredential(buyerName)).token);
    const raw = Buffer.from(generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }).x as string, "base64url");
    buyerKey = (await mainAdmin.registerPublicKey(buyerName, raw)).keyId;
    assert.match(buyerKey, /^[0-9a-f]{64}$/);
    mainRoot = await trustRootOf(mainAdmin);
    const policies = mainRoot.marketplaceLogs.map(parsePolicy).filter((p) => p.logs.some((l) => l.name === log.name));
    assert.equal(policies.length, 1, "main's trust root names the market's log");
    policy = policies[0]!;
  });

  it("publishes a signed release bundle exported by an owner whose key the market keeps", async () => {
    const key = await owner.createSigningKey(ownerName);
    assert.match(key.keyId, /^[0-9a-f]{64}$/);
    const space = (await owner.createSpace(`ts-wares-${u}`)).name;
    await owner.batchCreateCubes(space, FACTS.map((text) => ({ cube: { payload: { case: "plaintext", value: { text } } } })));

    const checked = await owner.createListing(listingId, { title: `Weather facts ${u}`, tags: [tag] }, { validateOnly: true });
    assert.equal(checked.name, `listings/${listingId}`);
    await refused(owner.getListing(listingId), Code.NotFound, "LISTING_NOT_FOUND");
    const listing = await owner.createListing(listingId, {
      title: `Weather facts ${u}`,
      description: "Three facts about the weather",
      tags: [tag],
    });
    assert.equal(listing.owner, ownerName);

    const info = releaseInfo(listingId, "1.0.0", TERMS);
    const chunks = await collect(owner.exportBundle(space, { release: info }));
    bundle = concat(chunks);
    // Published from an AsyncIterable of chunks.
    const published = await owner.publishRelease(listingId, "1.0.0", slowly(chunks), TERMS);
    assert.ok(published.release);
    release = published.release;
    assert.equal(release.name, `listings/${listingId}/releases/1.0.0`);
    assert.equal(release.state, Release_State.ACTIVE);
    assert.equal(release.cubeCount, 3n);
    assert.equal(release.sizeBytes, BigInt(bundle.length));
    assert.deepEqual(release.signerKeys, [key.keyId]);
    assert.equal(published.verification?.valid, true);
    // The publish entry is in the log, and its proof verifies offline.
    const entry = await entryAt(release.logIndex);
    const parsed = parseEntry(entry);
    assert.equal(parsed.type, "publish");
    checkProof(entry, published.tlogProof);
    // The same bytes again (one Uint8Array) are the same release.
    const again = await owner.publishRelease(listingId, "1.0.0", bundle, TERMS);
    assert.equal(again.release?.logIndex, release.logIndex);
  });

  it("finds, reads and updates the listing and its releases", async () => {
    const listing = await buyerOnMarket.getListing(listingId);
    assert.equal(listing.latestRelease, release.name);
    assert.equal(listing.license, "CC-BY-4.0");
    assert.deepEqual(listing.publisherKeys, release.signerKeys);
    const updated = await owner.updateListing({ name: listing.name, etag: listing.etag, description: "Weather, three facts" }, ["description"]);
    assert.equal(updated.description, "Weather, three facts");
    assert.equal(updated.title, listing.title);
    await refused(owner.updateListing({ name: listing.name, etag: listing.etag, title: "stale" }, ["title"]), Code.Aborted, "ETAG_MISMATCH");
    await refused(buyerOnMarket.updateListing({ name: listing.name, title: "mine" }, ["title"]), Code.PermissionDenied, "LISTING_OWNER_REQUIRED");

    const listed = await collect(buyerOnMarket.listListings({ filter: `tags:"${tag}"`, pageSize: 1 }));
    assert.deepEqual(listed.map((l) => l.name), [listing.name]);
    const found = await buyerOnMarket.searchListings(`weather facts ${u}`, { mode: SearchMode.LEXICAL, filter: `tags:"${tag}"` });
    assert.equal(found[0]?.listing?.name, listing.name);

    const got = await buyerOnMarket.getRelease(release.name);
    assert.equal(got.bundleDigest, release.bundleDigest);
    assert.equal(got.terms?.json, TERMS);
    const releases = await collect(buyerOnMarket.listReleases(listingId));
    assert.deepEqual(releases.map((r) => r.name), [release.name]);
  });

  it("downloads the release as chunks that verify offline", async () => {
    const download = owner.downloadRelease(release.name);
    const chunks = await collect(download);
    assert.equal(download.release?.name, release.name);
    assert.deepEqual(concat(chunks), bundle);
    const marketRoot = await trustRootOf(marketAdmin);
    const report = await verifyBundle(
      chunks,
      { role: "node", keys: keysFor(marketRoot, "node"), threshold: thresholdFor(marketRoot, "node") },
      BUNDLE_LIMITS,
      now(),
    );
    assert.equal(report.reason, "");
    assert.equal(`sha256:${report.statementSha256}`, release.statementDigest);
    assert.equal(report.cubeCount, 3);
    // A buyer without a license may not.
    await refused(collect(buyerOnMarket.downloadRelease(release.name)), Code.PermissionDenied, "LICENSE_REQUIRED");
  });

  it("replays the publish event from its log index", async () => {
    const controller = new AbortController();
    let event;
    for await (event of buyerOnMarket.subscribe({ listings: [listingId], startIndex: release.logIndex }, { signal: controller.signal })) break;
    controller.abort();
    assert.equal(event?.type, EventType.PUBLISH);
    assert.equal(event?.logIndex, release.logIndex);
    assert.equal(event?.release?.name, release.name);
    assert.deepEqual(event?.entry, await entryAt(release.logIndex));
  });

  it("acquires a license whose grant and tlog proof verify offline", async () => {
    const before = await buyerOnMarket.getCheckpoint();
    license = await buyerOnMarket.acquireLicense({ release: release.name, licensee: buyerName, licenseeKey: buyerKey });
    assert.equal(license.state, License_State.ACTIVE);
    assert.equal(license.release, release.name);
    const grant = verifyGrant(license.grantEnvelope, keysFor(mainRoot, "marketplace"), buyerName, buyerKey, now());
    assert.equal(grant.reason, "", grant.message);
    assert.equal(grant.grant?.release, release.name);
    assert.equal(grant.grant?.releaseDigest, release.statementDigest);
    assert.equal(grant.grant?.statementDigest, license.grantDigest);
    // The same grant for another licensee is refused offline.
    assert.equal(verifyGrant(license.grantEnvelope, keysFor(mainRoot, "marketplace"), "principals/other", buyerKey, now()).reason, "GRANT_OTHER_LICENSEE");
    const entry = await entryAt(license.logIndex);
    assert.equal(parseEntry(entry).type, "grant");
    checkProof(entry, license.tlogProof);

    // The log as the transparency service serves it: a checkpoint signed by the log key, the grant's inclusion in
    // it, and its consistency with the checkpoint before the grant.
    const after = await buyerOnMarket.getCheckpoint();
    const note = openNote(after.note, [log]);
    assert.deepEqual(note.verifiedBy, [log.name]);
    const body = parseCheckpoint(note.text);
    assert.equal(body.size, after.size);
    const inclusion = await buyerOnMarket.getInclusionProof(license.logIndex, after.size);
    assert.deepEqual(inclusion.entry, entry);
    verifyInclusion(leafHash(entry), license.logIndex, after.size, inclusion.hashes, body.root);
    assert.deepEqual(body.root, after.rootHash);
    const latest = await buyerOnMarket.getInclusionProof(license.logIndex);
    checkProof(entry, latest.tlogProof);
    const earlier = parseCheckpoint(openNote(before.note, [log]).text);
    assert.ok(earlier.size < body.size);
    const consistency = await buyerOnMarket.getConsistencyProof(earlier.size, body.size);
    verifyConsistency(earlier.size, body.size, earlier.root, body.root, consistency.hashes);
    const listed = await collect(buyerOnMarket.logEntries(release.logIndex));
    assert.ok(listed.some((e) => e.index === license.logIndex));

    assert.equal((await buyerOnMarket.getLicense(license.name)).grantDigest, license.grantDigest);
    const mine = await collect(buyerOnMarket.listLicenses({ filter: `release = "${release.name}"` }));
    assert.deepEqual(mine.map((l) => l.name), [license.name]);
    const download = buyerOnMarket.downloadRelease(release.name, { license: license.name });
    assert.deepEqual(concat(await collect(download)), bundle);
  });

  it("imports the release on main under the license, and holds it", async () => {
    const space = (await buyer.createSpace(`ts-bought-${u}`)).name;
    const imported = await buyer.importRelease(space, license.name, buyerToken);
    assert.equal(imported.createdCount, 3n);
    const cubes = await collect(buyer.listCubes(space));
    assert.deepEqual(new Set(cubes.map((c) => c.license?.grantDigest)), new Set([license.grantDigest]));
    const plan = await buyer.recall(space, "what does the weather do", 1000);
    assert.equal(plan.items.length, 3);

    const held = await buyer.getHeldLicense(license.grantDigest);
    assert.equal(held.state, HeldLicenseState.ACTIVE);
    assert.equal(held.release, release.name);
    assert.equal(held.cubeCount, 3n);
    assert.equal(held.licenseeKeyId, buyerKey);
    const all = await collect(buyer.listHeldLicenses());
    assert.deepEqual(all.map((h) => h.name), [held.name]);
    await refused(buyer.importRelease(space, license.name, ""), Code.InvalidArgument, "MISSING_MARKETPLACE_TOKEN");
  });

  it("follows the market's log, and sees a revocation after a sync", async () => {
    const synced = await mainAdmin.syncMarketplaceLog();
    assert.equal(synced.origin, topology.market.log_origin);
    assert.equal(synced.lastErrorReason, "");
    assert.ok(synced.treeSize > license.logIndex);
    const followed = await mainAdmin.listFollowedLogs();
    assert.ok(followed.some((f) => f.origin === topology.market.log_origin && f.treeSize >= synced.treeSize));
    await refused(buyer.syncMarketplaceLog(), Code.PermissionDenied, "ADMIN_REQUIRED");

    const revoked = await owner.revokeLicense(license.name, "unpaid");
    assert.equal(revoked.state, License_State.REVOKED);
    assert.equal(revoked.revocation?.reason, "unpaid");
    assert.equal((await buyer.getHeldLicense(license.grantDigest)).state, HeldLicenseState.ACTIVE, "main acts on the log it has read");
    await mainAdmin.syncMarketplaceLog();
    const held = await buyer.getHeldLicense(license.grantDigest);
    assert.equal(held.state, HeldLicenseState.REVOKED);
    assert.equal(held.stateReason, "LICENSE_REVOKED");
    await refused(owner.revokeLicense(license.name, "again"), Code.FailedPrecondition, "LICENSE_ALREADY_REVOKED");

    // The revoke event, replayed from its log index.
    const controller = new AbortController();
    let event;
    const from = revoked.revocation!.logIndex;
    for await (event of buyerOnMarket.subscribe({ listings: [listingId], startIndex: from }, { signal: controller.signal })) break;
    controller.abort();
    assert.equal(event?.type, EventType.REVOKE);
    assert.equal(event?.license, license.name);
    assert.equal(event?.refIndex, license.logIndex);
  });

  it("yanks the release", async () => {
    const yanked = await owner.yankRelease(release.name, "wrong units");
    assert.equal(yanked.state, Release_State.YANKED);
    assert.equal(yanked.yank?.reason, "wrong units");
    assert.deepEqual(await collect(buyerOnMarket.listReleases(listingId)), []);
    const shown = await collect(buyerOnMarket.listReleases(listingId, { showYanked: true }));
    assert.deepEqual(shown.map((r) => r.name), [release.name]);
    assert.equal((await buyerOnMarket.getListing(listingId)).latestRelease, "");
    await refused(owner.yankRelease(release.name, "again"), Code.FailedPrecondition, "RELEASE_ALREADY_YANKED");
  });

  it("has main, the market's witness, cosign the market's checkpoint with a consistency proof", async () => {
    let oldSize = 0n;
    let proof: Uint8Array[] = [];
    let conflicts = 0;
    for (let attempt = 0; attempt < 8; attempt++) {
      const checkpoint = await marketAdmin.getCheckpoint();
      let cosigned;
      try {
        cosigned = await mainAdmin.addCheckpoint(checkpoint.note, { oldSize, proof });
      } catch (error) {
        // The witness answers with the size it last cosigned (this suite, or the other client's): prove from it.
        const conflict = await refused(Promise.reject(error), Code.Aborted, "WITNESS_SIZE_CONFLICT");
        conflicts++;
        oldSize = BigInt(conflict.metadata["latest_size"] ?? "-1");
        assert.ok(oldSize >= 0n, "the conflict names the latest size");
        proof = oldSize > checkpoint.size ? [] : (await marketAdmin.getConsistencyProof(oldSize, checkpoint.size)).hashes;
        continue;
      }
      assert.equal(cosigned.size, checkpoint.size);
      assert.ok(oldSize > 0n || conflicts === 0, "a cosignature from 0 only when the witness had cosigned nothing");
      // Offline: the note with the cosignature appended still carries the log's valid signature, and the new line
      // is a tlog-cosignature (8-byte time and 64-byte signature) made now.
      const note = checkpoint.note + cosigned.cosignatures;
      assert.deepEqual(openNote(note, [log]).verifiedBy, [log.name]);
      const lines = parseNote(note).signatures.slice(parseNote(checkpoint.note).signatures.length);
      assert.equal(lines.length, 1);
      const line = lines[0]!;
      assert.equal(line.signature.length, 72);
      const time = Buffer.from(line.signature.subarray(0, 8)).readBigUInt64BE();
      assert.ok(time <= unixNow() + 5n && unixNow() - time < 300n, "a cosignature made now");
      const witness = (topology.main as { witness_vkey?: string }).witness_vkey;
      if (witness !== undefined) verifyCosigned(note, parseVkey(witness), unixNow() + 5n, 300n);
      return;
    }
    assert.fail("the witness kept moving; no cosignature in 8 attempts");
  });
});
