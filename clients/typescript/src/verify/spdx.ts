/**
 * SPDX license expressions as the reference reads a terms' `license` (docs/marketplace.md, "Terms"): the Python
 * package license-expression's SPDX licensing, parsed strictly, every id known (or `LicenseRef-<idstring>`), and
 * the text equal to the library's canonical rendering. The ids and aliases are spdx-data.ts, generated from that
 * library; the rules below are the library's as far as they decide a verdict:
 *
 * - tokens are split at whitespace and parentheses; `AND`, `OR` and `WITH` are operators in any case;
 * - a run of words between operators is one symbol: an id or alias (case-insensitive; the aliases `GPL 2.0` and
 *   `GPL 2.0+` span two words) or one unknown symbol made of all its words; a known symbol next to another word
 *   is two symbols in a row, an error;
 * - AND binds tighter than OR; WITH joins a license symbol to an exception symbol (strict: neither used as the
 *   other) and binds tightest;
 * - rendering writes each known symbol as its id, single spaces, upper-case operators, and parentheses around an
 *   AND or OR that is an operand of another AND or OR (so `(A OR B) OR C` keeps its parentheses, `(A)` loses them).
 */
import { VerifyError } from "./errors.js";
import { ALIASES, EXCEPTION_IDS, LICENSE_IDS } from "./spdx-data.js";

const MAX_LICENSE_CHARS = 512;
/** SPDX user-defined license references (SPDX 2.3 annex D idstring); DocumentRef- prefixes are not accepted. */
const LICENSE_REF = /^LicenseRef-[A-Za-z0-9.-]{1,200}$/;
/** The characters the library allows in a license key it does not know. */
const VALID_KEY = /^[-:A-Za-z0-9_.+ ]+$/;

interface Known {
  readonly id: string;
  readonly exception: boolean;
}

const KNOWN = new Map<string, Known>();
for (const id of LICENSE_IDS) KNOWN.set(id.toLowerCase(), { id, exception: false });
for (const id of EXCEPTION_IDS) KNOWN.set(id.toLowerCase(), { id, exception: true });
for (const [alias, id] of Object.entries(ALIASES)) {
  const target = KNOWN.get(id.toLowerCase());
  if (target !== undefined) KNOWN.set(alias.toLowerCase(), target);
}

type Node =
  | { kind: "symbol"; key: string; known: Known | null }
  | { kind: "with"; license: Node & { kind: "symbol" }; exception: Node & { kind: "symbol" } }
  | { kind: "AND" | "OR"; args: Node[] };

function invalid(message: string): VerifyError {
  return new VerifyError("TERMS_LICENSE_INVALID", message);
}

type Token = { kind: "(" | ")" | "AND" | "OR" | "WITH" } | { kind: "symbol"; key: string; known: Known | null };

function tokenize(text: string): Token[] {
  const raw = text.split(/(\(|\)|\s+)/).filter((piece) => piece !== "" && !/^\s+$/.test(piece));
  const tokens: Token[] = [];
  let words: string[] = [];
  const flush = (): void => {
    // A run of words: known symbols (two-word aliases first), unknown words merged into one symbol between them.
    const items: Token[] = [];
    let unknown: string[] = [];
    for (let i = 0; i < words.length; i++) {
      const pair = i + 1 < words.length ? KNOWN.get(`${words[i]} ${words[i + 1]}`.toLowerCase()) : undefined;
      const single = KNOWN.get(words[i]!.toLowerCase());
      const known = pair ?? single;
      if (known === undefined) {
        unknown.push(words[i]!);
        continue;
      }
      if (unknown.length > 0) items.push({ kind: "symbol", key: unknown.join(" "), known: null });
      unknown = [];
      items.push({ kind: "symbol", key: known.id, known });
      if (pair !== undefined) i++;
    }
    if (unknown.length > 0) items.push({ kind: "symbol", key: unknown.join(" "), known: null });
    if (items.length > 1) throw invalid("two license symbols in a row, with no operator between them");
    for (const item of items) {
      if (item.kind === "symbol" && item.known === null && !VALID_KEY.test(item.key)) {
        throw invalid(`${JSON.stringify(item.key.slice(0, 80))} holds a character a license key cannot hold`);
      }
    }
    tokens.push(...items);
    words = [];
  };
  for (const piece of raw) {
    const upper = piece.toUpperCase();
    if (piece === "(" || piece === ")" || upper === "AND" || upper === "OR" || upper === "WITH") {
      flush();
      tokens.push({ kind: piece === "(" || piece === ")" ? piece : (upper as "AND" | "OR" | "WITH") });
    } else {
      words.push(piece);
    }
  }
  flush();
  return tokens;
}

