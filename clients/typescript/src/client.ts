/**
 * The memos-grpc client: connect-node's gRPC transport (HTTP/2) over TLS or mTLS with a bearer token, every
 * service's generated client (`client.vault`, `client.governance`, ...) for every RPC, and async functions for the
 * main surface. Streams are AsyncIterables; every call takes an AbortSignal; every failure is a MemosError carrying
 * the gRPC code and the ErrorInfo reason the server sent.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import type { MemCube } from "./gen/memos/v1/cube_pb.js";
import { GovernanceService } from "./gen/memos/v1/governance_service_pb.js";
import type { Space } from "./gen/memos/v1/space_pb.js";
import type { TrustRoot } from "./gen/memos/v1/trust_pb.js";
import { HeldLicenseService } from "./gen/memos/v1/held_license_service_pb.js";
import {
  ConflictPolicy,
  InterchangeService,
  type ImportBundleResponse,
  type TrustPolicySchema,
} from "./gen/memos/v1/interchange_service_pb.js";
import { MarketplaceService } from "./gen/memos/v1/marketplace_service_pb.js";
import { SchedulerService, type RecallPlan, type RecallRequestSchema } from "./gen/memos/v1/scheduler_service_pb.js";
import { TransparencyLogService } from "./gen/memos/v1/transparency_log_service_pb.js";
import {
  VaultService,
  type CreateCubeRequestSchema,
  type SearchCubesRequestSchema,
  type SearchCubesResponse,
  type VectorSchema,
} from "./gen/memos/v1/vault_service_pb.js";
import { WitnessService } from "./gen/memos/v1/witness_service_pb.js";

export { Code } from "@connectrpc/connect";

const ERROR_INFO_TYPE = "google.rpc.ErrorInfo";

/** A failed call: the gRPC `code`, the server's ErrorInfo `reason` ("" when it sent none), and its `metadata`. */
export class MemosError extends Error {
  readonly code: Code;
  readonly reason: string;
  readonly domain: string;
  /** ErrorInfo metadata (field names and values the reason refers to). */
  readonly metadata: Readonly<Record<string, string>>;
  /** The response headers and trailers. */
  readonly headers: Headers;

  constructor(error: ConnectError) {
    super(error.rawMessage || error.message, { cause: error });
    this.name = "MemosError";
    this.code = error.code;
    this.headers = error.metadata;
    const info = errorInfo(error);
    this.reason = info?.reason ?? "";
    this.domain = info?.domain ?? "";
    this.metadata = info?.metadata ?? {};
  }

  /** The error `thrown` as a MemosError (aborts and transport failures included). */
  static from(thrown: unknown): MemosError {
    return thrown instanceof MemosError ? thrown : new MemosError(ConnectError.from(thrown));
  }
}

function errorInfo(error: ConnectError): { reason: string; domain: string; metadata: Record<string, string> } | null {
  for (const detail of error.details) {
    if (!("type" in detail) || detail.type !== ERROR_INFO_TYPE) continue;
    const reader = new BinaryReader(detail.value);
    const found = { reason: "", domain: "", metadata: {} as Record<string, string> };
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1) found.reason = reader.string();
      else if (field === 2) found.domain = reader.string();
      else if (field === 3) {
        const entry = new BinaryReader(reader.bytes());
        let key = "";
        let value = "";
        while (entry.pos < entry.len) {
          const [f, w] = entry.tag();
          if (f === 1) key = entry.string();
          else if (f === 2) value = entry.string();
          else entry.skip(w);
        }
        found.metadata[key] = value;
      } else reader.skip(wireType);
    }
    return found;
  }
  return null;
}

async function* rethrowing<T>(stream: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* stream;
  } catch (error) {
    throw MemosError.from(error);
  }
}

/**
 * The service's generated client with every failure, unary or streamed, turned into a MemosError. (An interceptor
 * cannot do it: the generated client wraps whatever an interceptor throws into a ConnectError again.)
 */
