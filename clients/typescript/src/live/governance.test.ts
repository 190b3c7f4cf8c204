/**
 * GovernanceService on main, and the trust root that decides which bundles a node imports: principals and their
 * credentials, spaces and their access policies, the audit log, erasing a principal's data, deleting a space, a
 * trust root update checked offline by the package's verifier, and an import from the market as a peer under it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Code, MemosError, type MemosClient } from "../client.js";
import { Role } from "../gen/memos/v1/access_pb.js";
import { Principal_Kind } from "../gen/memos/v1/principal_pb.js";
import { KeyRole } from "../gen/memos/v1/trust_pb.js";
import { keysFor, parseEnvelope, parseTrustRoot, verifyRootUpdate } from "../verify/index.js";
import { collect, mainClient, marketClient, now, refused, topology, trustRootOf, unique } from "./live.js";

const TRUST_ROOT_PAYLOAD_TYPE = "application/vnd.memos.trustroot+json";

describe("governance on main", () => {
  const u = unique();
  const admin = mainClient();
  const who = `principals/ts-gov-${u}`;

  it("creates, reads, lists principals and revokes a credential", async () => {
    const principal = await admin.createPrincipal(`ts-gov-${u}`, { kind: Principal_Kind.AGENT, displayName: "TS governance" });
    assert.equal(principal.name, who);
    assert.equal(principal.kind, Principal_Kind.AGENT);
    assert.equal((await admin.getPrincipal(who)).displayName, "TS governance");
    const everyone = await collect(admin.listPrincipals({ pageSize: 2 }));
    assert.ok(everyone.some((p) => p.name === who));
    assert.ok(everyone.some((p) => p.name === "principals/admin"));

    const credential = await admin.createCredential(who, { description: "short-lived", expireTime: new Date(Date.now() + 3_600_000) });
    assert.match(credential.token, /^mgt_/);
    const agent = mainClient(credential.token);
    assert.equal((await agent.getPrincipal(who)).name, who, "a principal reads itself");
    await refused(agent.listPrincipals().next(), Code.PermissionDenied, "ADMIN_REQUIRED");
    const revoked = await admin.revokeCredential(credential.name);
    assert.ok(revoked.revokeTime !== undefined);
    await refused(agent.getPrincipal(who), Code.Unauthenticated, "TOKEN_REVOKED");
  });

  it("shares a space by its access policy and updates it with a mask", async () => {
    const member = mainClient((await admin.createCredential(who)).token);
    const space = await admin.createSpace(`ts-gov-space-${u}`, "Shared");
    await refused(member.getSpace(space.name), Code.NotFound, "SPACE_NOT_FOUND");
    const policy = await admin.getAccessPolicy(space.name);
    assert.ok(policy.bindings.some((b) => b.role === Role.OWNER && b.members.includes("principals/admin")));
    const shared = await admin.setAccessPolicy(space.name, {
      etag: policy.etag,
      bindings: [...policy.bindings, { role: Role.VIEWER, members: [who] }],
    });
    assert.ok(shared.bindings.some((b) => b.role === Role.VIEWER && b.members.includes(who)));
    assert.notEqual(shared.etag, policy.etag);
    assert.equal((await member.getSpace(space.name)).name, space.name);
    assert.ok((await collect(member.listSpaces())).some((s) => s.name === space.name));

    const updated = await admin.updateSpace({ name: space.name, etag: space.etag, displayName: "Shared space", description: "ignored" }, ["display_name"]);
    assert.equal(updated.displayName, "Shared space");
    assert.equal(updated.description, space.description);
    await refused(member.updateSpace({ name: space.name, displayName: "mine" }, ["display_name"]), Code.PermissionDenied, "ROLE_REQUIRED");

    await admin.createCube(space.name, { cube: { payload: { case: "plaintext", value: { text: "Kept until forced" } } } });
    await refused(admin.deleteSpace(space.name), Code.FailedPrecondition, "SPACE_NOT_EMPTY");
    await admin.deleteSpace(space.name, { force: true });
    await refused(admin.getSpace(space.name), Code.NotFound, "SPACE_NOT_FOUND");
  });

  it("erases what a principal alone owns, then deletes it", async () => {
    const eraseMe = `principals/ts-erase-${u}`;
    await admin.createPrincipal(`ts-erase-${u}`);
    const own = mainClient((await admin.createCredential(eraseMe)).token);
    const space = await own.createSpace(`ts-erase-space-${u}`);
    await own.batchCreateCubes(space.name, [
      { cube: { payload: { case: "plaintext", value: { text: "Mine alone" } } } },
      { cube: { payload: { case: "plaintext", value: { text: "Mine too" } } } },
    ]);
    const erased = await admin.erasePrincipalData(eraseMe);
    assert.equal(erased.spacesRemoved, 1n);
    assert.equal(erased.cubesRemoved, 2n);
    await refused(admin.getSpace(space.name), Code.NotFound, "SPACE_NOT_FOUND");
    await admin.deletePrincipal(eraseMe);
    await refused(admin.getPrincipal(eraseMe), Code.NotFound, "PRINCIPAL_NOT_FOUND");
  });

  it("keeps an audit log whose hash chain verifies", async () => {
    const events = await collect(admin.listAuditEvents({ pageSize: 100 }));
    assert.ok(events.length > 0);
    for (let i = 1; i < events.length; i++) {
      assert.ok(events[i]!.sequence > events[i - 1]!.sequence, "in sequence order");
    }
    const verified = await admin.verifyAuditLog();
    assert.equal(verified.verified, true, verified.problem);
    assert.ok(verified.eventsChecked >= BigInt(events.length));
  });
});

describe("the trust root and peers", () => {
  it("trusts the market's node key as a publisher in a new version checked offline, and imports from the market", async () => {
    const admin = mainClient();
    const market = marketClient();
    const marketRoot = await trustRootOf(market);
    const [marketNodeKey] = [...keysFor(marketRoot, "node").keys()];
    assert.ok(marketNodeKey);
    const marketNodeEntry = (JSON.parse(Buffer.from(parseEnvelope((await market.getTrustRoot()).signedEnvelope).payload).toString("utf8")) as {
      keys: Record<string, unknown>;
    }).keys[marketNodeKey];

    // The next version of main's root: the market's node key among the publishers. Main's own node key (its
    // admin) signs it; the other client's suite may update the root meanwhile, so a rollback means: read it again.
    let updated;
    let current;
    for (let attempt = 0; updated === undefined; attempt++) {
      const published = await admin.getTrustRoot();
      current = parseTrustRoot(parseEnvelope(published.signedEnvelope).payload);
      const payload = JSON.parse(Buffer.from(parseEnvelope(published.signedEnvelope).payload).toString("utf8")) as {
        version: number;
        keys: Record<string, unknown>;
        roles: Record<string, { keyids: string[]; threshold: number }>;
      };
      payload.version += 1;
      payload.keys[marketNodeKey] = marketNodeEntry;
      const publisher = payload.roles["publisher"] ?? { keyids: [], threshold: 1 };
      if (!publisher.keyids.includes(marketNodeKey)) publisher.keyids.push(marketNodeKey);
      payload.roles["publisher"] = publisher;
      const envelope = JSON.stringify({
        payload: Buffer.from(JSON.stringify(payload), "utf8").toString("base64"),
        payloadType: TRUST_ROOT_PAYLOAD_TYPE,
        signatures: [],
      });
      try {
        updated = await admin.updateTrustRoot(Buffer.from(envelope, "utf8"), true);
      } catch (error) {
        if (!(error instanceof MemosError) || error.reason !== "TRUST_ROOT_ROLLBACK" || attempt >= 5) throw error;
      }
    }
    assert.equal(updated.version, BigInt(current!.version + 1));
    // Offline: the new root is a valid update of the one before (version, expiry, signatures of the admin keys).
    const checked = verifyRootUpdate(current!, updated.signedEnvelope, now());
    assert.ok(checked.root.roles.get("publisher")?.keyIds.includes(marketNodeKey));

    // A space of the market's owner, pulled by main over TLS: its bundle counts under the publisher role now.
    const u = unique();
    const space = await market.createSpace(`ts-peer-${u}`);
    await market.batchCreateCubes(space.name, [
      { cube: { payload: { case: "plaintext", value: { text: "Pulled from a peer" } } } },
      { cube: { payload: { case: "plaintext", value: { text: "Also pulled" } } } },
    ]);
    const target = await admin.createSpace(`ts-pulled-${u}`);
    const pulled = await admin.importFromPeer({
      parent: target.name,
      peerTarget: topology.market.address,
      peerToken: topology.market.admin_token,
      selection: { parent: space.name },
      trustPolicy: { role: KeyRole.PUBLISHER, requiredKeyIds: [marketNodeKey] },
    });
    assert.equal(pulled.createdCount, 2n);
    assert.equal(pulled.verification?.valid, true);
    assert.ok(pulled.verification?.signatures.some((s) => s.keyId === marketNodeKey));
    assert.equal((await collect(admin.listCubes(target.name))).length, 2);
  });
});
