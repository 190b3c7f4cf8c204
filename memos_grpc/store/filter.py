"""AIP-160 filters over cubes, compiled to parameterized DuckDB SQL.

Covers the subset of https://google.aip.dev/160 written down in
``docs/filtering.md``: ``AND``, ``OR``, ``NOT`` / ``-``, parentheses, implicit
AND by juxtaposition, the comparators ``= != < <= > >=`` and the has operator
``:`` over a fixed whitelist of columns of the ``cubes`` table
(``memos_grpc.store.schema``). A hand-written tokenizer feeds a
recursive-descent parser that emits SQL directly and, when every field it
names is one the search catalog keeps postings of (tags, sensitivity labels,
labels), the same filter as set operations, so a search resolves it in memory.

Safety: every literal becomes a ``?`` parameter and column names come only from
the field table (``CUBE_FIELDS`` for cubes), so no user text ever reaches the SQL string. Every leaf predicate
is two-valued (never NULL), so ``NOT`` is an exact complement and ``a != v``
always equals ``NOT a = v``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.errors import InvalidArgumentError

__all__ = ["AllOf", "AnyOf", "CompiledFilter", "Not", "Plan", "Postings", "compile_filter"]

_KEYWORDS: Final = frozenset({"AND", "OR", "NOT"})
# Longest first, so "<=" is not read as "<" then "=".
_COMPARATORS: Final = ("<=", ">=", "!=", "=", "<", ">", ":")
_SQL_OPS: Final = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ORDERED_OPS: Final = ("=", "!=", "<", "<=", ">", ">=")
_ESCAPES: Final = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r"}
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_INT64_MAX: Final = 2**63 - 1
_LABELS_DOT: Final = "labels."


#: The fields the search catalog keeps postings of (``SearchCatalog.matching``): a filter over these alone
#: is resolved in memory, without a DuckDB query.
INDEXED_FIELDS: Final = frozenset({"tags", "sensitivity_labels", "labels"})
#: Posting names for label keys (``labels:KEY``, ``labels.KEY:*``) and for key-value pairs (``labels.KEY = V``).
LABEL_KEYS: Final = "labels"
LABEL_PAIRS: Final = "label_pairs"


def label_pair(key: str, value: str) -> tuple[str, str]:
    """The posting key of a label key-value pair."""
    return key, value


@dataclass(frozen=True)
class Postings:
    """The cubes whose ``field`` holds ``key`` (a tag, a label key, a label pair); with key None, any value."""

    field: str
    key: str | tuple[str, str] | None


@dataclass(frozen=True)
class Not:
    """The cubes the operand's plan does not match."""

    operand: Plan


