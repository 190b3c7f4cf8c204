/**
 * What every part of the client shares: connect-node's gRPC transport (HTTP/2) over TLS or mTLS with a bearer
 * token, the options each call takes, the generated client of every service, and the helpers that turn paged
 * lists into AsyncIterables and byte sources into request streams.
 */
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { GovernanceService } from "../gen/memos/v1/governance_service_pb.js";
import { HeldLicenseService } from "../gen/memos/v1/held_license_service_pb.js";
import { InterchangeService } from "../gen/memos/v1/interchange_service_pb.js";
import { MarketplaceService } from "../gen/memos/v1/marketplace_service_pb.js";
import { SchedulerService } from "../gen/memos/v1/scheduler_service_pb.js";
import { TransparencyLogService } from "../gen/memos/v1/transparency_log_service_pb.js";
import { VaultService } from "../gen/memos/v1/vault_service_pb.js";
import { WitnessService } from "../gen/memos/v1/witness_service_pb.js";
import { withMemosErrors } from "./errors.js";

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

/** The connect call options of `options`. */
export function call(options?: CallOptions): { signal?: AbortSignal; timeoutMs?: number } {
  const out: { signal?: AbortSignal; timeoutMs?: number } = {};
  if (options?.signal) out.signal = options.signal;
  if (options?.timeoutMs !== undefined) out.timeoutMs = options.timeoutMs;
  return out;
}

/**
 * A server stream that ends its call when the consumer stops early (a `break` out of the loop): the call is
 * cancelled instead of staying open, with its deadline timer, until the server ends it.
 */
export async function* serverStream<T>(
  open: (options: { signal: AbortSignal; timeoutMs?: number }) => AsyncIterable<T>,
  options?: CallOptions,
): AsyncGenerator<T> {
  const own = new AbortController();
  const signal = options?.signal ? AbortSignal.any([own.signal, options.signal]) : own.signal;
  const responses = open({ ...call(options), signal })[Symbol.asyncIterator]();
  try {
    for (let next = await responses.next(); !next.done; next = await responses.next()) yield next.value;
  } finally {
    // Cancel, then read on until the transport reports the end or the cancellation: only then does it stop the
    // call's deadline timer (leaving the iterator alone would keep the process alive until the deadline).
    own.abort();
    try {
      while (!(await responses.next()).done);
    } catch {
      // The cancellation just made.
    }
  }
}

/** Paging options of the list calls (AIP-158): the page size asked of the server (0: its default). */
export interface PageOptions extends CallOptions {
  readonly pageSize?: number;
}

/** Every item of a paged list, fetching the next page (with its token) only when the iteration gets there. */
export async function* pages<Item>(
  fetch: (pageToken: string) => Promise<{ nextPageToken: string; items: readonly Item[] }>,
): AsyncGenerator<Item> {
  let pageToken = "";
  do {
    const page = await fetch(pageToken);
    yield* page.items;
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
}

/** Bytes to stream to the server: all at once, or chunk by chunk from any (async) iterable. */
export type ByteSource = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** Pieces of at most this many bytes go in one request message (well under gRPC's 4 MiB message limit). */
export const CHUNK_BYTES = 1 << 20;

/** The chunks of `source`, none larger than CHUNK_BYTES. */
export async function* chunksOf(source: ByteSource): AsyncGenerator<Uint8Array> {
  const whole = source instanceof Uint8Array ? [source] : source;
  for await (const piece of whole) {
    for (let start = 0; start < piece.length; start += CHUNK_BYTES) {
      yield piece.subarray(start, Math.min(piece.length, start + CHUNK_BYTES));
    }
  }
}

/**
 * A client-stream's requests: `first` (the header fields) carries the first chunk, every later message one chunk;
 * a source with no bytes still sends `first`.
 */
export async function* headedStream<Request extends object>(
  first: Request,
  source: ByteSource,
  chunk: (bytes: Uint8Array) => Request,
  field: keyof Request,
): AsyncGenerator<Request> {
  let sentFirst = false;
  for await (const bytes of chunksOf(source)) {
    if (!sentFirst) {
      sentFirst = true;
      yield { ...first, [field]: bytes } as Request;
    } else yield chunk(bytes);
  }
  if (!sentFirst) yield first;
}

/** The generated client of every memos service, each failure a MemosError: the whole API, one RPC a method. */
export class ServiceClients {
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
}
