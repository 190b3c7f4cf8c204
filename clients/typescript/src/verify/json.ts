/**
 * A strict JSON reader (I-JSON, RFC 7493) for everything the protocol signs or carries.
 *
 * JSON.parse is not used on protocol data: it keeps the last of duplicate names, reads `1.0` as an integer, rounds
 * integers past 2^53 and lets lone surrogates through. This reader refuses a byte order mark, bytes that are not
 * UTF-8, duplicate member names, escapes that leave a lone surrogate, anything outside RFC 8259 (NaN, Infinity,
 * comments, trailing commas), and any number that is not an integer within +-(2^53 - 1) (no fraction, no exponent),
 * wherever it stands. Numbers keep their text: a consumer asks `integerIn` for an exact integer in its range.
 */

/** A JSON number as written; only `integerIn` turns it into a value. */
export class JsonNumber {
  constructor(readonly text: string) {}
}

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;
/** Members in document order; a Map so that no name (`__proto__`, `constructor`) is special. */
export type JsonObject = Map<string, JsonValue>;

/** What broke, as the Python reader names it: terms map each to their own reason (docs/marketplace.md, "Terms"). */
export type JsonProblem = "ENCODING" | "SYNTAX" | "DUPLICATE_MEMBER" | "NUMBER";

export class JsonError extends Error {
  constructor(
    message: string,
    readonly problem: JsonProblem = "SYNTAX",
  ) {
    super(message);
    this.name = "JsonError";
  }
}

/** Nesting deeper than this is refused rather than risking the stack. */
const MAX_DEPTH = 512;
/** I-JSON's integers: every number is one within +-(2^53 - 1), wherever it stands (unknown members included). */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MAX_SAFE_DIGITS = String(Number.MAX_SAFE_INTEGER).length;
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Parses UTF-8 bytes (or a string already decoded) as one JSON value; throws JsonError. */
export function parseJson(input: Uint8Array | string): JsonValue {
  let text: string;
  if (typeof input === "string") {
    text = input;
  } else {
    if (input.length >= 3 && input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf) {
      throw new JsonError("the JSON starts with a byte order mark", "ENCODING");
    }
    try {
      text = decoder.decode(input);
    } catch {
      throw new JsonError("the JSON is not valid UTF-8", "ENCODING");
    }
  }
  if (text.charCodeAt(0) === 0xfeff) throw new JsonError("the JSON starts with a byte order mark", "ENCODING");
  if (!text.isWellFormed()) throw new JsonError("the JSON holds a lone surrogate", "ENCODING");
  const parser = new Parser(text);
  parser.skipWhitespace();
  const value = parser.value(0);
  parser.skipWhitespace();
  if (parser.pos !== text.length) parser.fail("data after the JSON value");
  // Checked once the whole text parsed, as the reference does: any other problem is reported first.
  if (parser.loneSurrogate) throw new JsonError("a string holds an unpaired surrogate escape", "ENCODING");
  return value;
}

class Parser {
  pos = 0;
  loneSurrogate = false;
  constructor(private readonly text: string) {}

  fail(what: string, problem: JsonProblem = "SYNTAX"): never {
    throw new JsonError(`${what} at offset ${this.pos}`, problem);
  }

