/**
 * MarketplaceService (MemStore) as async functions: listings, releases published from streamed bundles and
 * downloaded as AsyncIterables of chunks (checked against their digest), licenses, and the event stream.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FieldMaskSchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createHash } from "node:crypto";

import { SearchMode } from "../gen/memos/v1/vault_service_pb.js";
import type {
  EventType,
  License,
  Listing,
  ListingSchema,
  MarketplaceEvent,
  PublishReleaseRequestSchema,
  PublishReleaseResponse,
  Release,
  ScoredListing,
} from "../gen/memos/v1/marketplace_service_pb.js";
import { Code } from "@connectrpc/connect";
import { call, headedStream, pages, serverStream, type ByteSource, type CallOptions, type PageOptions } from "./base.js";
import { MemosError } from "./errors.js";
import { InterchangeCalls } from "./interchange.js";

/** `listings/{listing}` for a listing id or name. */
export function listingName(listing: string): string {
  return listing.startsWith("listings/") ? listing : `listings/${listing}`;
}

/** `licenses/{license}` for a license id or name. */
export function licenseName(license: string): string {
  return license.startsWith("licenses/") ? license : `licenses/${license}`;
}

/** What a new listing says: its title (required), description, tags, and how many publisher keys sign a release. */
export interface NewListing {
  readonly title: string;
  readonly description?: string;
  readonly tags?: string[];
  readonly publisherThreshold?: number;
}

/** The first message of a publish: the terms verbatim, and optionally what the bytes must hash to and weigh. */
export interface PublishSettings {
  readonly expectedDigest?: string;
  readonly expectedSize?: bigint | number;
  /** Check everything and return the release, storing and logging nothing. */
  readonly validateOnly?: boolean;
}

/** The license wanted: the release, the licensee as the buyer's node names it, its key id, and the window. */
export interface LicenseRequest {
  readonly release: string;
  readonly licensee: string;
  readonly licenseeKey: string;
  /** Whole seconds; they may only narrow the window the terms allow. */
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

/** Which events `subscribe` delivers (criteria set must all match) and from which log index. */
export interface Subscription {
  readonly types?: EventType[];
  readonly tags?: string[];
  readonly listings?: string[];
  readonly query?: string;
  readonly minScore?: number;
  /** Replay from this log index, then follow (resume with the last index seen + 1); unset: only new events. */
  readonly startIndex?: bigint | number;
}

/**
 * A release's bundle as it downloads: iterate it for the chunks; `release` is set once the first message
 * arrives. The bytes are checked against the release's size and bundle digest at the end: a mismatch throws
 * MemosError DATA_LOSS `DOWNLOAD_DIGEST_MISMATCH` from the iteration.
 */
export class ReleaseDownload implements AsyncIterable<Uint8Array> {
  release: Release | undefined;

  constructor(private readonly responses: AsyncIterable<{ release?: Release | undefined; chunk: Uint8Array }>) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    const digest = createHash("sha256");
    let size = 0n;
    for await (const response of this.responses) {
      if (this.release === undefined) {
        if (response.release === undefined) {
          throw MemosError.local(Code.DataLoss, "DOWNLOAD_DIGEST_MISMATCH", "the server sent bytes before the release");
        }
        this.release = response.release;
      }
      digest.update(response.chunk);
      size += BigInt(response.chunk.length);
      if (response.chunk.length > 0) yield response.chunk;
    }
    const got = `sha256:${digest.digest("hex")}`;
    if (this.release === undefined || size !== this.release.sizeBytes || got !== this.release.bundleDigest) {
      throw MemosError.local(
        Code.DataLoss,
        "DOWNLOAD_DIGEST_MISMATCH",
        `downloaded ${size} bytes hashing to ${got}; the release is ${this.release?.sizeBytes} bytes, ${this.release?.bundleDigest}`,
      );
    }
  }
}

export class MarketplaceCalls extends InterchangeCalls {
  // Listings.

  /** Creates `listings/{listingId}`, owned by the caller. */
  createListing(listingId: string, listing: NewListing, settings: { validateOnly?: boolean } & CallOptions = {}): Promise<Listing> {
    return this.marketplace.createListing(
      {
        listingId,
        listing: {
          title: listing.title,
          description: listing.description ?? "",
          tags: listing.tags ?? [],
          publisherThreshold: listing.publisherThreshold ?? 0,
        },
        validateOnly: settings.validateOnly ?? false,
      },
      call(settings),
    );
  }

  getListing(listing: string, options?: CallOptions): Promise<Listing> {
    return this.marketplace.getListing({ name: listingName(listing) }, call(options));
  }

  /** Listings in name order, matching the AIP-160 `filter`, page by page. */
  listListings(settings: { filter?: string } & PageOptions = {}): AsyncGenerator<Listing> {
    return pages(async (pageToken) => {
      const page = await this.marketplace.listListings(
        { filter: settings.filter ?? "", pageSize: settings.pageSize ?? 0, pageToken },
        call(settings),
      );
      return { items: page.listings, nextPageToken: page.nextPageToken };
    });
  }

  /** The listings nearest `text` (title, description, tags), best first. */
  async searchListings(
    text: string,
    settings: { mode?: SearchMode; filter?: string; topK?: number } & CallOptions = {},
  ): Promise<ScoredListing[]> {
    const response = await this.marketplace.searchListings(
      { text, mode: settings.mode ?? SearchMode.UNSPECIFIED, filter: settings.filter ?? "", topK: settings.topK ?? 0 },
      call(settings),
    );
    return response.results;
  }

