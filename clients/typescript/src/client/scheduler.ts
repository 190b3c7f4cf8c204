/**
 * SchedulerService as async functions: Recall, the server's model, and transforms of cubes as long-running
 * operations (get, watch as an AsyncIterable, cancel).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";

import type {
  ModelInfo,
  Operation,
  RecallPlan,
  RecallRequestSchema,
  TransformCubeRequestSchema,
} from "../gen/memos/v1/scheduler_service_pb.js";
import { call, serverStream, type CallOptions } from "./base.js";
import { VaultCalls } from "./vault.js";

export class SchedulerCalls extends VaultCalls {
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

  /** The model the server transforms with (FAILED_PRECONDITION MODEL_NOT_CONFIGURED when it has none). */
  getModel(options?: CallOptions): Promise<ModelInfo> {
    return this.scheduler.getModel({}, call(options));
  }

  /**
   * Starts a transform and returns its operation at once: plaintext to activation and activation to plaintext in
   * place (one cube), plaintext cubes to a new parametric cube. Targets other than plaintext need the server's model.
   */
  transformCube(request: MessageInitShape<typeof TransformCubeRequestSchema>, options?: CallOptions): Promise<Operation> {
    return this.scheduler.transformCube(request, call(options));
  }

  getOperation(name: string, options?: CallOptions): Promise<Operation> {
    return this.scheduler.getOperation({ name }, call(options));
  }

  /** The operation now and at every change, ending when it is done; leaving the loop ends the watch, not the work. */
  async *watchOperation(name: string, options?: CallOptions): AsyncGenerator<Operation> {
    yield* serverStream((o) => this.scheduler.watchOperation({ name }, o), options);
  }

  /** Asks the operation to stop and returns its state (a done operation is returned as it is). */
  cancelOperation(name: string, options?: CallOptions): Promise<Operation> {
    return this.scheduler.cancelOperation({ name }, call(options));
  }

  /** Watches the operation until it is done and returns its last state. */
  async waitOperation(name: string, options?: CallOptions): Promise<Operation> {
    let last: Operation | undefined;
    for await (last of this.watchOperation(name, options)) if (last.done) return last;
    throw new Error(`the watch of ${name} ended before the operation was done`);
  }
}
