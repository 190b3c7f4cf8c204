/**
 * HeldLicenseService as async functions: the buyer's side of the marketplace, on the buyer's own node: the
 * licenses it holds for imported releases, pulling a licensed release from the marketplace it follows, and
 * following that marketplace's log.
 */
import type { ImportBundleResponse, ConflictPolicy } from "../gen/memos/v1/interchange_service_pb.js";
import type { FollowedLog, HeldLicense } from "../gen/memos/v1/held_license_service_pb.js";
import { call, pages, type CallOptions, type PageOptions } from "./base.js";
import { TransparencyLogCalls } from "./log.js";
import { licenseName } from "./marketplace.js";

/** `heldLicenses/{hex}` for a held license's name, its hex id, or the marketplace's `sha256:<hex>` grant digest. */
export function heldLicenseName(heldLicense: string): string {
  if (heldLicense.startsWith("heldLicenses/")) return heldLicense;
  return `heldLicenses/${heldLicense.replace(/^sha256:/, "")}`;
}

export class HeldLicenseCalls extends TransparencyLogCalls {
  /** A held license (name, hex id or grant digest): its state, window and uses per action. */
  getHeldLicense(heldLicense: string, options?: CallOptions): Promise<HeldLicense> {
    return this.heldLicenses.getHeldLicense({ name: heldLicenseName(heldLicense) }, call(options));
  }

  /** The held licenses the caller may see (its own; admins all), in name order. */
  listHeldLicenses(options: PageOptions = {}): AsyncGenerator<HeldLicense> {
    return pages(async (pageToken) => {
      const page = await this.heldLicenses.listHeldLicenses({ pageSize: options.pageSize ?? 0, pageToken }, call(options));
      return { items: page.heldLicenses, nextPageToken: page.nextPageToken };
    });
  }

  /**
   * Has this node pull licensed release `license` (`licenses/{id}` on the marketplace it follows, acquired for the
   * caller's key here) and import it into `parent`; `marketplaceToken` is the caller's token there, used once.
   */
  importRelease(
    parent: string,
    license: string,
    marketplaceToken: string,
    settings: { conflictPolicy?: ConflictPolicy } & CallOptions = {},
  ): Promise<ImportBundleResponse> {
    return this.heldLicenses.importRelease(
      { parent, license: licenseName(license), marketplaceToken, conflictPolicy: settings.conflictPolicy ?? 0 },
      call(settings),
    );
  }

  /** Has the node follow the marketplace log now (admins): the checkpoint accepted, or the refusal. */
  syncMarketplaceLog(options?: CallOptions): Promise<FollowedLog> {
    return this.heldLicenses.syncMarketplaceLog({}, call(options));
  }

  /** What the node has accepted of each marketplace log it follows, and its last failed sync (admins). */
  async listFollowedLogs(options?: CallOptions): Promise<FollowedLog[]> {
    return (await this.heldLicenses.listFollowedLogs({}, call(options))).logs;
  }
}
