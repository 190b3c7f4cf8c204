"""Property-based fuzzing of every RPC: no input makes the server answer INTERNAL or UNKNOWN, or fall over.

Requests are generated from the request messages' descriptors, so a field
added to a proto is fuzzed without touching this file. Every scalar gets
hostile values: unicode and huge strings (over the text, filter and message
limits), integers at and past the int32/int64 extremes, enum numbers the
proto does not define, NaN and infinite floats (also in 384-dimensional
vectors that pass the dimension check), timestamps outside the representable
range, and update masks naming unknown paths. String fields whose name says
what they hold (``name``, ``parent``, ``filter``, ``page_token``,
``expected_digest``, ...) also draw from a pool of near-valid values: the
fuzz space's real resource names, filters that parse and filters that don't,
page tokens forged in the server's own format, so that inputs get past the
first check and reach the deeper code.

Fully random requests rarely get past the first check, so two in three
examples instead start from a valid request for the method (``seed_requests``)
and set one to three of its fields, at any depth, to hostile values
(``mutated``): an unknown enum in an otherwise valid cube, an out-of-range
timestamp in an otherwise valid credential.

Besides structured messages, the tests send raw bytes as the serialized
request: bytes that decode as the request type (a real request with random
unknown fields appended, or another message's bytes), and arbitrary bytes.
The client-streaming WritePayload is fuzzed with random message sequences.
Every crash the fuzz has found is kept, minimal, in ``FOUND`` and checked on
every run, whatever hypothesis happens to draw.

Property, for each example: the call ends with any status but INTERNAL,
UNKNOWN or DEADLINE_EXCEEDED (a hang), and afterwards the server still
answers grpc.health.v1 Health.Check with SERVING. A failure shows the server
log's traceback. The fuzz runs as the admin (so authorization never stops an
input early) against a server of this module's own; hypothesis is
derandomized and keeps no example database, so CI runs are reproducible;
it does not shrink failures unless MEMOS_FUZZ_SHRINK=1 (shrinking takes
minutes of calls), so a failure shows the example as drawn.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import pytest
from conftest import start_server
from google.protobuf import field_mask_pb2, message_factory, text_format, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from memos_test_support import admin_token

from memos_grpc._proto.memos.v1 import cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import MemosServer
from memos_grpc.vault.paging import encode_token
from memos_grpc.vault.validation import UPDATABLE_PATHS

Code = grpc.StatusCode

#: Statuses no input may produce: a crash in the server, or a hang.
FORBIDDEN = frozenset({Code.INTERNAL, Code.UNKNOWN, Code.DEADLINE_EXCEEDED})
CALL_TIMEOUT = 30.0

SPACE_ID = "fuzz"
SPACE = f"spaces/{SPACE_ID}"
CUBE = f"{SPACE}/cubes/known"
BLOB_CUBE = f"{SPACE}/cubes/blob"
PAYLOAD = b"fuzz payload \x00\xff" * 16
PAYLOAD_DIGEST = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
ADMIN = "principals/admin"
FUZZER = "principals/fuzzer"
DIMENSION = 384
MiB = 1024 * 1024

#: Shrinking a failure costs minutes of calls, so CI reports the example as found (the server's
#: traceback names the bug); set MEMOS_FUZZ_SHRINK=1 to minimise it locally.
_PHASES = [Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get("MEMOS_FUZZ_SHRINK") else [])
FUZZ_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    phases=_PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

SERVICES = (
    v.DESCRIPTOR.services_by_name["VaultService"],
    g.DESCRIPTOR.services_by_name["GovernanceService"],
)
METHODS: dict[str, MethodDescriptor] = {
    f"/{service.full_name}/{method.name}": method for service in SERVICES for method in service.methods
}
#: Every method with a single request message (unary, and the server-streaming ReadPayload).
UNARY = sorted(path for path, method in METHODS.items() if not method.client_streaming)
WRITE_PAYLOAD = "/memos.v1.VaultService/WritePayload"


def short(path: str) -> str:
    return path.rsplit("/", 1)[1]


def request_class(path: str) -> type[Message]:
    return message_factory.GetMessageClass(METHODS[path].input_type)


# -- pools of near-valid values ---------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


NAMES = [
    SPACE,
    CUBE,
    BLOB_CUBE,
    f"{SPACE}/cubes/nope",
    "spaces/nope",
    "spaces/nope/cubes/known",
    ADMIN,
    FUZZER,
    "principals/nope",
    f"{FUZZER}/credentials/k0123456789abcdef",
    f"{ADMIN}/credentials/k0123456789abcdef",
    f"{FUZZER}/credentials/",
    "",
    "/",
    "spaces/",
    "spaces//cubes/",
    f"{CUBE}/extra",
    "spaces/FUZZ",
    "spaces/" + "a" * 64,
    "cubes/known",
    "principals/Admin",
    "auditEvents/1",
    "spaces/fuzz\x00",
    "spaces/fu\u017ez",
]
IDS = ["fuzz", "known", "fresh", "fuzzer", "admin", "a", "a" * 63, "a" * 64, "Bad_Id", "-x", "1a", "", "x\n", "\u0430"]
FILTERS = [
    "",
    "   ",
    "type = PLAINTEXT",
    "type = MEMORY_TYPE_ACTIVATION",
    "state != ARCHIVED AND priority >= 0",
    "priority > -5",
    "priority = 99999999999999999999999999",
    "priority = 1e400",
    "version < -9223372036854775809",
    'labels.user = "alice"',
    'labels."my key" = v',
    "labels.k:*",
    "tags: drinks",
    "tags = x OR tags = y",
    'create_time > "2020-01-01T00:00:00Z"',
    'expire_time < "99999-01-01T00:00:00Z"',
    'update_time = "not a time"',
    "NOT (NOT priority = 1)",
    "NOT NOT priority = 1",
    "-state = ARCHIVED",
    "model = 'it''s'",
    'origin = "\\u0000"',
    "a = 1 AND",
    "((((",
    "))))",
    "colour = red",
    "sequence > 0",
    "sequence > 99999999999999999999",
    "outcome = DENIED",
    "outcome = OUTCOME_BOGUS",
    'time < "2100-01-01T00:00:00Z"',
    'principal = "principals/admin" method : "*Cube*"',
    "status_code = OK reason = ''",
    "(" * 2000 + "priority = 1" + ")" * 2000,
    "NOT (" * 800 + "priority = 1" + ")" * 800,
    "priority = 1 " * 600,
    "x" * 5000,
]
#: Page tokens in the server's own format (they are not signed), bound to the queries the fuzz makes.
_TOKEN_QUERIES = [("spaces", ""), ("principals",), ("audit", ""), (SPACE, ""), ("audit", "sequence > 0")]
_TOKEN_KEYS = ["", "known", "zzzz", "abc", "-1", "9" * 30, "1e3", "\x00", "\ud7ff", "a" * 10_000]
PAGE_TOKENS = [
    "",
    "garbage!!",
    "eyJ4IjoxfQ",
    _b64(b'{"k": 1, "q": "x"}'),
    _b64(b'{"k": "a", "q": []}'),
    _b64(b'"just a string"'),
    _b64(b"null"),
    _b64(b"[]"),
    _b64(b"\xff\xfe\x00"),
    _b64(b"[" * 3000),  # nested deeper than the JSON decoder recurses
    _b64(b'{"k": "' + b"\\ud800" + b'", "q": "x"}'),
    *[encode_token(key, *query) for key in _TOKEN_KEYS for query in _TOKEN_QUERIES],
]
TEXTS = [
    "Alice prefers green tea",
    " \n\t",
    "x" * (64 * 1024 + 1),
    "\u00e9" * 40_000,
    "a\x00b",
    "\U0001f642" * 1000,
    "\u202e\u0301\ufeff",
]
DIGESTS = [
    PAYLOAD_DIGEST,
    "sha256:" + "0" * 64,
    "sha256:" + "A" * 64,
    "sha256:" + "0" * 63,
    "sha256:",
    "md5:abc",
    "",
]
MASK_PATHS = [
    *sorted(UPDATABLE_PATHS),
    "*",
    "version",
    "name",
    "etag",
    "plaintext.text.x",
    "labels.k",
    "",
    "access.owner",
]
GENERAL = [*NAMES[:8], *IDS[:3], "principals/x", "float32", "pii", "k", "v", "\x00", " padded "]
HUGE = ["x" * (64 * 1024 + 1), "\u00e9" * (MiB // 2), "\x00" * 10_000, "a/" * 50_000]

FIELD_POOLS: dict[str, list[str]] = {
    "name": NAMES,
    "parent": NAMES,
    "principals": NAMES,
    "space_id": IDS,
    "principal_id": IDS,
    "cube_id": IDS,
    "filter": FILTERS,
    "page_token": PAGE_TOKENS,
    "text": TEXTS,
    "digest": DIGESTS,
    "expected_digest": DIGESTS,
    "model_fingerprint": ["", "m", "x" * 600],
    "certificate_fingerprints": ["0" * 64, "A" * 64, "0" * 63],
    "algorithm": ["", "ed25519", "rsa"],
    "etag": ["", "stale", "0" * 20],
    "media_type": ["", "application/octet-stream", "x" * 2000],
}


# -- strategies ---------------------------------------------------------------------------

INT32 = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([0, 1, -1, 50, 100, 101, 1000, 1001, 2**31 - 1, -(2**31)]),
)
INT64 = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, -1, 2**31, 2**32, 2**63 - 1, -(2**63), 4096 * MiB, 4096 * MiB + 1]),
)
UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.integers(0, 2**64 - 1)
FLOAT = st.floats(width=32)
DOUBLE = st.floats()
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, 3.4e38, -3.4e38, 1e-45]


@st.composite
def _full_vector(draw: st.DrawFn) -> list[float]:
    """384 values: a constant (maybe 0), with one spot set to a special value (maybe NaN or inf)."""
    values = [draw(st.sampled_from([0.0, 1.0, -1.0, 1e-45, 3.4e38]))] * DIMENSION
    values[draw(st.integers(0, DIMENSION - 1))] = draw(st.one_of(st.sampled_from(SPECIAL_FLOATS), FLOAT))
    return values


VECTOR_VALUES = st.one_of(st.lists(FLOAT, max_size=8), _full_vector(), st.builds(lambda: [1.0] * (DIMENSION + 1)))
TIMESTAMP = st.builds(
    timestamp_pb2.Timestamp,
    seconds=st.one_of(
        INT64,
        st.sampled_from([253_402_300_799, 253_402_300_800, -62_135_596_800, -62_135_596_801, 4_102_444_800]),
    ),
    nanos=st.one_of(INT32, st.sampled_from([0, 999_999_999, 1_000_000_000, -1])),
)
FIELD_MASK = st.builds(
    field_mask_pb2.FieldMask,
    paths=st.lists(st.one_of(st.sampled_from(MASK_PATHS), st.text(max_size=20)), max_size=4),
)
#: Messages with a strategy of their own instead of the generic one.
SPECIAL_MESSAGES: dict[str, st.SearchStrategy[Any]] = {
    "google.protobuf.Timestamp": TIMESTAMP,
    "google.protobuf.FieldMask": FIELD_MASK,
}


def pick(pool: Sequence[Any]) -> st.SearchStrategy[Any]:
    """``sampled_from(pool)``, but with a short repr: the pools hold megabyte strings."""

    def item(index: int) -> Any:
        return pool[index]

    return st.integers(0, len(pool) - 1).map(item)


def string_strategy(field_name: str) -> st.SearchStrategy[str]:
    pool = FIELD_POOLS.get(field_name, [])
    options = [pick(pool)] if pool else []
    return st.one_of(*options, pick(GENERAL), st.text(max_size=40), pick(HUGE))


def scalar_strategy(fd: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = FieldDescriptor
    if fd.type == t.TYPE_STRING:
        return string_strategy(fd.name)
    if fd.type == t.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.binary(min_size=32, max_size=32))
    if fd.type == t.TYPE_BOOL:
        return st.booleans()
    if fd.type == t.TYPE_ENUM:
        assert fd.enum_type is not None
        known = [value.number for value in fd.enum_type.values]
        return st.one_of(st.sampled_from(known), INT32)
    if fd.type == t.TYPE_FLOAT:
        return FLOAT
    if fd.type == t.TYPE_DOUBLE:
        return DOUBLE
    if fd.type in (t.TYPE_INT32, t.TYPE_SINT32, t.TYPE_SFIXED32):
        return INT32
    if fd.type in (t.TYPE_INT64, t.TYPE_SINT64, t.TYPE_SFIXED64):
        return INT64
    if fd.type in (t.TYPE_UINT32, t.TYPE_FIXED32):
        return UINT32
    if fd.type in (t.TYPE_UINT64, t.TYPE_FIXED64):
        return UINT64
    raise AssertionError(f"no strategy for field {fd.full_name} of type {fd.type}")


def field_strategy(fd: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        value = fd.message_type.fields_by_name["value"]
        return st.dictionaries(
            st.one_of(st.sampled_from(["k", "user", "Bad", "a" * 64, "", "x/y", "a.b-c_d"]), st.text(max_size=20)),
            field_strategy(value, depth + 1),
            max_size=3,
        )
    if fd.full_name == "memos.v1.Vector.values":
        return VECTOR_VALUES
    element = message_strategy(fd.message_type, depth + 1) if fd.message_type else scalar_strategy(fd)
    if fd.is_repeated:
        return st.lists(element, max_size=3)
    return element


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        fd = cls.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            target.update(value)
        elif fd.is_repeated:
            target.extend(value)
        elif fd.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def message_strategy(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor`` with any subset of their fields set to hostile values."""
    special = SPECIAL_MESSAGES.get(descriptor.full_name)
    if special is not None:
        return special
    cls = message_factory.GetMessageClass(descriptor)
    if depth > 6:
        return st.just(cls())
    optional = {fd.name: field_strategy(fd, depth) for fd in descriptor.fields}
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: _build(cls, values))


