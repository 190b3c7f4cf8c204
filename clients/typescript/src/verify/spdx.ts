/**
 * SPDX license expressions as the reference reads a terms' `license`: docs/marketplace.md says a license is
 * "parsed with license-expression" (its SPDX licensing, strict), so this is that library's pipeline step by step,
 * quirks included, because its verdicts on malformed text are the protocol's (clients/go/verify/license.go is the
 * same port):
 *
 * 1. the text is cut into words, runs of whitespace and parentheses, lower-cased;
 * 2. an Aho-Corasick automaton over words finds the known phrases (operators, parentheses, SPDX ids and aliases,
 *    an alias spanning words: `GPL 2.0`), whitespace runs skipped between a phrase's words; a match's start is
 *    counted back from its end by the phrase's own length, so it is off when the text spaces it otherwise;
 * 3. overlapping matches are filtered (the longest, then the leftmost, wins), and each run of unmatched words
 *    becomes one unknown symbol, its words joined by single spaces (an error if it holds a character a license key
 *    cannot);
 * 4. `<license> WITH <exception>` triples become one symbol (strict: an exception only after WITH, a license only
 *    before it), and a WITH anywhere else is an error;
 * 5. boolean.py's stack parser builds the tree: AND binds tighter than OR, a parenthesis keeps only the first
 *    expression inside it, two symbols or two operators in a row are errors;
 * 6. every symbol must be known (or `LicenseRef-<idstring>`): TERMS_LICENSE_UNKNOWN; then the text must equal the
 *    tree's rendering: TERMS_LICENSE_INVALID. An error in steps 1 to 5 is TERMS_LICENSE_INVALID.
 *
 * The ids and aliases are spdx-data.ts, generated from that library.
 */
import { VerifyError } from "./errors.js";
import { ALIASES, EXCEPTION_IDS, LICENSE_IDS } from "./spdx-data.js";

const MAX_LICENSE_CHARS = 512;
/** SPDX user-defined license references (SPDX 2.3 annex D idstring); DocumentRef- prefixes are not accepted. */
const LICENSE_REF = /^LicenseRef-[A-Za-z0-9.-]{1,200}$/;
/** The reference's check of a key it does not know: letters, digits, _ - : . + and (Python's) whitespace. */
const LICENSE_KEY = /^[-:A-Za-z0-9_.+ \t\n\v\f\r\x1c-\x1f]+$/;
/** Python's \s in ASCII text, which the reference's tokenizer splits on: it includes 0x1c-0x1f. */
const WHITESPACE = /^[ \t\n\v\f\r\x1c-\x1f]$/;
const PIECES = /[ \t\n\v\f\r\x1c-\x1f]+|[()]|[^ \t\n\v\f\r\x1c-\x1f()]+/g;

type Kind = "symbol" | "unmatched" | "AND" | "OR" | "WITH" | "(" | ")";

/** A symbol, a license WITH an exception, or an AND or OR of two or more nodes. */
type Node =
  | { kind: "symbol"; key: string; known: boolean; exception: boolean }
  | { kind: "with"; license: SymbolNode; exception: SymbolNode }
  | { kind: "AND" | "OR"; args: Node[] };
type SymbolNode = Node & { kind: "symbol" };

interface Token {
  start: number; // inclusive, in the text
  end: number;
  text: string;
  kind: Kind;
  symbol?: Node;
}

interface Phrase {
  readonly length: number;
  readonly kind: Kind;
  readonly symbol?: SymbolNode;
}

interface TrieNode {
  readonly children: Map<string, TrieNode>;
  fail: TrieNode | null;
  output: Phrase | null;
}

function invalid(message: string): VerifyError {
  return new VerifyError("TERMS_LICENSE_INVALID", message);
}

function isWhitespace(piece: string): boolean {
  return WHITESPACE.test(piece[0] ?? "");
}

/** Lower-cased text cut into words, whitespace runs and single parentheses. */
function pieces(text: string): string[] {
  return (text.toLowerCase().match(PIECES) ?? []) as string[];
}

