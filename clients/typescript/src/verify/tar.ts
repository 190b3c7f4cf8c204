/**
 * A strict streaming ustar reader for bundle archives, written for the protocol (general tar readers accept links,
 * devices, PAX and GNU headers, duplicates, non-zero padding and data after the end marker; the protocol refuses
 * each with a reason).
 *
 * It pulls the input chunk by chunk and never holds more than one header block and one input chunk. The checks per
 * header run in the protocol's order: checksum, magic and numeric fields, UTF-8 name, entry count, type, path,
 * duplicate, entry size, total size.
 */
import { VerifyError } from "./errors.js";

export const BLOCK_SIZE = 512;
const EMPTY = new Uint8Array(0);
const MAGIC = "ustar\0";
const VERSION = "00";
// [field, start, end] of the numeric header fields that must be well formed.
const NUMERIC_FIELDS: ReadonlyArray<readonly [string, number, number]> = [
  ["mode", 100, 108],
  ["uid", 108, 116],
  ["gid", 116, 124],
  ["size", 124, 136],
  ["mtime", 136, 148],
  ["devmajor", 329, 337],
  ["devminor", 337, 345],
];
const KINDS: Record<string, string> = {
  "1": "hard link",
  "2": "symlink",
  "3": "character device",
  "4": "block device",
  "5": "directory",
  "6": "FIFO",
  "7": "contiguous file",
  x: "pax extended header",
  g: "pax global header",
  L: "GNU long name",
  K: "GNU long link name",
  S: "GNU sparse file",
  V: "GNU volume label",
  M: "GNU multi-volume continuation",
  D: "GNU dump directory",
};
const nameDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export interface TarLimits {
  readonly maxEntryBytes: number;
  readonly maxBundleBytes: number;
  readonly maxEntries: number;
}

export type Chunks = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** The input, one chunk at a time, handed out as subarrays. */
class Source {
  private readonly iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array>;
  private buffer: Uint8Array = EMPTY;
  private pos = 0;
  consumed = 0;

  constructor(chunks: Chunks) {
    this.iterator =
      Symbol.asyncIterator in chunks
        ? (chunks as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
        : (chunks as Iterable<Uint8Array>)[Symbol.iterator]();
  }

  /** Up to `limit` bytes of the current chunk; empty only at the end of the stream. */
  async take(limit: number): Promise<Uint8Array> {
    if (this.pos >= this.buffer.length) {
      this.buffer = await this.nextChunk();
      this.pos = 0;
    }
    const start = this.pos;
    const end = Math.min(start + limit, this.buffer.length);
    this.pos = end;
    this.consumed += end - start;
    return this.buffer.subarray(start, end);
  }

  /** Exactly `size` bytes, or fewer only if the stream ends first. */
  async read(size: number): Promise<Uint8Array> {
    const first = await this.take(size);
    if (first.length === size) return first;
    const gathered = new Uint8Array(size);
    gathered.set(first);
    let filled = first.length;
    while (filled < size) {
      const piece = await this.take(size - filled);
      if (piece.length === 0) break;
      gathered.set(piece, filled);
      filled += piece.length;
    }
    return gathered.subarray(0, filled);
  }

  private async nextChunk(): Promise<Uint8Array> {
    for (;;) {
      const next = await this.iterator.next();
      if (next.done) return EMPTY;
      if (next.value.length > 0) return next.value;
    }
  }
}

function isZero(data: Uint8Array): boolean {
  for (const b of data) if (b !== 0) return false;
  return true;
}

function latin1(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.length).toString("latin1");
}

function untilNul(data: Uint8Array): Uint8Array {
  const end = data.indexOf(0);
  return end < 0 ? data : data.subarray(0, end);
}

/** A numeric field: NUL/space-terminated octal, or GNU base-256; null if it is neither. */
function numberField(field: Uint8Array, base256: boolean): bigint | null {
  if (base256 && field[0] === 0x80) {
    let value = 0n;
    for (const b of field.subarray(1)) value = (value << 8n) | BigInt(b);
    return value;
  }
  const digits = latin1(untilNul(field)).replace(/^ +| +$/g, "");
  if (!/^[0-7]*$/.test(digits)) return null;
  return digits === "" ? 0n : BigInt("0o" + digits);
}