  /** Changes the fields of `listing` named in `paths`; `listing.etag`, when set, must still be current. */
  updateListing(listing: MessageInitShape<typeof ListingSchema>, paths: string[], options?: CallOptions): Promise<Listing> {
    return this.marketplace.updateListing({ listing, updateMask: create(FieldMaskSchema, { paths }) }, call(options));
  }

  // Releases.

  /**
   * Publishes release `releaseId` of `listing` from a bundle (one Uint8Array, or chunks from any iterable) exported
   * with `releaseInfo(listing, releaseId, termsJson)`; returns the release, its log proof and the verification.
   * The same bytes again return the same release.
   */
  publishRelease(
    listing: string,
    releaseId: string,
    bundle: ByteSource,
    termsJson: string,
    settings: PublishSettings = {},
    options?: CallOptions,
  ): Promise<PublishReleaseResponse> {
    const size = settings.expectedSize ?? (bundle instanceof Uint8Array ? bundle.length : 0);
    const first: MessageInitShape<typeof PublishReleaseRequestSchema> = {
      parent: listingName(listing),
      releaseId,
      termsJson,
      expectedDigest: settings.expectedDigest ?? "",
      expectedSize: BigInt(size),
      validateOnly: settings.validateOnly ?? false,
    };
    return this.marketplace.publishRelease(headedStream(first, bundle, (chunk) => ({ chunk }), "chunk"), call(options));
  }

  /** A release (`listings/{listing}/releases/{version}`), yanked or not. */
  getRelease(name: string, options?: CallOptions): Promise<Release> {
    return this.marketplace.getRelease({ name }, call(options));
  }

  /** The releases of `listing`, newest first by SemVer; yanked ones only with `showYanked`. */
  listReleases(listing: string, settings: { filter?: string; showYanked?: boolean } & PageOptions = {}): AsyncGenerator<Release> {
    return pages(async (pageToken) => {
      const page = await this.marketplace.listReleases(
        {
          parent: listingName(listing),
          filter: settings.filter ?? "",
          showYanked: settings.showYanked ?? false,
          pageSize: settings.pageSize ?? 0,
          pageToken,
        },
        call(settings),
      );
      return { items: page.releases, nextPageToken: page.nextPageToken };
    });
  }

  /** The release's bundle as chunks; holders of a license pass it (the listing's owner and admins need none). */
  downloadRelease(name: string, settings: { license?: string } & CallOptions = {}): ReleaseDownload {
    const license = settings.license ? licenseName(settings.license) : "";
    return new ReleaseDownload(serverStream((o) => this.marketplace.downloadRelease({ name, license }, o), settings));
  }

  /** Yanks a release (its listing's owner): out of lists and search, still acquirable by its exact name. */
  yankRelease(name: string, reason: string, options?: CallOptions): Promise<Release> {
    return this.marketplace.yankRelease({ name, reason }, call(options));
  }

  // Licenses.

  /** A signed grant of the release to the licensee's key, with its log proof (verify both offline). */
  acquireLicense(wanted: LicenseRequest, options?: CallOptions): Promise<License> {
    return this.marketplace.acquireLicense(
      {
        license: {
          release: wanted.release,
          licensee: wanted.licensee,
          licenseeKey: wanted.licenseeKey,
          ...(wanted.notBefore ? { notBefore: timestampFromDate(wanted.notBefore) } : {}),
          ...(wanted.notAfter ? { notAfter: timestampFromDate(wanted.notAfter) } : {}),
        },
      },
      call(options),
    );
  }

  getLicense(name: string, options?: CallOptions): Promise<License> {
    return this.marketplace.getLicense({ name: licenseName(name) }, call(options));
  }

  /** The licenses the caller may see (acquired, of its listings; admins all), in name order. */
  listLicenses(settings: { filter?: string } & PageOptions = {}): AsyncGenerator<License> {
    return pages(async (pageToken) => {
      const page = await this.marketplace.listLicenses(
        { filter: settings.filter ?? "", pageSize: settings.pageSize ?? 0, pageToken },
        call(settings),
      );
      return { items: page.licenses, nextPageToken: page.nextPageToken };
    });
  }

  /** Revokes a license (the release's listing owner); buyer nodes act on it when they next sync. */
  revokeLicense(name: string, reason: string, options?: CallOptions): Promise<License> {
    return this.marketplace.revokeLicense({ name: licenseName(name), reason }, call(options));
  }

  // Events.

  /**
   * Publish, yank and revoke events in log order, each with its log index, from `startIndex` on; the stream
   * follows the log until the signal aborts it or the loop leaves it.
   */
  async *subscribe(subscription: Subscription = {}, options?: CallOptions): AsyncGenerator<MarketplaceEvent> {
    const request = {
      types: subscription.types ?? [],
      tags: subscription.tags ?? [],
      listings: (subscription.listings ?? []).map(listingName),
      query: subscription.query ?? "",
      minScore: subscription.minScore ?? 0,
      ...(subscription.startIndex !== undefined ? { startIndex: BigInt(subscription.startIndex) } : {}),
    };
    yield* serverStream((o) => this.marketplace.subscribe(request, o), options);
  }
}