function words(phrase: string): string[] {
  return pieces(phrase).filter((piece) => !isWhitespace(piece));
}

/** The automaton over the operators, parentheses and spdx-data.ts, built once. */
const AUTOMATON: TrieNode = (() => {
  const root: TrieNode = { children: new Map(), fail: null, output: null };
  const known = new Set<string>();
  const add = (phrase: string, output: Phrase): void => {
    let node = root;
    for (const word of words(phrase)) {
      known.add(word);
      let child = node.children.get(word);
      if (child === undefined) {
        child = { children: new Map(), fail: null, output: null };
        node.children.set(word, child);
      }
      node = child;
    }
    node.output = output;
  };
  for (const [phrase, kind] of [["and", "AND"], ["or", "OR"], ["with", "WITH"], ["(", "("], [")", ")"]] as const) {
    add(phrase, { length: phrase.length, kind });
  }
  const symbols = new Map<string, SymbolNode>();
  for (const id of LICENSE_IDS) symbols.set(id, { kind: "symbol", key: id, known: true, exception: false });
  for (const id of EXCEPTION_IDS) symbols.set(id, { kind: "symbol", key: id, known: true, exception: true });
  const names: [string, SymbolNode][] = [...symbols.entries()];
  for (const [alias, id] of Object.entries(ALIASES)) {
    const symbol = symbols.get(id);
    if (symbol !== undefined) names.push([alias, symbol]);
  }
  for (const [name, symbol] of names) {
    add(name, { length: name.trim().split(/\s+/).join(" ").length, kind: "symbol", symbol });
  }
  // Failure links, breadth first; a word no phrase starts with leads the root back to itself.
  const queue: TrieNode[] = [];
  for (const word of known) {
    const child = root.children.get(word);
    if (child !== undefined) {
      child.fail = root;
      queue.push(child);
    } else {
      root.children.set(word, root);
    }
  }
  for (let at = 0; at < queue.length; at++) {
    const current = queue[at]!;
    for (const [word, node] of current.children) {
      queue.push(node);
      let state = current.fail!;
      while (!state.children.has(word)) state = state.fail!;
      node.fail = state.children.get(word)!;
    }
  }
  return root;
})();

/** text.slice(from, to) as Python slices it (a negative start counts from the end). */
function pythonSlice(text: string, from: number, to: number): string {
  const start = from < 0 ? Math.max(text.length + from, 0) : from;
  return start >= to ? "" : text.slice(start, to);
}

/** The automaton's pass over the text (step 2): known phrases and unmatched words, by end. */
function matches(text: string): Token[] {
  const root = AUTOMATON;
  let state = root;
  const tokens: Token[] = [];
  let end = -1;
  for (const piece of pieces(text)) {
    end += piece.length;
    if (isWhitespace(piece)) continue;
    const start = end - piece.length + 1;
    if (!root.children.has(piece)) {
      state = root;
      tokens.push({ start, end, text: text.slice(start, end + 1), kind: "unmatched" });
      continue;
    }
    while (!state.children.has(piece)) state = state.fail!;
    state = state.children.get(piece)!;
    let yielded = false;
    for (let match: TrieNode | null = state; match !== null; match = match.fail) {
      if (match.output !== null) {
        const from = end - match.output.length + 1;
        const token: Token = { start: from, end, text: pythonSlice(text, from, end + 1), kind: match.output.kind };
        if (match.output.symbol !== undefined) token.symbol = match.output.symbol;
        tokens.push(token);
        yielded = true;
      }
    }
    if (!yielded) tokens.push({ start, end, text: text.slice(start, end + 1), kind: "unmatched" });
  }
  return tokens;
}