REQUESTS: dict[str, st.SearchStrategy[Message]] = {
    path: message_strategy(method.input_type) for path, method in METHODS.items()
}


FieldPath = tuple[FieldDescriptor, ...]


def field_paths(descriptor: Descriptor, depth: int = 0) -> list[FieldPath]:
    """Every field reachable from ``descriptor`` (into the first element of repeated messages), as paths."""
    paths: list[FieldPath] = []
    for fd in descriptor.fields:
        paths.append((fd,))
        sub = fd.message_type
        if sub is None or sub.GetOptions().map_entry or sub.full_name in SPECIAL_MESSAGES or depth >= 4:
            continue
        paths.extend((fd, *rest) for rest in field_paths(sub, depth + 1))
    return paths


def _set(message: Message, fd: FieldDescriptor, value: Any) -> None:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        getattr(message, fd.name).clear()
        getattr(message, fd.name).update(value)
    elif fd.is_repeated:
        del getattr(message, fd.name)[:]
        getattr(message, fd.name).extend(value)
    elif fd.message_type is not None:
        getattr(message, fd.name).CopyFrom(value)
    else:
        setattr(message, fd.name, value)


def _replace(seed: Message, changes: list[tuple[FieldPath, Any]]) -> Message:
    message = type(seed)()
    message.CopyFrom(seed)
    for path, value in changes:
        target = message
        for fd in path[:-1]:
            if fd.is_repeated:
                elements = getattr(target, fd.name)
                target = elements[0] if len(elements) else elements.add()
            else:
                target = getattr(target, fd.name)
        _set(target, path[-1], value)
    return message