/** Why `name` is not a safe relative path, or null if it is. */
export function pathProblem(name: string): string | null {
  if (name === "") return "is empty";
  if (name.startsWith("/")) return "is an absolute path";
  // C0, DEL and C1 (U+0080-U+009F): a terminal acts on C1 as on C0 (U+009B is CSI), so names carry none of them.
  if (/[\x00-\x1f\x7f-\x9f]/.test(name)) return "contains a control character";
  if (name.includes("\\")) return "contains a backslash";
  for (const part of name.split("/")) {
    if (part === "") return "has an empty path component (leading, trailing or //)";
    if (part === "." || part === "..") return `has a '${part}' path component`;
  }
  return null;
}

export interface TarEntry {
  readonly name: string;
  readonly size: number;
}

/** Reads a ustar stream strictly, entry by entry. */
export class TarReader {
  private readonly source: Source;
  private readonly names = new Set<string>();
  private dataLeft = 0;
  private padLeft = 0;
  private current: TarEntry | null = null;

  constructor(
    chunks: Chunks,
    private readonly limits: TarLimits,
  ) {
    this.source = new Source(chunks);
  }

  get bytesRead(): number {
    return this.source.consumed;
  }

  /** The next entry, or null after the end-of-archive marker (once the rest is checked to be zeros). */
  async next(): Promise<TarEntry | null> {
    await this.skipEntry();
    const header = await this.source.read(BLOCK_SIZE);
    if (header.length < BLOCK_SIZE) {
      throw this.truncated(header.length > 0 ? "inside an entry header" : "before the end-of-archive marker");
    }
    if (isZero(header)) {
      await this.finishArchive();
      return null;
    }
    const entry = this.parse(header);
    this.current = entry;
    this.dataLeft = entry.size;
    this.padLeft = (BLOCK_SIZE - (entry.size % BLOCK_SIZE)) % BLOCK_SIZE;
    return entry;
  }

  /** The current entry's data, streamed (each piece is a view valid until the next read). */
  async *data(): AsyncGenerator<Uint8Array> {
    const entry = this.current;
    if (entry === null) return;
    while (this.dataLeft > 0) {
      const piece = await this.source.take(this.dataLeft);
      if (piece.length === 0) {
        throw this.truncated(`inside the data of entry ${JSON.stringify(entry.name)}`);
      }
      this.dataLeft -= piece.length;
      yield piece;
    }
    await this.finishEntry(entry);
  }

  /** The current entry whole; BUNDLE_ENTRY_TOO_LARGE if it is over `limit`. */
  async readAll(limit: number): Promise<Uint8Array> {
    const entry = this.current;
    if (entry === null) return EMPTY;
    if (entry.size > limit) {
      throw new VerifyError(
        "BUNDLE_ENTRY_TOO_LARGE",
        `bundle entry ${JSON.stringify(entry.name)} is ${entry.size} bytes, over the limit of ${limit} for this kind of entry`,
      );
    }
    const out = new Uint8Array(entry.size);
    let filled = 0;
    for await (const piece of this.data()) {
      out.set(piece, filled);
      filled += piece.length;
    }
    return out;
  }

  private async skipEntry(): Promise<void> {
    if (this.current !== null) for await (const _ of this.data()) void _;
  }

  private async finishEntry(entry: TarEntry): Promise<void> {
    this.current = null;
    if (this.padLeft === 0) return;
    const padding = await this.source.read(this.padLeft);
    if (padding.length < this.padLeft) throw this.truncated(`inside the padding after entry ${JSON.stringify(entry.name)}`);
    // Padding is outside the signed data: it must be zero, or one bundle could have many byte-different archives.
    if (!isZero(padding)) {
      throw new VerifyError("BUNDLE_MALFORMED", `the padding after bundle entry ${JSON.stringify(entry.name)} is not zero`);
    }
    this.padLeft = 0;
  }

  private async finishArchive(): Promise<void> {
    const second = await this.source.read(BLOCK_SIZE);
    if (second.length < BLOCK_SIZE) throw this.truncated("inside the end-of-archive marker (two zero blocks)");
    if (!isZero(second)) {
      throw new VerifyError(
        "BUNDLE_MALFORMED",
        "a zero block is not followed by a second one; an archive ends with two zero blocks and nothing but zeros",
      );
    }
    // Trailing zeros (tar's record padding) are allowed; they count, so an endless stream cannot stall the reader.
    // The first byte that is wrong decides, as if read one at a time: a non-zero byte within the limit is
    // BUNDLE_MALFORMED, a byte past it BUNDLE_TOO_LARGE. So the verdict never depends on the chunk sizes.
    const limit = this.limits.maxBundleBytes;
    for (;;) {
      const start = this.bytesRead;
      const piece = await this.source.take(Number.MAX_SAFE_INTEGER);
      if (piece.length === 0) return;
      const within = piece.subarray(0, Math.max(0, limit - start));
      const nonZero = within.findIndex((b) => b !== 0);
      if (nonZero >= 0) {
        throw new VerifyError(
          "BUNDLE_MALFORMED",
          `the bundle has non-zero data after its end-of-archive marker (at byte ${start + nonZero})`,
        );
      }
      if (this.bytesRead > limit) {
        throw new VerifyError("BUNDLE_TOO_LARGE", `the bundle continues past the limit of ${limit} bytes after its end-of-archive marker`);
      }
    }
  }

