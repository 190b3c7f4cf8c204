/**
 * GovernanceService as async functions: spaces, access policies, principals and their credentials and keys, the
 * audit log, data erasure, and the trust root.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FieldMaskSchema, timestampFromDate } from "@bufbuild/protobuf/wkt";

import type { AccessPolicy, AccessPolicySchema } from "../gen/memos/v1/access_pb.js";
import type { AuditEvent } from "../gen/memos/v1/audit_pb.js";
import type { ErasePrincipalDataResponse, VerifyAuditLogResponse } from "../gen/memos/v1/governance_service_pb.js";
import type { Credential, Principal, PrincipalSchema, PublicKey } from "../gen/memos/v1/principal_pb.js";
import type { Space, SpaceSchema } from "../gen/memos/v1/space_pb.js";
import type { TrustRoot } from "../gen/memos/v1/trust_pb.js";
import { call, pages, ServiceClients, type CallOptions, type PageOptions } from "./base.js";

/** `principals/{id}` for a principal id or name. */
export function principalName(principal: string): string {
  return principal.startsWith("principals/") ? principal : `principals/${principal}`;
}

export class GovernanceCalls extends ServiceClients {
  // Spaces.

  createSpace(spaceId: string, displayName = "", options?: CallOptions): Promise<Space> {
    return this.governance.createSpace({ spaceId, space: { displayName } }, call(options));
  }

  getSpace(name: string, options?: CallOptions): Promise<Space> {
    return this.governance.getSpace({ name }, call(options));
  }

  listSpaces(pageSize = 0, options?: CallOptions): AsyncGenerator<Space> {
    return pages(async (pageToken) => {
      const page = await this.governance.listSpaces({ pageSize, pageToken }, call(options));
      return { items: page.spaces, nextPageToken: page.nextPageToken };
    });
  }

  /** Updates the fields of `space` named in `paths` (AIP-134); `space.etag`, when set, must still be current. */
  updateSpace(space: MessageInitShape<typeof SpaceSchema>, paths: string[], options?: CallOptions): Promise<Space> {
    return this.governance.updateSpace({ space, updateMask: create(FieldMaskSchema, { paths }) }, call(options));
  }

  /** Deletes a space; one holding cubes needs `force` (else FAILED_PRECONDITION SPACE_NOT_EMPTY). */
  async deleteSpace(name: string, settings: { force?: boolean; etag?: string } & CallOptions = {}): Promise<void> {
    await this.governance.deleteSpace({ name, force: settings.force ?? false, etag: settings.etag ?? "" }, call(settings));
  }

  // Access policies.

  getAccessPolicy(resource: string, options?: CallOptions): Promise<AccessPolicy> {
    return this.governance.getAccessPolicy({ resource }, call(options));
  }

  /** Replaces the policy whole; `policy.etag` (from getAccessPolicy) guards against a concurrent change. */
  setAccessPolicy(resource: string, policy: MessageInitShape<typeof AccessPolicySchema>, options?: CallOptions): Promise<AccessPolicy> {
    return this.governance.setAccessPolicy({ resource, policy }, call(options));
  }

  // Principals and credentials.

  createPrincipal(principalId: string, principal: MessageInitShape<typeof PrincipalSchema> = {}, options?: CallOptions): Promise<Principal> {
    return this.governance.createPrincipal({ principalId, principal }, call(options));
  }

  getPrincipal(principal: string, options?: CallOptions): Promise<Principal> {
    return this.governance.getPrincipal({ name: principalName(principal) }, call(options));
  }

  listPrincipals(options: PageOptions = {}): AsyncGenerator<Principal> {
    return pages(async (pageToken) => {
      const page = await this.governance.listPrincipals({ pageSize: options.pageSize ?? 0, pageToken }, call(options));
      return { items: page.principals, nextPageToken: page.nextPageToken };
    });
  }

  async deletePrincipal(principal: string, options?: CallOptions): Promise<void> {
    await this.governance.deletePrincipal({ name: principalName(principal) }, call(options));
  }

  /** A new bearer token for `principal`: keep `.token`, the server cannot show it again. */
  createCredential(
    principal: string,
    settings: { description?: string; expireTime?: Date } = {},
    options?: CallOptions,
  ): Promise<Credential> {
    const credential = {
      description: settings.description ?? "",
      ...(settings.expireTime ? { expireTime: timestampFromDate(settings.expireTime) } : {}),
    };
    return this.governance.createCredential({ parent: principalName(principal), credential }, call(options));
  }

  revokeCredential(name: string, options?: CallOptions): Promise<Credential> {
    return this.governance.revokeCredential({ name }, call(options));
  }

  /** Removes what the principal alone owns or created (spaces, cubes, operations, uploads, roles) and counts it. */
  erasePrincipalData(principal: string, options?: CallOptions): Promise<ErasePrincipalDataResponse> {
    return this.governance.erasePrincipalData({ name: principalName(principal) }, call(options));
  }

  // Keys.

  /** The server makes and keeps an Ed25519 key for the principal; it co-signs the bundles the principal exports. */
  createSigningKey(principal: string, options?: CallOptions): Promise<PublicKey> {
    return this.governance.createSigningKey({ parent: principalName(principal) }, call(options));
  }

  /** Registers a raw 32-byte Ed25519 public key the principal holds; the key id is computed by the server. */
  registerPublicKey(principal: string, publicKey: Uint8Array, options?: CallOptions): Promise<PublicKey> {
    return this.governance.registerPublicKey({ parent: principalName(principal), publicKey: { publicKey } }, call(options));
  }

  // The audit log.

  /** Audit events in sequence order (AIP-160 `filter`, e.g. `method = "license.recall"`), page by page. */
  listAuditEvents(settings: { filter?: string } & PageOptions = {}): AsyncGenerator<AuditEvent> {
    return pages(async (pageToken) => {
      const page = await this.governance.listAuditEvents(
        { filter: settings.filter ?? "", pageSize: settings.pageSize ?? 0, pageToken },
        call(settings),
      );
      return { items: page.events, nextPageToken: page.nextPageToken };
    });
  }

  /** Walks the hash chain of the audit log: `verified`, or the first broken sequence and the problem. */
  verifyAuditLog(options?: CallOptions): Promise<VerifyAuditLogResponse> {
    return this.governance.verifyAuditLog({}, call(options));
  }

  // The trust root.

  getTrustRoot(options?: CallOptions): Promise<TrustRoot> {
    return this.governance.getTrustRoot({}, call(options));
  }

  updateTrustRoot(signedEnvelope: Uint8Array, addNodeSignature = false, options?: CallOptions): Promise<TrustRoot> {
    return this.governance.updateTrustRoot({ signedEnvelope, addNodeSignature }, call(options));
  }
}