def mutated(seeds: Sequence[Message]) -> st.SearchStrategy[Message]:
    """A valid request with one to three of its fields, at any depth, set to hostile values.

    Fully random requests rarely get past the first check; these reach the code behind it.
    """

    @st.composite
    def strategy(draw: st.DrawFn) -> Message:
        seed: Message = draw(pick(seeds))
        paths = field_paths(seed.DESCRIPTOR)
        if not paths:
            return seed
        chosen = draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3, unique=True))
        return _replace(seed, [(path, draw(field_strategy(path[-1], len(path)))) for path in chosen])

    return strategy()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@st.composite
def unknown_field(draw: st.DrawFn) -> bytes:
    """One well-formed field of any number and wire type: varint, 64-bit, length-delimited or 32-bit."""
    number = draw(st.one_of(st.integers(1, 40), st.integers(1, 2**29 - 1)))
    wire = draw(st.sampled_from([0, 1, 2, 5]))
    tag = _varint(number << 3 | wire)
    if wire == 0:
        return tag + _varint(draw(st.integers(0, 2**64 - 1)))
    if wire == 1:
        return tag + draw(st.binary(min_size=8, max_size=8))
    if wire == 5:
        return tag + draw(st.binary(min_size=4, max_size=4))
    body = draw(st.one_of(st.binary(max_size=40), st.text(max_size=20).map(str.encode)))
    return tag + _varint(len(body)) + body


