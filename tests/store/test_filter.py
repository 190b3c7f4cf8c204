"""Tests of memos_grpc.store.filter against a real in-memory DuckDB vault schema.

Each positive case compiles a filter, runs ``SELECT cube_id FROM cubes WHERE <sql>``
with its parameters and compares the exact set of ids; each negative case checks the
error class, the ``INVALID_FILTER`` reason and that the message points at the problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pytest

from memos_grpc.errors import InvalidArgumentError
from memos_grpc.store.filter import CompiledFilter, compile_filter
from memos_grpc.store.schema import migrate

HOSTILE = "'; DROP TABLE cubes; --"


@dataclass(frozen=True)
class Row:
    cube_id: str
    type: int
    state: int
    source: int
    semantic_type: int
    priority: int
    model: str
    origin: str
    tags: list[str]
    sensitivity_labels: list[str]
    labels: dict[str, str]
    create_time: datetime
    update_time: datetime
    expire_time: datetime | None
    version: int


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# type: 1 PLAINTEXT, 2 ACTIVATION, 3 PARAMETRIC; state: 1 GENERATED, 2 ACTIVATED, 4 ARCHIVED,
# 5 FROZEN; source: 1 USER_INPUT, 2 INFERENCE, 3 RETRIEVAL; semantic_type: 1 FACT,
# 2 PREFERENCE, 4 EVENT. 0 is UNSPECIFIED throughout.
ROWS = [
    Row(
        "c1", 1, 2, 1, 1, 5, "qwen2.5-7b", "chat", ["work", "urgent"], [],
        {"env": "prod", "team": "core"},
        ts("2025-01-01T00:00:00Z"), ts("2025-01-02T00:00:00Z"), None, 1,
    ),
    Row(
        "c2", 1, 4, 2, 2, 1, "llama-3", "import", ["personal"], ["pii"],
        {"env": "dev"},
        ts("2025-03-01T00:00:00Z"), ts("2025-03-05T00:00:00Z"), ts("2026-01-01T00:00:00Z"), 3,
    ),
    Row(
        "c3", 2, 1, 3, 4, 10, "qwen3-14b", "agent", [], ["pii", "secret"],
        {},
        ts("2025-06-01T00:00:00Z"), ts("2025-06-01T00:00:00Z"), ts("2025-07-01T00:00:00Z"), 2,
    ),
    Row(
        "c4", 3, 0, 0, 0, -3, "", "", ["work"], [],
        {"k8s.io/name": "memos", "team": "ml", "my key": "v"},
        ts("2024-12-31T23:00:00Z"), ts("2024-12-31T23:00:00Z"), None, 1,
    ),
    Row(
        "c5", 1, 5, 1, 1, 0, "gpt-4o", "chat", ["urgent"], [],
        {"env": "prod"},
        ts("2025-02-01T00:00:00Z"), ts("2025-02-01T12:00:00Z"), ts("2025-02-01T00:00:00Z"), 7,
    ),
]  # fmt: skip
ALL = {row.cube_id for row in ROWS}


@pytest.fixture(scope="module")
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    migrate(connection)
    for row in ROWS:
        connection.execute(
            """
            INSERT INTO cubes (space_id, cube_id, cube_pb, type, state, source, semantic_type,
                priority, model, origin, tags, sensitivity_labels, labels, create_time,
                update_time, expire_time, version, etag, provenance_id)
            VALUES ('s', ?, ''::BLOB, ?, ?, ?, ?, ?, ?, ?, ?::VARCHAR[], ?::VARCHAR[],
                MAP(?::VARCHAR[], ?::VARCHAR[]), ?, ?, ?, ?, 'etag', 'prov')
            """,
            [
                row.cube_id, row.type, row.state, row.source, row.semantic_type, row.priority,
                row.model, row.origin, row.tags, row.sensitivity_labels,
                list(row.labels), list(row.labels.values()),
                row.create_time, row.update_time, row.expire_time, row.version,
            ],
        )  # fmt: skip
    yield connection
    connection.close()


def run(connection: duckdb.DuckDBPyConnection, compiled: CompiledFilter) -> set[str]:
    rows = connection.execute(f"SELECT cube_id FROM cubes WHERE {compiled.sql}", list(compiled.params))
    return {cube_id for (cube_id,) in rows.fetchall()}


def ids(connection: duckdb.DuckDBPyConnection, text: str) -> set[str]:
    return run(connection, compile_filter(text))


POSITIVE: dict[str, tuple[str, set[str]]] = {
    # structure
    "empty": ("", ALL),
    "whitespace only": ("   \t ", ALL),
    "implicit and": ("type = PLAINTEXT tags:urgent", {"c1", "c5"}),
    "explicit and": ("type = PLAINTEXT AND tags:urgent", {"c1", "c5"}),
    "or": ("state = ARCHIVED OR state = GENERATED", {"c2", "c3"}),
    "or binds tighter than and": ("type = ACTIVATION AND state = GENERATED OR state = ARCHIVED", {"c3"}),
    "or binds tighter than juxtaposition": (
        "type = ACTIVATION state = GENERATED OR state = ARCHIVED",
        {"c3"},
    ),
    "parentheses override precedence": (
        "(type = ACTIVATION AND state = GENERATED) OR state = ARCHIVED",
        {"c2", "c3"},
    ),
    "not": ("NOT type = PLAINTEXT", {"c3", "c4"}),
    "minus": ("-type = PLAINTEXT", {"c3", "c4"}),
    "minus with space": ("- type = PLAINTEXT", {"c3", "c4"}),
    "not parenthesized or": ("NOT (tags:work OR tags:urgent)", {"c2", "c3"}),
    "minus parenthesized": ("-(priority > 0)", {"c4", "c5"}),
    "not binds tighter than or": ('NOT tags:work OR model = "gpt-4o"', {"c2", "c3", "c5"}),
    "nested parentheses": ("((tags:work) AND ((priority < 0)))", {"c4"}),
    "no spaces around comparators": ("priority>=5 version<2", {"c1"}),
    # enums
    "type short": ("type = PLAINTEXT", {"c1", "c2", "c5"}),
    "type full": ("type = MEMORY_TYPE_PLAINTEXT", {"c1", "c2", "c5"}),
    "type lowercase": ("type = plaintext", {"c1", "c2", "c5"}),
    "type quoted": ('type = "PARAMETRIC"', {"c4"}),
    "type not equal": ("type != PLAINTEXT", {"c3", "c4"}),
    "state short": ("state = FROZEN", {"c5"}),
    "state full": ("state = LIFECYCLE_STATE_ACTIVATED", {"c1"}),
    "state unspecified": ("state = UNSPECIFIED", {"c4"}),
    "state unspecified full": ("state = LIFECYCLE_STATE_UNSPECIFIED", {"c4"}),
    "source short": ("source = USER_INPUT", {"c1", "c5"}),
    "source full": ("source = SOURCE_RETRIEVAL", {"c3"}),
    "semantic_type short": ("semantic_type = fact", {"c1", "c5"}),
    "semantic_type full": ("semantic_type != SEMANTIC_TYPE_FACT", {"c2", "c3", "c4"}),
    # repeated strings
    "tags has": ("tags:work", {"c1", "c4"}),
    "tags has quoted": ('tags:"urgent"', {"c1", "c5"}),
    "tags equals means contains": ("tags = personal", {"c2"}),
    "tags not equal means lacks": ("tags != work", {"c2", "c3", "c5"}),
    "tags any": ("tags:*", {"c1", "c2", "c4", "c5"}),
    "tags none": ("-tags:*", {"c3"}),
    "tags missing value": ("tags:nothing", set()),
    "sensitivity_labels has": ("sensitivity_labels:pii", {"c2", "c3"}),
    "sensitivity_labels equals": ("sensitivity_labels = secret", {"c3"}),
    "sensitivity_labels none": ("NOT sensitivity_labels:*", {"c1", "c4", "c5"}),
    # labels
    "label equals": ("labels.env = prod", {"c1", "c5"}),
    "label equals quoted": ('labels.env = "dev"', {"c2"}),
    "label has value": ("labels.env:prod", {"c1", "c5"}),
    "label not equal includes missing key": ("labels.env != prod", {"c2", "c3", "c4"}),
    "label not equals not": ("NOT labels.env = prod", {"c2", "c3", "c4"}),
    "label missing key equals": ("labels.nope = prod", set()),
    "label missing key not equal": ("labels.nope != prod", ALL),
    "label key present": ("labels:team", {"c1", "c4"}),
    "label key present star": ("labels.team:*", {"c1", "c4"}),
    "label key absent": ("-labels.env:*", {"c3", "c4"}),
    "label key with dots and slash": ("labels.k8s.io/name = memos", {"c4"}),
    "label quoted key": ('labels."my key" = v', {"c4"}),
    "labels any": ("labels:*", {"c1", "c2", "c4", "c5"}),
    "label value case sensitive": ("labels.env = PROD", set()),
    # plain strings
    "model equals": ('model = "llama-3"', {"c2"}),
    "model bare": ("model = gpt-4o", {"c5"}),
    "model prefix": ('model = "qwen*"', {"c1", "c3"}),
    "model prefix bare": ("model = qwen3*", {"c3"}),
    "model not prefix": ("model != qwen*", {"c2", "c4", "c5"}),
    "model not equal": ('model != "gpt-4o"', {"c1", "c2", "c3", "c4"}),
    "model empty": ('model = ""', {"c4"}),
    "model set": ("model:*", {"c1", "c2", "c3", "c5"}),
    "origin equals": ("origin = chat", {"c1", "c5"}),
    "origin single quotes": ("origin = 'agent'", {"c3"}),
    "origin escaped quote": ('origin = "a\\"b"', set()),
    # integers
    "priority equals": ("priority = 5", {"c1"}),
    "priority negative": ("priority = -3", {"c4"}),
    "priority not equal": ("priority != 0", {"c1", "c2", "c3", "c4"}),
    "priority greater": ("priority > 1", {"c1", "c3"}),
    "priority greater equal": ("priority >= 1", {"c1", "c2", "c3"}),
    "priority less": ("priority < 0", {"c4"}),
    "priority less equal": ("priority <= 0", {"c4", "c5"}),
    "priority quoted integer": ('priority = "10"', {"c3"}),
    "version range": ("version >= 2 AND version < 7", {"c2", "c3"}),
    # timestamps
    "create_time after": ('create_time > "2025-01-01T00:00:00Z"', {"c2", "c3", "c5"}),
    "create_time at or after": ('create_time >= "2025-01-01T00:00:00Z"', {"c1", "c2", "c3", "c5"}),
    "create_time equals with offset": ('create_time = "2025-01-01T01:00:00+02:00"', {"c4"}),
    "create_time before with offset": ('create_time < "2025-01-01T01:00:00+01:00"', {"c4"}),
    "create_time not equal": ('create_time != "2025-01-01T00:00:00Z"', {"c2", "c3", "c4", "c5"}),
    "create_time fractional seconds": ('create_time <= "2024-12-31T23:00:00.000000Z"', {"c4"}),
    "update_time range": (
        'update_time > "2025-01-01T00:00:00Z" update_time < "2025-04-01T00:00:00Z"',
        {"c1", "c2", "c5"},
    ),
    "expire_time before excludes null": ('expire_time < "2030-01-01T00:00:00Z"', {"c2", "c3", "c5"}),
    "expire_time after excludes null": ('expire_time > "2000-01-01T00:00:00Z"', {"c2", "c3", "c5"}),
    "expire_time equals": ('expire_time = "2025-07-01T00:00:00Z"', {"c3"}),
    "expire_time not equal includes null": (
        'expire_time != "2025-07-01T00:00:00Z"',
        {"c1", "c2", "c4", "c5"},
    ),
    "expire_time negated comparison includes null": (
        'NOT expire_time < "2026-01-01T00:00:00Z"',
        {"c1", "c2", "c4"},
    ),
    "expire_time set": ("expire_time:*", {"c2", "c3", "c5"}),
    "expire_time unset": ("-expire_time:*", {"c1", "c4"}),
    # keywords and literals
    "quoted keyword is a value": ('origin = "AND"', set()),
    "combined": (
        "(type = PLAINTEXT OR type = ACTIVATION) AND -state = ARCHIVED labels.env:* priority >= 0",
        {"c1", "c5"},
    ),
}


@pytest.mark.parametrize(("text", "expected"), list(POSITIVE.values()), ids=list(POSITIVE))
def test_filter_selects(db: duckdb.DuckDBPyConnection, text: str, expected: set[str]) -> None:
    assert ids(db, text) == expected


NEGATIVE: dict[str, tuple[str, str]] = {
    # (filter, a fragment the message must contain)
    "unknown field": ("colour = red", "unknown field 'colour' at position 0"),
    "unknown field lists known": ("colour = red", "known fields: create_time"),
    "unknown dotted field": ("meta.x = 1", "unknown field 'meta.x'"),
    "bare value": ("prod", "a restriction needs a field"),
    "bare string": ('"prod"', "a restriction needs a field"),
    "bare value after restriction": ("state = FROZEN prod", "position 19"),
    "missing value": ("state =", "expected a value after '=' at position 7"),
    "missing value before and": ("priority = AND version = 1", "expected a value after '=' at position 11"),
    "keyword as value": ("state = NOT", "expected a value after '='"),
    "dangling and": ("state = FROZEN AND", "expected a restriction after 'AND' at position 18"),
    "dangling or": ("state = FROZEN OR", "after 'OR' at position 17"),
    "leading and": ("AND state = FROZEN", "position 0"),
    "double negation": ("NOT NOT state = FROZEN", "after 'NOT' at position 4"),
    "dangling minus": ("-", "after '-' at position 1"),
    "unclosed paren": ("(state = FROZEN", "expected ')' to close the '(' at position 0"),
    "unmatched paren": ("state = FROZEN)", "unmatched ')' at position 14"),
    "empty parens": ("()", "position 1"),
    "chained comparison": ("priority < 3 < 4", "position 13"),
    "function call": ("tags(x) = 1", "position 4"),
    "unexpected character": ("state = FROZEN && tags:x", "unexpected character '&' at position 15"),
    "lone bang": ("state ! FROZEN", "position 6"),
    "unterminated string": ('model = "qwen', "unterminated string starting at position 8"),
    "bad escape": ('model = "a\\qb"', "unknown escape '\\q' at position 10"),
    "unknown enum": ("state = DELETED", "'DELETED' at position 8 is not a valid state"),
    "enum lists names": ("type = TEXT", "PLAINTEXT"),
    "enum of other type": ("type = LIFECYCLE_STATE_FROZEN", "position 7"),
    "enum number": ("state = 5", "not a valid state"),
    "enum ordering": ("state > FROZEN", "does not support '>' at position 6"),
    "enum has": ("type:PLAINTEXT", "does not support ':'"),
    "integer word": ("priority = high", "priority needs an integer at position 11"),
    "integer float": ("priority > 1.5", "needs an integer"),
    "integer too large": ("version = 99999999999999999999", "needs an integer"),
    "integer has": ("priority:*", "does not support ':'"),
    "timestamp without zone": ('create_time > "2025-01-01T00:00:00"', "has no timezone"),
    "date without zone": ('create_time > "2025-01-01"', "position 14"),
    "timestamp garbage": ('update_time < "yesterday"', "RFC 3339 timestamp"),
    "timestamp bare word": ("expire_time < tomorrow", "position 14"),
    "non-null timestamp has": ("create_time:*", "does not support ':'"),
    "tags ordering": ("tags > a", "does not support '>'"),
    "string ordering": ("model < m", "does not support '<'"),
    "string has value": ("origin:chat", "does not support ':'"),
    "labels equals": ("labels = prod", "labels.KEY = VALUE"),
    "label ordering": ("labels.env > a", "does not support '>'"),
    "empty label key": ("labels. = x", "expected a label key after 'labels.' at position 7"),
    "too long": ("x" * 4097, "limit is 4096"),
    "too deep": ("(" * 33 + "state = FROZEN" + ")" * 33, "limit of 32"),
}


@pytest.mark.parametrize(("text", "fragment"), list(NEGATIVE.values()), ids=list(NEGATIVE))
def test_filter_rejects(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        compile_filter(text)
    assert caught.value.reason == "INVALID_FILTER"
    assert caught.value.message.startswith("filter: ")
    assert fragment in caught.value.message


def test_limits_are_configurable(db: duckdb.DuckDBPyConnection) -> None:
    assert run(db, compile_filter("(" * 32 + "state = FROZEN" + ")" * 32)) == {"c5"}
    with pytest.raises(InvalidArgumentError, match="limit of 2"):
        compile_filter("(((state = FROZEN)))", max_depth=2)
    with pytest.raises(InvalidArgumentError, match="limit is 10"):
        compile_filter("state = FROZEN", max_length=10)
    assert compile_filter("priority = 1", max_length=12).params == (1,)


def test_deep_nesting_with_a_large_limit_is_an_invalid_filter() -> None:
    deep = "(" * 3000 + "state = FROZEN" + ")" * 3000
    with pytest.raises(InvalidArgumentError) as caught:
        compile_filter(deep, max_length=10_000, max_depth=10_000)
    assert caught.value.reason == "INVALID_FILTER"


def test_empty_filter_is_true() -> None:
    assert compile_filter("") == CompiledFilter("TRUE", ())


INJECTIONS = {
    "label value": f'labels.env = "{HOSTILE}"',
    "label key": f'labels."{HOSTILE}" = x',
    "label not equal": f'labels.env != "{HOSTILE}" labels.nope:*',
    "model": f'model = "{HOSTILE}"',
    "model prefix": f'model = "{HOSTILE}*"',
    "tags": f'tags:"{HOSTILE}"',
    "origin single quoted": "origin = '\\'; DROP TABLE cubes; --'",
    "escaped closing quote": 'model = "x\\" OR 1=1 --"',
}


@pytest.mark.parametrize("text", list(INJECTIONS.values()), ids=list(INJECTIONS))
def test_injection_is_inert(db: duckdb.DuckDBPyConnection, text: str) -> None:
    compiled = compile_filter(text)
    assert "DROP" not in compiled.sql
    assert "1=1" not in compiled.sql
    assert run(db, compiled) == set()
    assert db.execute("SELECT count(*) FROM cubes").fetchone() == (len(ROWS),)


def test_hostile_field_names_are_rejected() -> None:
    for text in ("cube_pb = x", "etag = x", "1=1 OR state = FROZEN", "state; DROP TABLE cubes"):
        with pytest.raises(InvalidArgumentError) as caught:
            compile_filter(text)
        assert caught.value.reason == "INVALID_FILTER"


COMPLEMENTS = [
    "type = PLAINTEXT",
    "tags = work",
    "labels.env = prod",
    "labels.nope = x",
    "model = qwen*",
    "priority = 5",
    'create_time = "2025-01-01T00:00:00Z"',
    'expire_time = "2025-07-01T00:00:00Z"',
]


@pytest.mark.parametrize("restriction", COMPLEMENTS)
def test_not_equal_is_the_complement_of_equal(db: duckdb.DuckDBPyConnection, restriction: str) -> None:
    equal = ids(db, restriction)
    assert ids(db, f"NOT {restriction}") == ALL - equal
    assert ids(db, restriction.replace(" = ", " != ", 1)) == ALL - equal


def test_sql_is_parameterized() -> None:
    compiled = compile_filter('labels.env = "prod" priority > 3 create_time < "2025-01-01T00:00:00Z"')
    assert "prod" not in compiled.sql
    assert compiled.sql.count("?") == len(compiled.params)
    assert compiled.params == ("env", "prod", 3, datetime(2025, 1, 1, tzinfo=UTC))