@dataclass(frozen=True)
class AllOf:
    """Every operand holds (none: the empty filter, true of every cube)."""

    operands: tuple[Plan, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one operand holds (none: true of no cube)."""

    operands: tuple[Plan, ...]


#: A filter as set operations over postings: the same cubes its SQL selects, since every leaf is two-valued.
Plan = Postings | Not | AllOf | AnyOf
#: A parsed part of a filter: its SQL, and its plan when every leaf in it has postings.
_Node = tuple[str, Plan | None]


@dataclass(frozen=True)
class CompiledFilter:
    """A boolean SQL expression over ``cubes``, its positional parameters, and its postings plan if any."""

    sql: str
    params: tuple[object, ...]
    #: None when the filter uses a field without postings: it is then evaluated in DuckDB. Derived from the same
    #: parse as ``sql``, so it takes no part in equality.
    plan: Plan | None = field(default=None, compare=False)


#: ``enum_list``: a list of enum numbers (``INTEGER[]``); ``=`` and ``:`` test membership, as for ``list``.
FieldKind = Literal["enum", "enum_list", "list", "string", "int", "time", "map"]


@dataclass(frozen=True)
class FilterField:
    """A field a filter may name: its ``cubes`` column, its kind, its enum names and prefix, and if it may be unset."""

    column: str
    kind: FieldKind
    enum_prefix: str = ""
    enum_values: tuple[tuple[str, int], ...] = ()
    nullable: bool = False


def enum_field(column: str, prefix: str, items: list[tuple[str, int]]) -> FilterField:
    return FilterField(column, "enum", prefix, tuple(items))


CUBE_FIELDS: Final[dict[str, FilterField]] = {
    "type": enum_field("type", "MEMORY_TYPE_", cube_pb2.MemoryType.items()),
    "state": enum_field("state", "LIFECYCLE_STATE_", cube_pb2.LifecycleState.items()),
    "source": enum_field("source", "SOURCE_", cube_pb2.Source.items()),
    "semantic_type": enum_field("semantic_type", "SEMANTIC_TYPE_", cube_pb2.SemanticType.items()),
    "tags": FilterField("tags", "list"),
    "sensitivity_labels": FilterField("sensitivity_labels", "list"),
    "labels": FilterField("labels", "map"),
    "model": FilterField("model", "string"),
    "origin": FilterField("origin", "string"),
    "priority": FilterField("priority", "int"),
    "version": FilterField("version", "int"),
    "create_time": FilterField("create_time", "time"),
    "update_time": FilterField("update_time", "time"),
    "expire_time": FilterField("expire_time", "time", nullable=True),
}

TokenKind = Literal["word", "string", "op", "lparen", "rparen", "minus", "end"]


@dataclass(frozen=True)
class _Token:
    kind: TokenKind
    text: str  # the word, the decoded string, or the operator
    pos: int  # character offset of the token's first character
    end: int  # offset just past the token

    def describe(self) -> str:
        if self.kind == "end":
            return "the end of the filter"
        if self.kind == "string":
            return f"the string {self.text!r}"
        return repr(self.text)


def _error(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"filter: {message}", reason=reasons.INVALID_FILTER)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char in "_.-*/"


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote, i = text[start], start + 1
    out: list[str] = []
    while i < len(text):
        char = text[i]
        if char == quote:
            return "".join(out), i + 1
        if char == "\\" and i + 1 < len(text):
            escaped = text[i + 1]
            if escaped not in _ESCAPES:
                raise _error(f"unknown escape '\\{escaped}' at position {i}; use \\\\, \\\", \\', \\n, \\t or \\r")
            out.append(_ESCAPES[escaped])
            i += 2
            continue
        out.append(char)
        i += 1
    raise _error(f"unterminated string starting at position {start}; expected a closing {quote}")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "\"'":
            value, end = _read_string(text, i)
            tokens.append(_Token("string", value, i, end))
            i = end
        elif char in "()":
            tokens.append(_Token("lparen" if char == "(" else "rparen", char, i, i + 1))
            i += 1
        elif char == "-" and not (i + 1 < n and text[i + 1].isdigit()):
            tokens.append(_Token("minus", "-", i, i + 1))
            i += 1
        elif op := next((o for o in _COMPARATORS if text.startswith(o, i)), None):
            tokens.append(_Token("op", op, i, i + len(op)))
            i += len(op)
        elif _is_word_char(char):
            end = i
            while end < n and _is_word_char(text[end]):
                end += 1
            tokens.append(_Token("word", text[i:end], i, end))
            i = end
        else:
            raise _error(f"unexpected character {char!r} at position {i}")
    tokens.append(_Token("end", "", n, n))
    return tokens


def _join(parts: list[_Node], op: Literal["AND", "OR"]) -> _Node:
    if len(parts) == 1:
        return parts[0]
    sql = "(" + f" {op} ".join(sql for sql, _ in parts) + ")"
    plans = [plan for _, plan in parts if plan is not None]
    if len(plans) < len(parts):
        return sql, None
    return sql, AllOf(tuple(plans)) if op == "AND" else AnyOf(tuple(plans))


class _Parser:
    """Recursive descent over the token list; see the EBNF in docs/filtering.md."""

    def __init__(self, tokens: list[_Token], max_depth: int, fields: dict[str, FilterField]) -> None:
        self.fields = fields
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.max_depth = max_depth
        self.params: list[object] = []
        self.prev: _Token | None = None

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        self.prev = token
        return token

    def at_keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text == word

    def after(self) -> str:
        return f" after {self.prev.text!r}" if self.prev is not None else ""

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            return "TRUE", AllOf(())
        node = self.expression()
        token = self.peek()
        if token.kind == "rparen":
            raise _error(f"unmatched ')' at position {token.pos}")
        if token.kind != "end":
            raise _error(f"expected AND, OR or the end of the filter at position {token.pos}, got {token.describe()}")
        return node

    def expression(self) -> _Node:
        parts = [self.sequence()]
        while self.at_keyword("AND"):
            self.advance()
            parts.append(self.sequence())
        return _join(parts, "AND")

    def sequence(self) -> _Node:
        parts = [self.factor()]
        while self.starts_term(self.peek()):
            parts.append(self.factor())
        return _join(parts, "AND")

    def factor(self) -> _Node:
        parts = [self.term()]
        while self.at_keyword("OR"):
            self.advance()
            parts.append(self.term())
        return _join(parts, "OR")

    @staticmethod
    def starts_term(token: _Token) -> bool:
        if token.kind == "word":
            return token.text not in ("AND", "OR")
        return token.kind in ("string", "lparen", "minus")

    def term(self) -> _Node:
        if self.peek().kind == "minus" or self.at_keyword("NOT"):
            self.advance()
            sql, plan = self.simple()
            return f"(NOT {sql})", None if plan is None else Not(plan)
        return self.simple()

    def simple(self) -> _Node:
        token = self.peek()
        if token.kind != "lparen":
            return self.restriction()
        self.advance()
        self.depth += 1
        if self.depth > self.max_depth:
            raise _error(f"parentheses nest deeper than the limit of {self.max_depth} at position {token.pos}")
        inner = self.expression()
        close = self.peek()
        if close.kind != "rparen":
            raise _error(
                f"expected ')' to close the '(' at position {token.pos}, got {close.describe()} at position {close.pos}"
            )
        self.advance()
        self.depth -= 1
        return inner

    def restriction(self) -> _Node:
        token = self.peek()
        if token.kind == "string":
            raise _error(
                f"a restriction needs a field: expected a field name at position {token.pos}, "
                f"got {token.describe()}; searching bare values is not supported"
            )
        if token.kind != "word" or token.text in _KEYWORDS:
            raise _error(f"expected a restriction{self.after()} at position {token.pos}, got {token.describe()}")
        self.advance()
        key: str | None = None
        if token.text.startswith(_LABELS_DOT) and "labels" in self.fields:
            key = token.text[len(_LABELS_DOT) :]
            quoted = self.peek()
            if not key and quoted.kind == "string" and quoted.pos == token.end:
                key = self.advance().text
            elif not key:
                raise _error(f"expected a label key after 'labels.' at position {token.end}")
        op = self.peek()
        if op.kind != "op":
            raise _error(
                f"a restriction needs a field and a comparator: expected one of "
                f"{' '.join(_COMPARATORS)} after {token.text!r} at position {op.pos}, "
                f"got {op.describe()}; bare values are not supported"
            )
        if key is None and token.text not in self.fields:
            raise _error(
                f"unknown field {token.text!r} at position {token.pos}; "
                f"known fields: {', '.join(sorted(self.fields))}" + (", labels.KEY" if "labels" in self.fields else "")
            )
        self.advance()
        value = self.peek()
        if value.kind not in ("word", "string") or (value.kind == "word" and value.text in _KEYWORDS):
            raise _error(f"expected a value after {op.text!r} at position {value.pos}, got {value.describe()}")
        self.advance()
        if key is not None:
            return self.label_leaf(key, op, value)
        return self.leaf(token.text, self.fields[token.text], op, value)

    def bind(self, *values: object) -> None:
        self.params.extend(values)

    def label_leaf(self, key: str, op: _Token, value: _Token) -> _Node:
        if op.text == ":" and value.text == "*":
            self.bind(key)
            return "map_contains(labels, ?)", Postings(LABEL_KEYS, key)
        if op.text in ("=", ":"):
            self.bind(key, value.text)
            return "COALESCE(map_extract_value(labels, ?) = ?, FALSE)", Postings(
                LABEL_PAIRS, label_pair(key, value.text)
            )
        if op.text == "!=":
            self.bind(key, value.text)
            return "(map_extract_value(labels, ?) IS DISTINCT FROM ?)", Not(
                Postings(LABEL_PAIRS, label_pair(key, value.text))
            )
        raise _unsupported(f"labels.{key}", op, "=, != or :")

    def leaf(self, name: str, field: FilterField, op: _Token, value: _Token) -> _Node:
        """The SQL of one restriction, and its postings plan when the search catalog indexes the field."""
        sql = self.leaf_sql(name, field, op, value)
        if field.column not in INDEXED_FIELDS or field.kind not in ("list", "map"):
            return sql, None
        if op.text == ":" and value.text == "*":
            return sql, Postings(LABEL_KEYS if field.kind == "map" else field.column, None)
        plan = Postings(LABEL_KEYS if field.kind == "map" else field.column, value.text)
        return sql, Not(plan) if op.text == "!=" else plan

    def leaf_sql(self, name: str, field: FilterField, op: _Token, value: _Token) -> str:
        column, text = field.column, value.text
        presence = op.text == ":" and text == "*"
        if field.kind == "map":
            if op.text != ":":
                raise _unsupported(name, op, "labels.KEY = VALUE, labels:KEY or labels:*")
            if presence:
                return "(cardinality(labels) > 0)"
            self.bind(text)
            return "map_contains(labels, ?)"
        if field.kind == "enum_list":
            if presence:
                return f"(len({column}) > 0)"
            if op.text not in ("=", "!=", ":"):
                raise _unsupported(name, op, "=, != or :")
            self.bind(_enum_number(name, field, value))
            return f"{'(NOT ' if op.text == '!=' else '('}list_contains({column}, ?))"
        if field.kind == "list":
            if presence:
                return f"(len({column}) > 0)"
            if op.text not in ("=", "!=", ":"):
                raise _unsupported(name, op, "=, != or :")
            self.bind(text)
            return f"{'(NOT ' if op.text == '!=' else '('}list_contains({column}, ?))"
        if field.kind == "string":
            if presence:
                return f"({column} <> '')"
            if op.text not in ("=", "!="):
                raise _unsupported(name, op, "= or != (a trailing * matches a prefix), or :*")
            negate = "NOT " if op.text == "!=" else ""
            if text.endswith("*"):
                self.bind(text[:-1])
                return f"({negate}starts_with({column}, ?))"
            self.bind(text)
            return f"({column} {_SQL_OPS[op.text]} ?)"
        if field.kind == "enum":
            if op.text not in ("=", "!="):
                raise _unsupported(name, op, "= or !=")
            self.bind(_enum_number(name, field, value))
            return f"({column} {_SQL_OPS[op.text]} ?)"
        if presence and field.nullable:
            return f"({column} IS NOT NULL)"
        if op.text not in _ORDERED_OPS:
            extra = ", or :* to test presence" if field.nullable else ""
            raise _unsupported(name, op, "=, !=, <, <=, > or >=" + extra)
        self.bind(_integer(name, value) if field.kind == "int" else _timestamp(name, value))
        if not field.nullable:
            return f"({column} {_SQL_OPS[op.text]} ?)"
        if op.text == "!=":
            return f"({column} IS DISTINCT FROM ?)"
        return f"COALESCE({column} {_SQL_OPS[op.text]} ?, FALSE)"


def _unsupported(name: str, op: _Token, allowed: str) -> InvalidArgumentError:
    return _error(f"field {name!r} does not support {op.text!r} at position {op.pos}; use {allowed}")


def _enum_number(name: str, field: FilterField, value: _Token) -> int:
    wanted = value.text.upper()
    for full, number in field.enum_values:
        if full in (wanted, field.enum_prefix + wanted):
            return number
    names = ", ".join(full.removeprefix(field.enum_prefix) for full, _ in field.enum_values)
    raise _error(f"{value.text!r} at position {value.pos} is not a valid {name}; expected one of {names}")


def _integer(name: str, value: _Token) -> int:
    if _INTEGER.fullmatch(value.text) and abs(number := int(value.text)) <= _INT64_MAX:
        return number
    raise _error(f"{name} needs an integer at position {value.pos}, got {value.describe()}")


def _timestamp(name: str, value: _Token) -> datetime:
    try:
        moment = datetime.fromisoformat(value.text)
    except ValueError:
        raise _error(
            f'{name} needs an RFC 3339 timestamp such as "2025-01-01T00:00:00Z" '
            f"at position {value.pos}, got {value.describe()}"
        ) from None
    if moment.tzinfo is None:
        raise _error(
            f"timestamp {value.text!r} at position {value.pos} has no timezone; add Z or an offset such as +02:00"
        )
    return moment


def compile_filter(
    text: str,
    *,
    max_length: int = 4096,
    max_depth: int = 32,
    fields: dict[str, FilterField] = CUBE_FIELDS,
) -> CompiledFilter:
    """Compiles an AIP-160 filter to a SQL boolean expression and its parameters.

    ``fields`` maps filter field names to columns (the cubes table by default).

    Raises ``InvalidArgumentError`` with reason ``INVALID_FILTER`` and a message naming
    the character offset (from 0) on any bad input, a filter longer than ``max_length``
    characters, or parentheses nested deeper than ``max_depth``.
    """
    if len(text) > max_length:
        raise _error(f"the filter is {len(text)} characters long; the limit is {max_length}")
    parser = _Parser(_tokenize(text), max_depth, fields)
    try:
        sql, plan = parser.parse()
    except RecursionError:
        raise _error(f"the filter nests too deeply; the limit is {max_depth}") from None
    return CompiledFilter(sql, tuple(parser.params), plan if fields is CUBE_FIELDS else None)
