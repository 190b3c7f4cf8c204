/**
 * InterchangeService as async functions: signed bundles exported as they stream, imported and verified from any
 * source of chunks (a marketplace release with its license), and pulled from a peer server.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";

import {
  ConflictPolicy,
  type BundleVerification,
  type ImportBundleRequestSchema,
  type ImportBundleResponse,
  type ImportFromPeerRequestSchema,
  type ReleaseInfoSchema,
  type ReleaseLicenseSchema,
  type TrustPolicySchema,
  type VerifyBundleRequestSchema,
} from "../gen/memos/v1/interchange_service_pb.js";
import { call, headedStream, serverStream, type ByteSource, type CallOptions } from "./base.js";
import { SchedulerCalls } from "./scheduler.js";

/** What an export names for a marketplace release: the listing, the release id, the terms' license and digest. */
export type ReleaseInfoInit = MessageInitShape<typeof ReleaseInfoSchema>;

/**
 * The ReleaseInfo of release `releaseId` of `listing` under `termsJson`: the license is the terms' `license`
 * member and the digest the sha256 of their UTF-8 bytes, as the marketplace checks them on publish.
 */
export function releaseInfo(listing: string, releaseId: string, termsJson: string): ReleaseInfoInit {
  const license: unknown = (JSON.parse(termsJson) as Record<string, unknown>)["license"];
  if (typeof license !== "string") throw new TypeError("the terms' license must be a string (an SPDX expression)");
  return {
    listing: listing.startsWith("listings/") ? listing : `listings/${listing}`,
    release: releaseId,
    license,
    termsDigest: `sha256:${createHash("sha256").update(termsJson, "utf8").digest("hex")}`,
  };
}

/** How an import treats what it brings in: conflicts, whose signatures count, or the license of a release. */
export interface ImportSettings {
  readonly conflictPolicy?: ConflictPolicy;
  readonly trustPolicy?: MessageInitShape<typeof TrustPolicySchema>;
  /** A marketplace release's grant envelope and tlog-proof (License.grantEnvelope, License.tlogProof). */
  readonly license?: MessageInitShape<typeof ReleaseLicenseSchema>;
}

export class InterchangeCalls extends SchedulerCalls {
  /** The bundle of the cubes named (or matching `filter`), as its bytes arrive; with `release`, a release bundle. */
  async *exportBundle(
    parent: string,
    selection: { names?: string[]; filter?: string; release?: ReleaseInfoInit } = {},
    options?: CallOptions,
  ): AsyncGenerator<Uint8Array> {
    const request = {
      parent,
      names: selection.names ?? [],
      filter: selection.filter ?? "",
      ...(selection.release ? { release: selection.release } : {}),
    };
    const stream = serverStream((o) => this.interchange.exportBundle(request, o), options);
    for await (const response of stream) yield response.chunk;
  }

  /** Imports a bundle read from `chunks` into `parent` (the server verifies it before anything is written). */
  importBundle(parent: string, chunks: ByteSource, settings: ImportSettings = {}, options?: CallOptions): Promise<ImportBundleResponse> {
    const first: MessageInitShape<typeof ImportBundleRequestSchema> = {
      parent,
      conflictPolicy: settings.conflictPolicy ?? ConflictPolicy.UNSPECIFIED,
      ...(settings.trustPolicy ? { trustPolicy: settings.trustPolicy } : {}),
      ...(settings.license ? { license: settings.license } : {}),
    };
    return this.interchange.importBundle(headedStream(first, chunks, (chunk) => ({ chunk }), "chunk"), call(options));
  }

  /** The checks of an import, importing nothing: a bad bundle is a report with `valid` false, not an error. */
  async verifyBundle(
    chunks: ByteSource,
    trustPolicy?: MessageInitShape<typeof TrustPolicySchema>,
    options?: CallOptions,
  ): Promise<BundleVerification> {
    const first: MessageInitShape<typeof VerifyBundleRequestSchema> = trustPolicy ? { trustPolicy } : {};
    const response = await this.interchange.verifyBundle(headedStream(first, chunks, (chunk) => ({ chunk }), "chunk"), call(options));
    if (response.verification === undefined) throw new Error("the server returned no verification");
    return response.verification;
  }

  /** Has the server pull `selection` from a peer server over TLS and import it (admins). */
  importFromPeer(request: MessageInitShape<typeof ImportFromPeerRequestSchema>, options?: CallOptions): Promise<ImportBundleResponse> {
    return this.interchange.importFromPeer(request, call(options));
  }
}
