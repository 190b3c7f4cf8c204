/**
 * TransparencyLogService and WitnessService as async functions: a marketplace log's checkpoints, proofs and
 * entries (verify them offline with the package's verifier), and asking a witness to cosign a checkpoint.
 */
import type {
  Checkpoint,
  ConsistencyProof,
  GetEntriesResponse,
  InclusionProof,
  LogEntry,
} from "../gen/memos/v1/transparency_log_service_pb.js";
import type { AddCheckpointResponse } from "../gen/memos/v1/witness_service_pb.js";
import { call, type CallOptions } from "./base.js";
import { MarketplaceCalls } from "./marketplace.js";

export class TransparencyLogCalls extends MarketplaceCalls {
  /** The latest published checkpoint: its signed note (what to verify) and a parsed copy. */
  getCheckpoint(options?: CallOptions): Promise<Checkpoint> {
    return this.transparencyLog.getCheckpoint({}, call(options));
  }

  /** The inclusion path of entry `index` in `treeSize` (0: the latest published size, with its tlog-proof text). */
  getInclusionProof(index: bigint | number, treeSize: bigint | number = 0, options?: CallOptions): Promise<InclusionProof> {
    return this.transparencyLog.getInclusionProof({ index: BigInt(index), treeSize: BigInt(treeSize) }, call(options));
  }

  /** The consistency proof from `oldSize` to `newSize` (0: the latest published size, with its checkpoint). */
  getConsistencyProof(oldSize: bigint | number, newSize: bigint | number = 0, options?: CallOptions): Promise<ConsistencyProof> {
    return this.transparencyLog.getConsistencyProof({ oldSize: BigInt(oldSize), newSize: BigInt(newSize) }, call(options));
  }

  /** Up to `maxEntries` (0: the server's default) consecutive entries from `startIndex`, and the published size. */
  getEntries(startIndex: bigint | number, maxEntries = 0, options?: CallOptions): Promise<GetEntriesResponse> {
    return this.transparencyLog.getEntries({ startIndex: BigInt(startIndex), maxEntries }, call(options));
  }

  /** Every entry from `startIndex` to the tree size published when the first page was read. */
  async *logEntries(startIndex: bigint | number = 0, pageSize = 0, options?: CallOptions): AsyncGenerator<LogEntry> {
    let index = BigInt(startIndex);
    let end: bigint | undefined;
    while (end === undefined || index < end) {
      const page = await this.getEntries(index, pageSize, options);
      end ??= page.treeSize;
      const wanted = page.entries.filter((entry) => entry.index < (end as bigint));
      if (wanted.length === 0) return;
      yield* wanted;
      index = (wanted.at(-1) as LogEntry).index + 1n;
    }
  }

  /**
   * Asks this node, as a witness, to cosign `checkpoint` (a signed note), consistent with the last checkpoint it
   * cosigned for the log (`oldSize`, 0 the first time). A conflict is ABORTED WITNESS_SIZE_CONFLICT whose
   * `metadata.latest_size` is the size to prove from.
   */
  addCheckpoint(
    checkpoint: string,
    consistency: { oldSize?: bigint | number; proof?: Uint8Array[] } = {},
    options?: CallOptions,
  ): Promise<AddCheckpointResponse> {
    return this.witness.addCheckpoint(
      { checkpoint, oldSize: BigInt(consistency.oldSize ?? 0), consistencyProof: consistency.proof ?? [] },
      call(options),
    );
  }
}