function withMemosErrors<T extends object>(client: T): T {
  return new Proxy(client, {
    get(target, property, receiver) {
      const method = Reflect.get(target, property, receiver);
      if (typeof method !== "function") return method;
      return (...args: unknown[]) => {
        const result = method.apply(target, args);
        if (result instanceof Promise) return result.catch((error: unknown) => Promise.reject(MemosError.from(error)));
        if (result !== null && typeof result === "object" && Symbol.asyncIterator in result) {
          return rethrowing(result as AsyncIterable<unknown>);
        }
        return result;
      };
    },
  });
}

function bearer(token: string): Interceptor {
  return (next) => (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
}

export interface ClientOptions {
  /** `https://host:port` (TLS) or `http://host:port` (plaintext, for local development only). */
  readonly baseUrl: string;
  /** Sent as `authorization: Bearer <token>` on every call. */
  readonly token?: string;
  /** PEM of the CA that signed the server's certificate (else the system's CAs). */
  readonly ca?: string | Buffer;
  /** PEM of the client certificate and its key, for mTLS. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** TLS server name when it differs from the URL's host. */
  readonly serverName?: string;
  /** Default deadline of each call, in milliseconds. */
  readonly timeoutMs?: number;
  readonly interceptors?: Interceptor[];
}

/** Options each call takes: an AbortSignal to cancel it, and a deadline. */
export interface CallOptions {
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
}

/** The transport `MemosClient` uses: gRPC over HTTP/2, TLS options from `options`. */
export function createTransport(options: ClientOptions): Transport {
  const tls: Record<string, unknown> = {};
  if (options.ca !== undefined) tls["ca"] = options.ca;
  if (options.cert !== undefined) tls["cert"] = options.cert;
  if (options.key !== undefined) tls["key"] = options.key;
  if (options.serverName !== undefined) tls["servername"] = options.serverName;
  const interceptors = [...(options.token ? [bearer(options.token)] : []), ...(options.interceptors ?? [])];
  return createGrpcTransport({
    baseUrl: options.baseUrl,
    interceptors,
    nodeOptions: tls,
    ...(options.timeoutMs !== undefined ? { defaultTimeoutMs: options.timeoutMs } : {}),
  });
}

function call(options?: CallOptions): { signal?: AbortSignal; timeoutMs?: number } {
  const out: { signal?: AbortSignal; timeoutMs?: number } = {};
  if (options?.signal) out.signal = options.signal;
  if (options?.timeoutMs !== undefined) out.timeoutMs = options.timeoutMs;
  return out;
}

/** A cube to create: `cube`, and optionally `cubeId`, `vector`, `validateOnly` (the parent is given apart). */
export type NewCube = Omit<MessageInitShape<typeof CreateCubeRequestSchema>, "parent" | "$typeName">;

/** A memos-grpc server: the generated clients of every service, and async functions for the main surface. */
export class MemosClient {
  readonly governance: Client<typeof GovernanceService>;
  readonly vault: Client<typeof VaultService>;
  readonly scheduler: Client<typeof SchedulerService>;
  readonly interchange: Client<typeof InterchangeService>;
  readonly marketplace: Client<typeof MarketplaceService>;
  readonly heldLicenses: Client<typeof HeldLicenseService>;
  readonly transparencyLog: Client<typeof TransparencyLogService>;
  readonly witness: Client<typeof WitnessService>;

  constructor(readonly transport: Transport) {
    this.governance = withMemosErrors(createClient(GovernanceService, transport));
    this.vault = withMemosErrors(createClient(VaultService, transport));
    this.scheduler = withMemosErrors(createClient(SchedulerService, transport));
    this.interchange = withMemosErrors(createClient(InterchangeService, transport));
    this.marketplace = withMemosErrors(createClient(MarketplaceService, transport));
    this.heldLicenses = withMemosErrors(createClient(HeldLicenseService, transport));
    this.transparencyLog = withMemosErrors(createClient(TransparencyLogService, transport));
    this.witness = withMemosErrors(createClient(WitnessService, transport));
  }

  static connect(options: ClientOptions): MemosClient {
    return new MemosClient(createTransport(options));
  }

  // Spaces.

  createSpace(spaceId: string, displayName = "", options?: CallOptions): Promise<Space> {
    return this.governance.createSpace({ spaceId, space: { displayName } }, call(options));
  }

  getSpace(name: string, options?: CallOptions): Promise<Space> {
    return this.governance.getSpace({ name }, call(options));
  }

  async *listSpaces(pageSize = 0, options?: CallOptions): AsyncGenerator<Space> {
    let pageToken = "";
    do {
      const page = await this.governance.listSpaces({ pageSize, pageToken }, call(options));
      yield* page.spaces;
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }

  async deleteSpace(name: string, options?: CallOptions): Promise<void> {
    await this.governance.deleteSpace({ name }, call(options));
  }

  // Cubes.

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

  getCube(name: string, options?: CallOptions): Promise<MemCube> {
    return this.vault.getCube({ name }, call(options));
  }

  /** Every cube of the space (matching `filter`), fetching pages of `pageSize` as the iteration goes. */
  async *listCubes(parent: string, filter = "", pageSize = 0, options?: CallOptions): AsyncGenerator<MemCube> {
    let pageToken = "";
    do {
      const page = await this.vault.listCubes({ parent, filter, pageSize, pageToken }, call(options));
      yield* page.cubes;
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }

  /**
   * Updates the fields of `cube` named in `paths` (an AIP-134 update mask). Set `cube.etag` to the etag read to
   * refuse the update if the cube changed since (ABORTED, reason ETAG_MISMATCH).
   */
  updateCube(cube: MemCube, paths: string[], options?: CallOptions): Promise<MemCube> {
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

  // Recall.

  recall(parent: string, query: string, tokenBudget: number, options?: CallOptions): Promise<RecallPlan>;
  recall(request: MessageInitShape<typeof RecallRequestSchema>, options?: CallOptions): Promise<RecallPlan>;
  recall(
    first: string | MessageInitShape<typeof RecallRequestSchema>,
    second?: string | CallOptions,
    third?: number,
    fourth?: CallOptions,
  ): Promise<RecallPlan> {
    if (typeof first === "string") {
      return this.scheduler.recall({ parent: first, query: second as string, tokenBudget: third ?? 0 }, call(fourth));
    }
    return this.scheduler.recall(first, call(second as CallOptions | undefined));
  }

  // Bundles.

  /** The bundle of the cubes named (or matching `filter`), as its bytes arrive. */
  async *exportBundle(
    parent: string,
    selection: { names?: string[]; filter?: string } = {},
    options?: CallOptions,
  ): AsyncGenerator<Uint8Array> {
    const stream = this.interchange.exportBundle(
      { parent, names: selection.names ?? [], filter: selection.filter ?? "" },
      call(options),
    );
    for await (const response of stream) yield response.chunk;
  }

  /** Imports a bundle read from `chunks` into `parent` (the server verifies it before anything is written). */
  importBundle(
    parent: string,
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    settings: { conflictPolicy?: ConflictPolicy; trustPolicy?: MessageInitShape<typeof TrustPolicySchema> } = {},
    options?: CallOptions,
  ): Promise<ImportBundleResponse> {
    async function* requests() {
      yield {
        parent,
        conflictPolicy: settings.conflictPolicy ?? ConflictPolicy.UNSPECIFIED,
        ...(settings.trustPolicy ? { trustPolicy: settings.trustPolicy } : {}),
      };
      for await (const chunk of chunks) yield { chunk };
    }
    return this.interchange.importBundle(requests(), call(options));
  }

  // The trust root.

  getTrustRoot(options?: CallOptions): Promise<TrustRoot> {
    return this.governance.getTrustRoot({}, call(options));
  }

  updateTrustRoot(signedEnvelope: Uint8Array, addNodeSignature = false, options?: CallOptions): Promise<TrustRoot> {
    return this.governance.updateTrustRoot({ signedEnvelope, addNodeSignature }, call(options));
  }

  /** Closes nothing the transport keeps open beyond this process: HTTP/2 sessions close when idle. */
}

export { ConflictPolicy };