  private parse(header: Uint8Array): TarEntry {
    const prefix = untilNul(header.subarray(345, 500));
    const base = untilNul(header.subarray(0, 100));
    const rawName = prefix.length > 0 ? Buffer.concat([prefix, Buffer.from("/"), base]) : base;
    const shown = JSON.stringify(latin1(rawName).slice(0, 120));
    const stored = numberField(header.subarray(148, 156), false);
    let sum = 8 * 0x20;
    for (let i = 0; i < BLOCK_SIZE; i++) if (i < 148 || i >= 156) sum += header[i] as number;
    if (stored !== BigInt(sum)) throw new VerifyError("BUNDLE_MALFORMED", `bundle entry ${shown} has a bad header checksum`);
    if (latin1(header.subarray(257, 263)) !== MAGIC || latin1(header.subarray(263, 265)) !== VERSION) {
      throw new VerifyError("BUNDLE_MALFORMED", `bundle entry ${shown} is not a POSIX ustar header`);
    }
    for (const [field, start, end] of NUMERIC_FIELDS) {
      const value = header.subarray(start, end);
      if (value[0] !== 0x80 && !/^ *[0-7]*[ \x00]*$/.test(latin1(value))) {
        throw new VerifyError("BUNDLE_MALFORMED", `bundle entry ${shown} has a malformed ${field} field`);
      }
    }
    const bigSize = numberField(header.subarray(124, 136), true) ?? 0n;
    let name: string;
    try {
      name = nameDecoder.decode(rawName);
    } catch {
      throw new VerifyError("BUNDLE_MALFORMED", `bundle entry ${shown} has a name that is not UTF-8`);
    }
    const shownName = JSON.stringify(name.slice(0, 120));
    const limits = this.limits;
    if (this.names.size >= limits.maxEntries) {
      throw new VerifyError("BUNDLE_TOO_MANY_ENTRIES", `bundle entry ${shownName} is past the limit of ${limits.maxEntries} entries`);
    }
    const flag = header[156] as number;
    if (flag !== 0x30 && flag !== 0) {
      const kind = KINDS[String.fromCharCode(flag)] ?? `entry of type ${flag}`;
      throw new VerifyError("BUNDLE_UNSAFE_ENTRY", `bundle entry ${shownName} is a ${kind}; bundles hold only regular files`);
    }
    const problem = pathProblem(name);
    if (problem !== null) throw new VerifyError("BUNDLE_UNSAFE_PATH", `bundle entry name ${shownName} ${problem}`);
    if (this.names.has(name)) throw new VerifyError("BUNDLE_DUPLICATE_ENTRY", `bundle entry ${shownName} appears more than once`);
    this.names.add(name);
    if (bigSize > BigInt(limits.maxEntryBytes)) {
      throw new VerifyError(
        "BUNDLE_ENTRY_TOO_LARGE",
        `bundle entry ${shownName} claims ${bigSize} bytes, over the limit of ${limits.maxEntryBytes}`,
      );
    }
    const size = Number(bigSize);
    // Counted with the end-of-archive marker every bundle still needs, so a bundle that fits is accepted whole.
    const total = this.bytesRead + size + ((BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE) + 2 * BLOCK_SIZE;
    if (total > limits.maxBundleBytes) {
      throw new VerifyError(
        "BUNDLE_TOO_LARGE",
        `bundle entry ${shownName} (${size} bytes) takes the bundle to at least ${total} bytes, over the limit of ${limits.maxBundleBytes}`,
      );
    }
    return { name, size };
  }

  private truncated(where: string): VerifyError {
    return new VerifyError(
      "BUNDLE_TRUNCATED",
      `the bundle ends after ${this.bytesRead} bytes, ${where}; the upload or file was cut short`,
    );
  }
}