class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[]) {}

  parse(): Node {
    const node = this.expression();
    if (this.pos !== this.tokens.length) throw invalid("unbalanced parentheses or a stray token");
    return node;
  }

  private peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  private expression(): Node {
    return this.chain("OR", () => this.chain("AND", () => this.factor()));
  }

  private chain(operator: "AND" | "OR", operand: () => Node): Node {
    const args = [operand()];
    while (this.peek()?.kind === operator) {
      this.pos++;
      args.push(operand());
    }
    return args.length === 1 ? args[0]! : { kind: operator, args };
  }

  private factor(): Node {
    const token = this.tokens[this.pos++];
    if (token === undefined) throw invalid("the expression ends where a license was expected");
    if (token.kind === "(") {
      const inner = this.expression();
      if (this.tokens[this.pos++]?.kind !== ")") throw invalid("a parenthesis is not closed");
      return inner;
    }
    if (token.kind !== "symbol") throw invalid(`${token.kind} where a license was expected`);
    if (this.peek()?.kind !== "WITH") {
      if (token.known?.exception) throw invalid(`${token.key} is an exception, used only after WITH`);
      return token;
    }
    this.pos++;
    const exception = this.tokens[this.pos++];
    if (exception === undefined || exception.kind !== "symbol") throw invalid("WITH is not followed by an exception");
    if (token.known?.exception) throw invalid(`${token.key} is an exception, used only after WITH`);
    if (!exception.known?.exception) throw invalid(`${exception.key} is not an exception`);
    return { kind: "with", license: token, exception };
  }
}

function symbols(node: Node): (Node & { kind: "symbol" })[] {
  if (node.kind === "symbol") return [node];
  if (node.kind === "with") return [node.license, node.exception];
  return node.args.flatMap(symbols);
}

function render(node: Node, nested: boolean): string {
  if (node.kind === "symbol") return node.key;
  if (node.kind === "with") return `${node.license.key} WITH ${node.exception.key}`;
  const text = node.args.map((arg) => render(arg, true)).join(` ${node.kind} `);
  return nested ? `(${text})` : text;
}

/** `text` if it is an SPDX license expression of known ids in canonical form; throws VerifyError. */
export function checkLicenseExpression(text: unknown): string {
  if (typeof text !== "string" || text.length < 1 || text.length > MAX_LICENSE_CHARS || !/^[\x00-\x7f]*$/.test(text)) {
    throw invalid(`license must be an SPDX license expression of 1 to ${MAX_LICENSE_CHARS} ASCII characters`);
  }
  const tokens = tokenize(text);
  if (tokens.length === 0) throw invalid("license is empty");
  const tree = new Parser(tokens).parse();
  for (const symbol of symbols(tree)) {
    if (symbol.known === null && !LICENSE_REF.test(symbol.key)) {
      throw new VerifyError(
        "TERMS_LICENSE_UNKNOWN",
        `${JSON.stringify(symbol.key.slice(0, 80))} is not an SPDX license id; write a custom license as LicenseRef-<id>`,
      );
    }
  }
  const rendered = render(tree, false);
  if (rendered !== text) throw invalid(`license must be written in canonical SPDX form: ${JSON.stringify(rendered)}`);
  return text;
}