def decodable_bytes(path: str) -> st.SearchStrategy[bytes]:
    """Bytes the request type decodes: a request with unknown fields appended, or another request's bytes."""
    cls = request_class(path)
    own = st.tuples(REQUESTS[path], st.lists(unknown_field(), max_size=4)).map(
        lambda pair: pair[0].SerializeToString() + b"".join(pair[1])
    )
    other = st.sampled_from(sorted(METHODS)).flatmap(lambda other: REQUESTS[other]).map(lambda m: m.SerializeToString())

    def decodes(raw: bytes) -> bool:
        try:
            cls.FromString(raw)
        except DecodeError:
            return False
        return True

    return st.one_of(own, other).filter(decodes)


@st.composite
def write_streams(draw: st.DrawFn) -> list[Message]:
    """A WritePayload stream: a header (often consistent with the data) then chunks, or anything at all."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.lists(REQUESTS[WRITE_PAYLOAD], max_size=4))
    chunks = draw(st.lists(st.binary(max_size=256), max_size=4))
    data = b"".join(chunks)
    first = v.WritePayloadRequest(
        parent=draw(st.one_of(st.just(SPACE), string_strategy("parent"))),
        expected_digest=draw(
            st.one_of(st.just("sha256:" + hashlib.sha256(data).hexdigest()), string_strategy("expected_digest"))
        ),
        expected_size=draw(st.one_of(st.just(len(data)), st.just(len(data) + 1), INT64)),
        media_type=draw(string_strategy("media_type")),
        data=chunks[0] if chunks else b"",
    )
    stream: list[Message] = [first]
    for chunk in chunks[1:]:
        message = v.WritePayloadRequest()
        if draw(st.booleans()):  # a chunk that also sets header fields, which only the first may
            message.ParseFromString(draw(REQUESTS[WRITE_PAYLOAD]).SerializeToString())
        message.data = chunk
        stream.append(message)
    return stream


class Shown:
    """A drawn request, printed compactly in hypothesis' report (long strings and repeated values cut short)."""

    def __init__(self, message: Message) -> None:
        self.message = message

    def __repr__(self) -> str:
        text = text_format.MessageToString(self.message, as_one_line=True)
        text = re.sub(
            r'"((?:[^"\\]|\\.){100})(?:[^"\\]|\\.)+"', lambda m: f'"{m.group(1)}..."[{len(m.group(0))} chars]', text
        )
        text = re.sub(r"(\b\w+: [^ ]+ )\1{3,}", lambda m: f"{m.group(1)}(x{len(m.group(0)) // len(m.group(1))}) ", text)
        return f"{type(self.message).__name__}({text})"


