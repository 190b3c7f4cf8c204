/**
 * Failures of memos-grpc calls: every error a call raises, unary or streamed, is a MemosError carrying the gRPC
 * code and the ErrorInfo reason (and metadata) the server sent, so callers branch on stable reasons.
 */
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";

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

  /** `reason` is for failures the client finds itself (a download whose bytes do not match its digest). */
  constructor(error: ConnectError, reason?: string) {
    super(error.rawMessage || error.message, { cause: error });
    this.name = "MemosError";
    this.code = error.code;
    this.headers = error.metadata;
    const info = errorInfo(error);
    this.reason = reason ?? info?.reason ?? "";
    this.domain = info?.domain ?? "";
    this.metadata = info?.metadata ?? {};
  }

  /** The error `thrown` as a MemosError (aborts and transport failures included). */
  static from(thrown: unknown): MemosError {
    return thrown instanceof MemosError ? thrown : new MemosError(ConnectError.from(thrown));
  }

  /** A failure the client itself found, with the code and reason a server would give it. */
  static local(code: Code, reason: string, message: string): MemosError {
    return new MemosError(new ConnectError(message, code), reason);
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
export function withMemosErrors<T extends object>(client: T): T {
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