  skipWhitespace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      this.pos++;
    }
  }

  value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`);
    const c = this.text[this.pos];
    switch (c) {
      case "{":
        return this.object(depth);
      case "[":
        return this.array(depth);
      case '"':
        return this.string();
      case "t":
        return this.literal("true", true);
      case "f":
        return this.literal("false", false);
      case "n":
        return this.literal("null", null);
      default:
        // NaN and Infinity are numbers JSON cannot hold, not syntax (the reference reads them, then refuses them).
        if (this.text.startsWith("NaN", this.pos) || this.text.startsWith("Infinity", this.pos)) this.fail("NaN or Infinity", "NUMBER");
        if (this.text.startsWith("-Infinity", this.pos)) this.fail("-Infinity", "NUMBER");
        if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.number();
        return this.fail(c === undefined ? "the JSON ends early" : `unexpected character ${JSON.stringify(c)}`);
    }
  }

  private literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.fail("an unknown literal");
    this.pos += word.length;
    return value;
  }

  private object(depth: number): JsonObject {
    const result: JsonObject = new Map();
    this.pos++;
    this.skipWhitespace();
    if (this.text[this.pos] === "}") {
      this.pos++;
      return result;
    }
    // Reported when the object closes, as the reference does: a problem inside it, or a syntax error, comes first.
    let duplicate: string | null = null;
    for (;;) {
      if (this.text[this.pos] !== '"') this.fail("a member name was expected");
      const name = this.string();
      if (result.has(name)) duplicate ??= name;
      this.skipWhitespace();
      if (this.text[this.pos] !== ":") this.fail("':' was expected");
      this.pos++;
      this.skipWhitespace();
      result.set(name, this.value(depth + 1));
      this.skipWhitespace();
      const next = this.text[this.pos++];
      if (next === "}") {
        if (duplicate !== null) this.fail(`duplicate member name ${JSON.stringify(duplicate.slice(0, 80))}`, "DUPLICATE_MEMBER");
        return result;
      }
      if (next !== ",") this.fail("',' or '}' was expected");
      this.skipWhitespace();
    }
  }

  private array(depth: number): JsonValue[] {
    const result: JsonValue[] = [];
    this.pos++;
    this.skipWhitespace();
    if (this.text[this.pos] === "]") {
      this.pos++;
      return result;
    }
    for (;;) {
      this.skipWhitespace();
      result.push(this.value(depth + 1));
      this.skipWhitespace();
      const next = this.text[this.pos++];
      if (next === "]") return result;
      if (next !== ",") this.fail("',' or ']' was expected");
    }
  }

  private string(): string {
    const t = this.text;
    this.pos++;
    let out = "";
    let start = this.pos;
    for (;;) {
      if (this.pos >= t.length) this.fail("an unterminated string");
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) {
        out += t.slice(start, this.pos);
        this.pos++;
        break;
      }
      if (c < 0x20) this.fail("a control character in a string");
      if (c !== 0x5c) {
        this.pos++;
        continue;
      }
      out += t.slice(start, this.pos);
      const e = t[this.pos + 1];
      this.pos += 2;
      switch (e) {
        case '"':
          out += '"';
          break;
        case "\\":
          out += "\\";
          break;
        case "/":
          out += "/";
          break;
        case "b":
          out += "\b";
          break;
        case "f":
          out += "\f";
          break;
        case "n":
          out += "\n";
          break;
        case "r":
          out += "\r";
          break;
        case "t":
          out += "\t";
          break;
        case "u": {
          const hex = t.slice(this.pos, this.pos + 4);
          if (!/^[0-9A-Fa-f]{4}$/.test(hex)) this.fail("a bad \\u escape");
          out += String.fromCharCode(parseInt(hex, 16));
          this.pos += 4;
          break;
        }
        default:
          this.pos -= 2;
          this.fail("a bad escape");
      }
      start = this.pos;
    }
    // Escapes can make a lone surrogate (\ud800) that the raw text did not hold.
    if (!out.isWellFormed()) this.loneSurrogate = true;
    return out;
  }

  private number(): JsonNumber {
    const match = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    match.lastIndex = this.pos;
    const found = match.exec(this.text);
    if (found === null) this.fail("a malformed number");
    const text = found[0];
    if (/[.eE]/.test(text)) this.fail(`${text.slice(0, 40)} is not an integer: numbers carry no fraction or exponent`, "NUMBER");
    // Checked on the digits before BigInt(): a long literal is refused without converting it.
    const digits = text.replace(/^-/, "");
    if (digits.length > MAX_SAFE_DIGITS || BigInt(digits) > MAX_SAFE) {
      this.fail(`${text.slice(0, 40)} is outside +-(2^53 - 1), the integers every JSON reader holds`, "NUMBER");
    }
    this.pos += text.length;
    return new JsonNumber(text);
  }
}

/** True when `value` is a JSON integer written without fraction, exponent or minus sign, in [low, high]. */
export function integerIn(value: JsonValue | undefined, low: number, high: number): value is JsonNumber {
  if (!(value instanceof JsonNumber) || !/^(?:0|[1-9][0-9]*)$/.test(value.text)) return false;
  if (value.text.length > 20) return false;
  const n = BigInt(value.text);
  return n >= BigInt(low) && n <= BigInt(high);
}

/** The number of a value `integerIn` accepted (exact: it is at most 2^53 - 1). */
export function integerValue(value: JsonNumber): number {
  return Number(value.text);
}

export function isObject(value: JsonValue | undefined): value is JsonObject {
  return value instanceof Map;
}