def shown(strategy: st.SearchStrategy[Message]) -> st.SearchStrategy[Shown]:
    return strategy.map(Shown)


# -- valid requests to mutate -------------------------------------------------------------------


def _text_cube(text: str) -> cube_pb2.MemCube:
    return cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text))


#: 2100-01-01: a fixed future time, so that derandomized runs draw the same requests every day.
FUTURE = timestamp_pb2.Timestamp(seconds=4_102_444_800)


ACTIVATION = cube_pb2.MemCube(
    activation=cube_pb2.ActivationPayload(
        blob=cube_pb2.BlobRef(digest=PAYLOAD_DIGEST), model_fingerprint="m", dtype="float32", shape=[1, 2, 3, 4]
    )
)
VECTOR = v.Vector(values=[1.0] * DIMENSION)
_VAULT, _GOV = "/memos.v1.VaultService/", "/memos.v1.GovernanceService/"


def _request(path: str, **fields: Any) -> Message:
    """A request of a method that may not exist in this build (it is then never asked for)."""
    return request_class(path)(**fields) if path in METHODS else g.VerifyAuditLogRequest()


def seed_requests(credential: str) -> dict[str, list[Message]]:
    """For every method, requests that succeed (or nearly) on the fuzz world: the mutations' starting points.

    ``credential`` is the name of a credential of the fuzzer principal, for RevokeCredential.
    """
    tagged = cube_pb2.MemCube(
        name=CUBE, tags=["t"], labels={"k": "v"}, priority=5, expire_time=FUTURE, plaintext={"text": "new"}
    )
    return {
        _VAULT + "CreateCube": [
            v.CreateCubeRequest(parent=SPACE, cube=_text_cube("a memory"), vector=VECTOR),
            v.CreateCubeRequest(parent=SPACE, cube=_text_cube("a memory the server embeds")),
            v.CreateCubeRequest(parent=SPACE, cube=ACTIVATION),
            v.CreateCubeRequest(parent=SPACE, cube=_text_cube("checked only"), validate_only=True),
        ],
        _VAULT + "BatchCreateCubes": [
            v.BatchCreateCubesRequest(
                parent=SPACE,
                requests=[
                    v.CreateCubeRequest(cube=_text_cube("one"), vector=VECTOR),
                    v.CreateCubeRequest(cube=ACTIVATION),
                ],
            )
        ],
        _VAULT + "GetCube": [v.GetCubeRequest(name=CUBE)],
        _VAULT + "ListCubes": [v.ListCubesRequest(parent=SPACE, page_size=2, filter="priority >= 0")],
        _VAULT + "UpdateCube": [
            v.UpdateCubeRequest(cube=tagged, update_mask=field_mask_pb2.FieldMask(paths=["tags", "labels"])),
            v.UpdateCubeRequest(cube=tagged, update_mask=field_mask_pb2.FieldMask(paths=["expire_time", "priority"])),
            v.UpdateCubeRequest(
                cube=tagged, update_mask=field_mask_pb2.FieldMask(paths=["plaintext.text"]), vector=VECTOR
            ),
        ],
        _VAULT + "DeleteCube": [v.DeleteCubeRequest(name=CUBE)],
        _VAULT + "SearchCubes": [
            v.SearchCubesRequest(parent=SPACE, vector=VECTOR, top_k=3),
            v.SearchCubesRequest(parent=SPACE, text="a memory", filter="priority >= 0"),
        ],
        _VAULT + "ReadPayload": [v.ReadPayloadRequest(name=BLOB_CUBE, read_offset=1, read_limit=10)],
        _GOV + "CreateSpace": [
            g.CreateSpaceRequest(space_id="other", space={"display_name": "d", "labels": {"k": "v"}})
        ],
        _GOV + "GetSpace": [g.GetSpaceRequest(name=SPACE)],
        _GOV + "ListSpaces": [g.ListSpacesRequest(page_size=1)],
        _GOV + "DeleteSpace": [g.DeleteSpaceRequest(name=SPACE)],
        _GOV + "CreatePrincipal": [
            g.CreatePrincipalRequest(
                principal_id="someone", principal={"kind": principal_pb2.Principal.KIND_AGENT, "display_name": "d"}
            )
        ],
        _GOV + "GetPrincipal": [g.GetPrincipalRequest(name=FUZZER)],
        _GOV + "ListPrincipals": [g.ListPrincipalsRequest(page_size=1)],
        _GOV + "DeletePrincipal": [g.DeletePrincipalRequest(name=FUZZER)],
        _GOV + "CreateCredential": [
            g.CreateCredentialRequest(parent=FUZZER, credential={"description": "d", "expire_time": FUTURE})
        ],
        _GOV + "RevokeCredential": [g.RevokeCredentialRequest(name=credential)],
        _GOV + "GetAccessPolicy": [_request(_GOV + "GetAccessPolicy", resource=SPACE)],
        _GOV + "SetAccessPolicy": [
            _request(
                _GOV + "SetAccessPolicy",
                resource=SPACE,
                policy={"bindings": [{"role": 3, "members": [ADMIN]}, {"role": 1, "members": [FUZZER]}]},
            )
        ],
        _GOV + "ListAuditEvents": [g.ListAuditEventsRequest(page_size=2, filter="sequence > 0")],
        _GOV + "VerifyAuditLog": [g.VerifyAuditLogRequest()],
        WRITE_PAYLOAD: [v.WritePayloadRequest(parent=SPACE, expected_digest=PAYLOAD_DIGEST, data=PAYLOAD)],
    }


