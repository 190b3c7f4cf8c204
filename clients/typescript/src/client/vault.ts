/**
 * VaultService as async functions: cubes and batches, listing and search, updates with a mask and an etag, payload
 * blobs streamed up and down, and the lifecycle (versions, rollback, freeze, archive, merge).
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";

import type { BlobRef, MemCube, MemCubeSchema } from "../gen/memos/v1/cube_pb.js";
import type {
  CreateCubeRequestSchema,
  SearchCubesRequestSchema,
  SearchCubesResponse,
  VectorSchema,
  WritePayloadRequestSchema,
} from "../gen/memos/v1/vault_service_pb.js";
import { GovernanceCalls } from "./governance.js";
import { call, headedStream, pages, serverStream, type ByteSource, type CallOptions, type PageOptions } from "./base.js";

/** A cube to create: `cube`, and optionally `cubeId`, `vector`, `validateOnly` (the parent is given apart). */
export type NewCube = Omit<MessageInitShape<typeof CreateCubeRequestSchema>, "parent" | "$typeName">;

/** The header of a payload upload: what the bytes must hash to and weigh, and their media type. */
export interface PayloadHeader {
  /** `sha256:<hex>` the bytes must hash to (PAYLOAD_DIGEST_MISMATCH otherwise). */
  readonly expectedDigest?: string;
  /** Their size (PAYLOAD_SIZE_MISMATCH otherwise); set from the bytes when they are one Uint8Array. */
  readonly expectedSize?: bigint | number;
  readonly mediaType?: string;
}

export class VaultCalls extends GovernanceCalls {
  createCube(parent: string, request: NewCube, options?: CallOptions): Promise<MemCube> {
    return this.vault.createCube({ ...request, parent }, call(options));
  }

  async batchCreateCubes(parent: string, requests: NewCube[], options?: CallOptions): Promise<MemCube[]> {
    const response = await this.vault.batchCreateCubes(
      { parent, requests: requests.map((r) => ({ ...r, parent })) },
      call(options),
    );
    return response.cubes;
  }

  /** A cube, or one of its versions (`.../cubes/{cube}/versions/{n}`). */
  getCube(name: string, options?: CallOptions): Promise<MemCube> {
    return this.vault.getCube({ name }, call(options));
  }

  /**
   * Every cube of the space (matching `filter`), fetching pages of `pageSize` as the iteration goes; with
   * `showExpired`, the tombstones of expired cubes too (state EXPIRED, no content).
   */
  listCubes(
    parent: string,
    filter = "",
    pageSize = 0,
    options?: CallOptions & { readonly showExpired?: boolean },
  ): AsyncGenerator<MemCube> {
    const showExpired = options?.showExpired ?? false;
    return pages(async (pageToken) => {
      const page = await this.vault.listCubes({ parent, filter, pageSize, pageToken, showExpired }, call(options));
      return { items: page.cubes, nextPageToken: page.nextPageToken };
    });
  }

  /**
   * Updates the fields of `cube` named in `paths` (an AIP-134 update mask). Set `cube.etag` to the etag read to
   * refuse the update if the cube changed since (ABORTED, reason ETAG_MISMATCH).
   */
  updateCube(cube: MessageInitShape<typeof MemCubeSchema>, paths: string[], options?: CallOptions): Promise<MemCube> {
    return this.vault.updateCube({ cube, updateMask: create(FieldMaskSchema, { paths }) }, call(options));
  }

  async deleteCube(name: string, etag = "", options?: CallOptions): Promise<void> {
    await this.vault.deleteCube({ name, etag }, call(options));
  }

  searchText(parent: string, text: string, topK = 10, filter = "", options?: CallOptions): Promise<SearchCubesResponse> {
    return this.vault.searchCubes({ parent, query: { case: "text", value: text }, topK, filter }, call(options));
  }

  search(request: MessageInitShape<typeof SearchCubesRequestSchema>, options?: CallOptions): Promise<SearchCubesResponse> {
    return this.vault.searchCubes(request, call(options));
  }

  searchVector(
    parent: string,
    vector: MessageInitShape<typeof VectorSchema>,
    topK = 10,
    options?: CallOptions,
  ): Promise<SearchCubesResponse> {
    return this.vault.searchCubes({ parent, query: { case: "vector", value: vector }, topK }, call(options));
  }

  // Payload blobs.

  /** Uploads the bytes of an activation or parametric payload into `parent` and returns the blob to name in a cube. */
  async writePayload(parent: string, data: ByteSource, header: PayloadHeader = {}, options?: CallOptions): Promise<BlobRef> {
    const size = header.expectedSize ?? (data instanceof Uint8Array ? data.length : 0);
    const first: MessageInitShape<typeof WritePayloadRequestSchema> = {
      parent,
      expectedDigest: header.expectedDigest ?? "",
      expectedSize: BigInt(size),
      mediaType: header.mediaType ?? "",
    };
    const requests = headedStream(first, data, (bytes) => ({ data: bytes }), "data");
    const response = await this.vault.writePayload(requests, call(options));
    if (response.blob === undefined) throw new Error("the server returned no blob");
    return response.blob;
  }

  /** The payload blob of cube `name` as it arrives (`offset` and `limit` select a byte range). */
  async *readPayload(name: string, range: { offset?: bigint | number; limit?: bigint | number } = {}, options?: CallOptions): AsyncGenerator<Uint8Array> {
    const request = { name, readOffset: BigInt(range.offset ?? 0), readLimit: BigInt(range.limit ?? 0) };
    for await (const response of serverStream((o) => this.vault.readPayload(request, o), options)) yield response.data;
  }

  // The lifecycle (docs/lifecycle.md).

  /** Every version of a cube, newest first, each named `.../versions/{n}`. */
  listCubeVersions(name: string, options: PageOptions = {}): AsyncGenerator<MemCube> {
    return pages(async (pageToken) => {
      const page = await this.vault.listCubeVersions({ name, pageSize: options.pageSize ?? 0, pageToken }, call(options));
      return { items: page.versions, nextPageToken: page.nextPageToken };
    });
  }

  /** Makes version `version`'s content the cube's next version (the history is kept). */
  rollbackCube(name: string, version: bigint | number, etag = "", options?: CallOptions): Promise<MemCube> {
    return this.vault.rollbackCube({ name, version: BigInt(version), etag }, call(options));
  }

  freezeCube(name: string, etag = "", options?: CallOptions): Promise<MemCube> {
    return this.vault.freezeCube({ name, etag }, call(options));
  }

  unfreezeCube(name: string, etag = "", options?: CallOptions): Promise<MemCube> {
    return this.vault.unfreezeCube({ name, etag }, call(options));
  }

  archiveCube(name: string, etag = "", options?: CallOptions): Promise<MemCube> {
    return this.vault.archiveCube({ name, etag }, call(options));
  }

  /** A new cube (`merged`) from at least two cubes of `parent`, which become MERGED, in one transaction. */
  mergeCubes(parent: string, names: string[], merged: NewCube, options?: CallOptions): Promise<MemCube> {
    const { cubeId, cube, vector } = merged;
    return this.vault.mergeCubes(
      { parent, names, cubeId: cubeId ?? "", ...(cube ? { cube } : {}), ...(vector ? { vector } : {}) },
      call(options),
    );
  }
}
