/** memos-grpc for TypeScript: the client (`MemosClient`) and the offline verifier (also at `./verify`). */
export { MemosClient, MemosError, createTransport, Code, ConflictPolicy, type ClientOptions, type CallOptions, type NewCube } from "./client.js";
export * as verify from "./verify/index.js";
export * from "./gen/memos/v1/cube_pb.js";