/** Of overlapping matches the longest (the leftmost of equals) is kept; contained ones are dropped. */
function filterOverlapping(found: Token[]): Token[] {
  // Array.prototype.sort is stable, as Python's sorted is.
  const tokens = [...found].sort((a, b) => a.start - b.start || b.end - b.start - (a.end - a.start));
  for (let i = 0; i < tokens.length - 1; i++) {
    for (let j = i + 1; j < tokens.length; ) {
      const current = tokens[i]!;
      const next = tokens[j]!;
      if (next.start > current.end) break;
      if (current.start <= next.start && next.end <= current.end) {
        tokens.splice(j, 1);
        continue;
      }
      const overlap =
        (current.start <= next.start && next.start <= current.end) || (current.start <= next.end && next.end <= current.end);
      if (overlap) {
        if (current.end - current.start >= next.end - next.start) {
          tokens.splice(j, 1);
          continue;
        }
        tokens.splice(i, 1);
        break;
      }
      j++;
    }
  }
  return tokens;
}

/** Each run of unmatched words becomes one unknown symbol (step 3). */
function mergeUnknown(tokens: Token[]): Token[] {
  const out: Token[] = [];
  let run: Token[] = [];
  const flush = (): void => {
    if (run.length === 0) return;
    const joined = run.map((t) => t.text).join(" ");
    if (!LICENSE_KEY.test(joined)) {
      throw invalid(`${JSON.stringify(joined.slice(0, 80))} holds a character a license key cannot hold`);
    }
    const key = joined.split(/[ \t\n\v\f\r\x1c-\x1f]+/).filter((word) => word !== "").join(" ");
    out.push({ start: run[0]!.start, end: run[run.length - 1]!.end, text: key, kind: "symbol", symbol: { kind: "symbol", key, known: false, exception: false } });
    run = [];
  };
  for (const token of tokens) {
    if (token.kind === "unmatched") {
      run.push(token);
      continue;
    }
    flush();
    out.push(token);
  }
  flush();
  return out;
}

function isSymbol(node: Node | undefined): node is SymbolNode {
  return node !== undefined && node.kind === "symbol";
}

/** `<license> WITH <exception>` triples become one symbol, strictly (step 4). */
function groupWith(tokens: Token[]): Token[] {
  const isWith = (triple: Token[]): boolean =>
    triple[0]!.kind === "symbol" && triple[1]!.kind === "WITH" && triple[2]!.kind === "symbol";
  const groups: Token[][] = [];
  if (tokens.length < 3) {
    for (const token of tokens) groups.push([token]);
  } else {
    let triple: Token[] = [];
    for (const token of tokens) {
      if (triple.length === 3) {
        if (isWith(triple)) {
          groups.push(triple);
          triple = [];
        } else {
          groups.push([triple.shift()!]);
        }
      }
      triple.push(token);
    }
    if (triple.length === 3 && isWith(triple)) groups.push(triple);
    else for (const token of triple) groups.push([token]);
  }
  const out: Token[] = [];
  for (const group of groups) {
    if (group.length === 1) {
      const token = group[0]!;
      if (token.kind === "WITH") throw invalid("WITH is not between a license and an exception");
      const symbol = token.symbol;
      if (token.kind === "symbol" && isSymbol(symbol) && symbol.exception) {
        throw invalid(`${symbol.key} is an exception, used only after WITH`);
      }
      out.push(token);
      continue;
    }
    const license = group[0]!.symbol;
    const exception = group[2]!.symbol;
    if (!isSymbol(license) || !isSymbol(exception)) throw invalid("WITH joins two symbols only");
    if (license.exception) throw invalid(`${license.key} is an exception, used only after WITH`);
    if (!exception.exception) throw invalid(`${exception.key} is not an exception`);
    out.push({ start: group[0]!.start, end: group[2]!.end, text: "", kind: "symbol", symbol: { kind: "with", license, exception } });
  }
  return out;
}

type Operation = "AND" | "OR" | "(" | null;

/** One level of boolean.py's parse stack: [parent, operation, args...]; an arg is null where the reference moves
 * the parenthesis itself into an operation (an error once the operation is applied). */
