/** memos-grpc for TypeScript: the client (`MemosClient`) and the offline verifier (also at `./verify`). */
export {
  MemosClient,
  MemosError,
  createTransport,
  Code,
  ConflictPolicy,
  ReleaseDownload,
  releaseInfo,
  listingName,
  licenseName,
  heldLicenseName,
  principalName,
  pages,
  type ByteSource,
  type ClientOptions,
  type CallOptions,
  type PageOptions,
  type NewCube,
  type PayloadHeader,
  type ImportSettings,
  type ReleaseInfoInit,
  type LicenseRequest,
  type NewListing,
  type PublishSettings,
  type Subscription,
} from "./client.js";
export * as verify from "./verify/index.js";
export * from "./gen/memos/v1/cube_pb.js";
