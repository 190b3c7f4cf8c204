/**
 * C2SP tlog-checkpoint v1.0.0 (docs/marketplace.md, "Checkpoints"): the note text a log signs for one tree head,
 * `<origin>\n<size>\n<base64 root>\n` and optional extension lines. `parseCheckpoint` reads it under one strict
 * grammar and `checkpointBody` writes it back; the reasons and their order are the Python implementation's
 * (memos_grpc/transparency/checkpoint.py).
 */
import { decodePaddedBase64 } from "./base64.js";
import { VerifyError } from "./errors.js";
import { UNICODE_SPACE } from "./policy.js";

export const ROOT_HASH_BYTES = 32;
/** The largest tree size a checkpoint may state; sizes are bigints, past what a double holds. */
export const MAX_TREE_SIZE = (1n << 63n) - 1n;
const MAX_ORIGIN_BYTES = 255;
const MAX_EXTENSIONS = 16;
const MAX_EXTENSION_BYTES = 1024;
const DECIMAL = /^(?:0|[1-9][0-9]{0,18})$/;
const CONTROL = /[\x00-\x1f]/;
const EDGE_SPACE = new RegExp(`^${UNICODE_SPACE.source}|${UNICODE_SPACE.source}$`);

export interface Checkpoint {
  readonly origin: string;
  readonly size: bigint;
  readonly root: Uint8Array;
  readonly extensions: readonly string[];
}

function error(reason: string, message: string): VerifyError {
  return new VerifyError(reason, message);
}

/** The checkpoint in a note's text (final newline included); throws VerifyError (CHECKPOINT_*). */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.isWellFormed()) throw error("CHECKPOINT_MALFORMED", "the checkpoint is not valid UTF-8 (a lone surrogate)");
  if (text.startsWith("\ufeff")) throw error("CHECKPOINT_MALFORMED", "the checkpoint starts with a byte order mark");
  if (!text.endsWith("\n")) throw error("CHECKPOINT_MALFORMED", "the checkpoint does not end with a newline");
  if (/[\x00-\x09\x0b-\x1f]/.test(text)) throw error("CHECKPOINT_MALFORMED", "the checkpoint holds a control character");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw error("CHECKPOINT_MALFORMED", "a checkpoint has an origin, a tree size and a root hash line");
  if (lines.length - 3 > MAX_EXTENSIONS) throw error("CHECKPOINT_EXTENSION_INVALID", `at most ${MAX_EXTENSIONS} extension lines`);
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (!DECIMAL.test(sizeText) || BigInt(sizeText) > MAX_TREE_SIZE) {
    throw error(
      "CHECKPOINT_SIZE_INVALID",
      `tree size ${JSON.stringify(sizeText.slice(0, 40))} is not a decimal 0..${MAX_TREE_SIZE} without leading zeros`,
    );
  }
  const root = decodePaddedBase64(rootText);
  if (root === null || root.length !== ROOT_HASH_BYTES) {
    throw error("CHECKPOINT_ROOT_INVALID", `root hash is not ${ROOT_HASH_BYTES} bytes of padded standard base64`);
  }
  if (origin === "" || EDGE_SPACE.test(origin) || CONTROL.test(origin) || Buffer.byteLength(origin, "utf8") > MAX_ORIGIN_BYTES) {
    throw error(
      "CHECKPOINT_ORIGIN_INVALID",
      `origin must be 1..${MAX_ORIGIN_BYTES} bytes without control characters or leading or trailing space`,
    );
  }
  for (const extension of extensions) {
    if (extension === "" || CONTROL.test(extension) || Buffer.byteLength(extension, "utf8") > MAX_EXTENSION_BYTES) {
      throw error("CHECKPOINT_EXTENSION_INVALID", `extension lines must be 1..${MAX_EXTENSION_BYTES} bytes without control characters`);
    }
  }
  return { origin, size: BigInt(sizeText), root, extensions };
}

/** The checkpoint's note text, final newline included: what parseCheckpoint reads back. */
export function checkpointBody(checkpoint: Checkpoint): string {
  const lines = [checkpoint.origin, String(checkpoint.size), Buffer.from(checkpoint.root).toString("base64"), ...checkpoint.extensions];
  return lines.map((line) => line + "\n").join("");
}
