/**
 * The memos-grpc client: connect-node's gRPC transport (HTTP/2) over TLS or mTLS with a bearer token, every
 * service's generated client (`client.vault`, `client.marketplace`, ...) for every RPC, and typed async functions
 * for every RPC of every service. Streams and paged lists are AsyncIterables; every call takes an AbortSignal;
 * every failure is a MemosError carrying the gRPC code and the ErrorInfo reason the server sent.
 *
 * The functions of each service are in src/client/: governance, vault, scheduler, interchange, marketplace, log
 * (transparency log and witness) and held (held licenses), each class extending the one before, so that
 * MemosClient, the last, has them all.
 */
import { ConflictPolicy } from "./gen/memos/v1/interchange_service_pb.js";
import { createTransport, type ClientOptions } from "./client/base.js";
import { HeldLicenseCalls } from "./client/held.js";

export { Code } from "@connectrpc/connect";
export { MemosError } from "./client/errors.js";
export {
  createTransport,
  pages,
  type ByteSource,
  type CallOptions,
  type ClientOptions,
  type PageOptions,
} from "./client/base.js";
export { principalName } from "./client/governance.js";
export type { NewCube, PayloadHeader } from "./client/vault.js";
export { releaseInfo, type ImportSettings, type ReleaseInfoInit } from "./client/interchange.js";
export {
  licenseName,
  listingName,
  ReleaseDownload,
  type LicenseRequest,
  type NewListing,
  type PublishSettings,
  type Subscription,
} from "./client/marketplace.js";
export { heldLicenseName } from "./client/held.js";

/** A memos-grpc server: the generated clients of every service, and an async function for every RPC. */
export class MemosClient extends HeldLicenseCalls {
  static connect(options: ClientOptions): MemosClient {
    return new MemosClient(createTransport(options));
  }
  // HTTP/2 sessions close when idle: there is nothing to close.
}

export { ConflictPolicy };