interface Frame {
  parent: Frame | null;
  operation: Operation;
  args: (Node | null)[];
}

const PRECEDENCE: Record<"AND" | "OR" | "(", number> = { AND: 10, OR: 15, "(": 20 };

/** boolean.py's AND(*args) or OR(*args): at least two arguments, each an expression. */
function apply(frame: Frame): Node {
  const operation = frame.operation;
  if ((operation !== "AND" && operation !== "OR") || frame.args.length < 2 || frame.args.some((arg) => arg === null)) {
    throw invalid("an operator without the two operands it joins");
  }
  return { kind: operation, args: frame.args as Node[] };
}

/** The operations of lower precedence are finished before `operation` (boolean.py's _start_operation). */
function startOperation(start: Frame, operation: "AND" | "OR"): Frame {
  let ast = start;
  for (;;) {
    if (ast.operation === null) {
      ast.operation = operation;
      return ast;
    }
    const precedence = PRECEDENCE[ast.operation];
    if (precedence > PRECEDENCE[operation]) {
      // [ast, op, ..., x] -> [[ast, op, ...], operation, x]; under a bare parenthesis the reference moves the
      // parenthesis itself (null here).
      if (ast.args.length > 0) {
        const last = ast.args.pop()!;
        return { parent: ast, operation, args: [last] };
      }
      return { parent: { parent: ast.parent, operation: null, args: [] }, operation, args: [null] };
    }
    if (precedence === PRECEDENCE[operation]) return ast;
    const node = apply(ast);
    if (ast.parent === null) return { parent: null, operation, args: [node] };
    ast.parent.args.push(node);
    ast = ast.parent;
  }
}

/** boolean.py's parse (step 5). */
function parse(tokens: Token[]): Node {
  const isOperator = (kind: Kind | null): boolean => kind === "AND" || kind === "OR";
  let ast: Frame = { parent: null, operation: null, args: [] };
  let previous: Kind | null = null;
  for (const token of tokens) {
    if (previous !== null) {
      if (previous === "symbol" && token.kind === "symbol") throw invalid("two license symbols in a row, with no operator between them");
      if (isOperator(previous) && (isOperator(token.kind) || token.kind === ")")) throw invalid(`${token.kind} after ${previous}`);
    } else if (isOperator(token.kind)) {
      throw invalid(`the expression starts with ${token.kind}`);
    }
    switch (token.kind) {
      case "symbol":
        ast.args.push(token.symbol!);
        break;
      case "AND":
      case "OR":
        ast = startOperation(ast, token.kind);
        break;
      case "(":
        if (previous !== null && !isOperator(previous) && previous !== "(") throw invalid("a parenthesis right after a license");
        ast = { parent: ast, operation: "(", args: [] };
        break;
      case ")":
        for (;;) {
          const parent = ast.parent;
          if (parent === null) throw invalid("a closing parenthesis that closes nothing");
          if (ast.operation === "(") {
            // Only the first expression inside the parentheses is kept.
            if (ast.args.length === 0) throw invalid("empty parentheses");
            parent.args.push(ast.args[0]!);
            ast = parent;
            break;
          }
          parent.args.push(apply(ast));
          ast = parent;
        }
        break;
      default:
        throw invalid(`unexpected ${token.kind}`);
    }
    previous = token.kind;
  }
  for (;;) {
    const parent = ast.parent;
    if (parent === null) {
      if (ast.operation !== null) return apply(ast);
      const only = ast.args[0];
      if (ast.args.length !== 1 || only === null || only === undefined) throw invalid("not one expression");
      return only;
    }
    parent.args.push(apply(ast));
    ast = parent;
  }
}

function symbols(node: Node): SymbolNode[] {
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
  if (words(text).length === 0) throw invalid("license is empty");
  const tree = parse(groupWith(mergeUnknown(filterOverlapping(matches(text)))));
  for (const symbol of symbols(tree)) {
    if (!symbol.known && !LICENSE_REF.test(symbol.key)) {
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