# -- the server -----------------------------------------------------------------------------


class _Errors(logging.Handler):
    """Keeps the server's error log records, to show the traceback of a failing example."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def last(self) -> str:
        if not self.records:
            return "(nothing in the server log)"
        formatter = logging.Formatter("%(name)s: %(message)s")
        return formatter.format(self.records[-1])


#: Calls that would end the fuzz's own access: it must stay an admin to reach the handlers.
GUARDS: dict[str, Callable[[Message], bool]] = {
    _GOV + "DeletePrincipal": lambda request: getattr(request, "name", "") != ADMIN,
}
#: Calls after which the fuzz world is put back together.
DESTRUCTIVE = frozenset({_VAULT + "UpdateCube", _VAULT + "DeleteCube", _GOV + "DeleteSpace", _GOV + "DeletePrincipal"})


def allowed(path: str, request: Message) -> bool:
    guard = GUARDS.get(path)
    return guard is None or guard(request)


class Fuzz:
    """The fuzz world on a server of its own: space S with a plaintext and a blob cube, principal ``fuzzer``."""

    def __init__(self, server: MemosServer, channel: grpc.Channel, errors: _Errors) -> None:
        self.server = server
        self.channel = channel
        self.metadata = (("authorization", f"Bearer {admin_token(server)}"),)
        self.errors = errors
        self.credential = ""
        #: How often each status came back: shows whether the fuzz gets past validation.
        self.statuses: dict[str, int] = {}

    def __repr__(self) -> str:  # hypothesis prints it with a failing example: keep the token out
        return f"Fuzz(server at {self.server.address})"

    def call(self, path: str, request: Message) -> bytes:
        call = self.channel.unary_unary(path, type(request).SerializeToString, None)
        result: bytes = call(request, metadata=self.metadata, timeout=CALL_TIMEOUT)
        return result

    def health(self) -> int:
        stub = health_pb2_grpc.HealthStub(self.channel)
        status: int = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT).status
        return status

    def send(self, path: str, payload: bytes | Sequence[bytes]) -> tuple[grpc.StatusCode, str]:
        """Sends serialized request bytes (a list of them for a client stream) and returns the status.

        No serializers: the bytes go on the wire as they are, whether or not they are a request.
        """
        method = METHODS[path]
        options: dict[str, Any] = {"metadata": self.metadata, "timeout": CALL_TIMEOUT}
        try:
            if method.client_streaming:
                assert not isinstance(payload, bytes)
                self.channel.stream_unary(path, None, None)(iter(payload), **options)
            elif method.server_streaming:
                for _ in self.channel.unary_stream(path, None, None)(payload, **options):
                    pass
            else:
                self.channel.unary_unary(path, None, None)(payload, **options)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
        return Code.OK, ""

    def check(self, path: str, payload: bytes | Sequence[bytes]) -> None:
        """The property: no forbidden status, and the server still SERVING afterwards."""
        seen = len(self.errors.records)
        code, details = self.send(path, payload)
        self.statuses[code.name] = self.statuses.get(code.name, 0) + 1
        log = self.errors.last() if len(self.errors.records) > seen else "(nothing in the server log)"
        assert code not in FORBIDDEN, f"{short(path)} answered {code.name}: {details}\nserver log: {log}"
        assert self.health() == health_pb2.HealthCheckResponse.SERVING
        if path in DESTRUCTIVE:
            self.restore()

    def exists(self, path: str, request: Message) -> bool:
        try:
            self.call(path, request)
        except grpc.RpcError as error:
            assert error.code() is Code.NOT_FOUND, error
            return False
        return True

    def restore(self) -> None:
        """Puts back what an example may have deleted or expired: the space and its cubes, the fuzzer."""
        cubes = [v.GetCubeRequest(name=name) for name in (CUBE, BLOB_CUBE)]
        if not all(self.exists(_VAULT + "GetCube", request) for request in cubes):
            # A cube updated to expire is gone but keeps its id: start the space afresh.
            if self.exists(_GOV + "GetSpace", g.GetSpaceRequest(name=SPACE)):
                self.call(_GOV + "DeleteSpace", g.DeleteSpaceRequest(name=SPACE, force=True))
            self.call(_GOV + "CreateSpace", g.CreateSpaceRequest(space_id=SPACE_ID))
            upload = self.channel.stream_unary(WRITE_PAYLOAD, v.WritePayloadRequest.SerializeToString, None)
            stream = [v.WritePayloadRequest(parent=SPACE, expected_digest=PAYLOAD_DIGEST, data=PAYLOAD)]
            upload(iter(stream), metadata=self.metadata, timeout=CALL_TIMEOUT)
            for cube_id, cube in (("known", _text_cube("a known memory")), ("blob", ACTIVATION)):
                self.call(_VAULT + "CreateCube", v.CreateCubeRequest(parent=SPACE, cube_id=cube_id, cube=cube))
        if not self.credential or not self.exists(_GOV + "GetPrincipal", g.GetPrincipalRequest(name=FUZZER)):
            self.call(_GOV + "CreatePrincipal", g.CreatePrincipalRequest(principal_id="fuzzer"))
            credential = principal_pb2.Credential.FromString(
                self.call(_GOV + "CreateCredential", g.CreateCredentialRequest(parent=FUZZER))
            )
            self.credential = credential.name

    def seeds(self, path: str) -> list[Message]:
        """Valid requests for ``path``; an empty one for a method added since this file was written."""
        return seed_requests(self.credential).get(path) or [request_class(path)()]


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Fuzz]:
    server = start_server(tmp_path_factory.mktemp("fuzz"), embedder)
    errors = _Errors()
    loggers = [logging.getLogger("memos_grpc"), logging.getLogger("grpc")]
    for logger in loggers:
        logger.addHandler(errors)
    channel = grpc.insecure_channel(server.address)
    try:
        fuzz = Fuzz(server, channel, errors)
        fuzz.restore()
        yield fuzz
        # The fuzz kept its admin access to the end, so every example reached the handlers.
        fuzz.call(_GOV + "ListPrincipals", g.ListPrincipalsRequest())
        print(f"\nfuzz statuses: {fuzz.statuses}")
    finally:
        channel.close()
        for logger in loggers:
            logger.removeHandler(errors)
        server.stop(grace=1)


# -- the properties --------------------------------------------------------------------------


#: Inputs the fuzz has found crashing the server (INTERNAL), each minimal: checked on every run.
_DEEP_TOKEN = _b64(b"[" * 3000)
_PLAINTEXT_TYPE_99 = cube_pb2.MemCube(type=99, plaintext=cube_pb2.PlaintextPayload(text="x"))  # type: ignore[arg-type]
FOUND: list[tuple[str, str, Message | bytes | list[bytes]]] = [
    ("unknown memory type", _VAULT + "CreateCube", v.CreateCubeRequest(parent=SPACE, cube=_PLAINTEXT_TYPE_99)),
    (
        "unknown memory type, validate only",
        _VAULT + "CreateCube",
        v.CreateCubeRequest(parent=SPACE, cube=_PLAINTEXT_TYPE_99, validate_only=True),
    ),
    (
        "unknown memory type in a batch",
        _VAULT + "BatchCreateCubes",
        v.BatchCreateCubesRequest(parent=SPACE, requests=[v.CreateCubeRequest(cube=_PLAINTEXT_TYPE_99)]),
    ),
    (
        "cube expire_time after 9999",
        _VAULT + "CreateCube",
        v.CreateCubeRequest(
            parent=SPACE, cube=cube_pb2.MemCube(plaintext={"text": "x"}, expire_time={"seconds": 253_402_300_800})
        ),
    ),
    (
        "cube expire_time with negative nanos",
        _VAULT + "BatchCreateCubes",
        v.BatchCreateCubesRequest(
            parent=SPACE,
            requests=[v.CreateCubeRequest(cube=cube_pb2.MemCube(plaintext={"text": "x"}, expire_time={"nanos": -1}))],
        ),
    ),
    (
        "updated expire_time with negative nanos",
        _VAULT + "UpdateCube",
        v.UpdateCubeRequest(
            cube=cube_pb2.MemCube(name=CUBE, expire_time={"nanos": -1}), update_mask={"paths": ["expire_time"]}
        ),
    ),
    (
        "credential expire_time with negative nanos",
        _GOV + "CreateCredential",
        g.CreateCredentialRequest(parent=FUZZER, credential={"expire_time": {"nanos": -1}}),
    ),
    ("deeply nested page token, spaces", _GOV + "ListSpaces", g.ListSpacesRequest(page_token=_DEEP_TOKEN)),
    ("deeply nested page token, cubes", _VAULT + "ListCubes", v.ListCubesRequest(parent=SPACE, page_token=_DEEP_TOKEN)),
    ("deeply nested page token, principals", _GOV + "ListPrincipals", g.ListPrincipalsRequest(page_token=_DEEP_TOKEN)),
    ("deeply nested page token, audit", _GOV + "ListAuditEvents", g.ListAuditEventsRequest(page_token=_DEEP_TOKEN)),
    (
        "audit page token with a key that is no number",
        _GOV + "ListAuditEvents",
        g.ListAuditEventsRequest(page_token=encode_token("abc", "audit", "")),
    ),
    ("undecodable request", _GOV + "GetSpace", b"\xff"),
    (
        "undecodable second stream message",
        WRITE_PAYLOAD,
        [v.WritePayloadRequest(parent=SPACE).SerializeToString(), b"\xff"],
    ),
]


@pytest.mark.parametrize(("path", "request_"), [f[1:] for f in FOUND], ids=[f[0] for f in FOUND])
def test_inputs_the_fuzz_found_never_crash_the_server(
    fuzz: Fuzz, path: str, request_: Message | bytes | list[bytes]
) -> None:
    fuzz.check(path, request_.SerializeToString() if isinstance(request_, Message) else request_)


@pytest.mark.parametrize("path", UNARY, ids=[short(p) for p in UNARY])
@FUZZ_SETTINGS
@given(data=st.data())
def test_random_requests_never_crash_the_server(fuzz: Fuzz, path: str, data: st.DataObject) -> None:
    """Fully random requests, and valid ones with a few fields at any depth made hostile."""
    strategy = st.one_of(REQUESTS[path], mutated(fuzz.seeds(path)), mutated(fuzz.seeds(path)))
    request = data.draw(shown(strategy), label="request").message
    assume(allowed(path, request))
    fuzz.check(path, request.SerializeToString())


@pytest.mark.parametrize("path", UNARY, ids=[short(p) for p in UNARY])
@settings(FUZZ_SETTINGS, max_examples=20)
@given(data=st.data())
def test_raw_bytes_that_decode_never_crash_the_server(fuzz: Fuzz, path: str, data: st.DataObject) -> None:
    raw = data.draw(decodable_bytes(path), label="raw request bytes")
    assume(allowed(path, request_class(path).FromString(raw)))
    fuzz.check(path, raw)


@FUZZ_SETTINGS
@given(data=st.data())
def test_random_write_payload_streams_never_crash_the_server(fuzz: Fuzz, data: st.DataObject) -> None:
    strategy = st.one_of(write_streams(), st.lists(mutated(fuzz.seeds(WRITE_PAYLOAD)), max_size=3))
    stream = data.draw(strategy.map(lambda messages: [Shown(m) for m in messages]), label="stream")
    fuzz.check(WRITE_PAYLOAD, [item.message.SerializeToString() for item in stream])


@settings(FUZZ_SETTINGS, max_examples=100)
@given(path=st.sampled_from(sorted(METHODS)), raw=st.binary(max_size=512))
def test_arbitrary_bytes_never_crash_the_server(fuzz: Fuzz, path: str, raw: bytes) -> None:
    """Bytes that are not a request at all must be refused (INVALID_ARGUMENT), not crash the call."""
    fuzz.check(path, [raw] if METHODS[path].client_streaming else raw)
