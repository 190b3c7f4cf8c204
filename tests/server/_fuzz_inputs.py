"""Inputs for the fuzz tests: the methods, pools of near-valid values, and hypothesis strategies."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pool, field_mask_pb2, message_factory, text_format, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc.server.app import REGISTERED_SERVICES
from memos_grpc.store.paging import encode_token
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
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    phases=_PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

#: Every service the server registers (its own, health, reflection): test_public_services checks that
#: reflection on a live server lists exactly these, so a service added to the server is fuzzed at once.
SERVICES = tuple(descriptor_pool.Default().FindServiceByName(name) for name in REGISTERED_SERVICES)
METHODS: dict[str, MethodDescriptor] = {
    f"/{service.full_name}/{method.name}": method for service in SERVICES for method in service.methods
}
#: Every method with a single request message (unary, and server streams such as ReadPayload).
UNARY = sorted(path for path, method in METHODS.items() if not method.client_streaming)
WRITE_PAYLOAD = "/memos.v1.VaultService/WritePayload"
#: Client (and bidirectional) streams but WritePayload, which has a strategy of its own.
CLIENT_STREAMS = sorted(path for path, method in METHODS.items() if method.client_streaming and path != WRITE_PAYLOAD)
#: Server streams that stay open by design (watches): the fuzz reads the first answer, then hangs up.
ENDLESS = frozenset({"/grpc.health.v1.Health/Watch", "/memos.v1.SchedulerService/WatchOperation"})
#: Server streams that follow a log and may send nothing for ever: the fuzz waits for their headers (sent at once
#: when the call is accepted) or their error, then hangs up.
FOLLOWING = frozenset({"/memos.v1.MarketplaceService/Subscribe"})
IMPORT_FROM_PEER = "/memos.v1.InterchangeService/ImportFromPeer"
UPDATE_TRUST_ROOT = "/memos.v1.GovernanceService/UpdateTrustRoot"
#: Peers the fuzz may name: this machine only, nothing listening (no name lookups, no outside connections).
PEER_TARGETS = ["127.0.0.1:1", "[::1]:1", "127.0.0.1", "127.0.0.1:99999", "", "unix:/nonexistent"]


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
    "listings/fuzz",
    "listings/fuzz/releases/1.0.0",
    "listings/fuzz/releases/01.0.0",
    "listings/fuzz/releases/1.0.0-rc.1+build",
    "licenses/fuzz",
    "listings/",
    "heldLicenses/" + "a" * 64,
    "heldLicenses/" + "A" * 64,
    "heldLicenses/",
    "heldLicenses/" + "a" * 64 + "/x",
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
    "peer_target": PEER_TARGETS,
    "service": ["", *REGISTERED_SERVICES, "memos.v1.NoSuchService"],
    "file_containing_symbol": [*REGISTERED_SERVICES, "memos.v1.MemCube", "memos.v1.Nope", ""],
    "file_by_filename": ["memos/v1/cube.proto", "grpc/health/v1/health.proto", "nope.proto", ""],
    "containing_type": ["memos.v1.MemCube", "google.protobuf.Timestamp", ""],
    "all_extension_numbers_of_type": ["memos.v1.MemCube", "nope", ""],
}


# -- strategies ---------------------------------------------------------------------------

#: The boundary values of each integer type: what test_boundary_numbers sets every numeric field to.
BOUNDARIES: dict[str, list[int]] = {
    "int32": [0, -1, 1, 2**31 - 1, -(2**31)],
    "int64": [0, -1, 2**31, 2**53, 2**63 - 1, -(2**63)],
    "uint32": [0, 2**31, 2**32 - 1],
    "uint64": [0, 2**63 - 1, 2**64 - 1],
    "enum": [-1, 2**31 - 1],
}
INT32 = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([*BOUNDARIES["int32"], 50, 100, 101, 1000, 1001]),
)
INT64 = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([*BOUNDARIES["int64"], 1, 2**32, 4096 * MiB, 4096 * MiB + 1]),
)
UINT32 = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from(BOUNDARIES["uint32"]))
UINT64 = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from(BOUNDARIES["uint64"]))
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


# -- boundary numbers, peers, trust roots ------------------------------------------------

_KINDS = {
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_SINT32: "int32",
    FieldDescriptor.TYPE_SFIXED32: "int32",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_SINT64: "int64",
    FieldDescriptor.TYPE_SFIXED64: "int64",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_FIXED32: "uint32",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_FIXED64: "uint64",
    FieldDescriptor.TYPE_ENUM: "enum",
}


def boundary_requests(seed: Message) -> list[tuple[str, Message]]:
    """``seed`` with one numeric field (at any depth) set to each boundary value of its type, named."""
    requests: list[tuple[str, Message]] = []
    for path in field_paths(seed.DESCRIPTOR):
        fd = path[-1]
        kind = _KINDS.get(fd.type)
        if kind is None or (fd.message_type is not None and fd.message_type.GetOptions().map_entry):
            continue
        for value in BOUNDARIES[kind]:
            label = ".".join(f.name for f in path) + f"={value}"
            requests.append((label, _replace(seed, [(path, [value] if fd.is_repeated else value)])))
    return requests


def confined(path: str, request: Message) -> Message:
    """Keeps ImportFromPeer on this machine: a random peer_target would have the server look names up."""
    if path == IMPORT_FROM_PEER and getattr(request, "peer_target", "") not in PEER_TARGETS:
        request.peer_target = PEER_TARGETS[len(request.peer_target) % len(PEER_TARGETS)]  # type: ignore[attr-defined]
    return request


#: Values for a trust root's numbers and times: at and past every bound, and of the wrong JSON type.
ROOT_NUMBERS: list[Any] = [0, -1, 1, 2, 256, 257, 2**31 - 1, 2**31, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1]
ROOT_NUMBERS += [2**80, -(2**63), True, 1.5, "1", None, [1]]
ROOT_TIMES: list[Any] = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    "10000-01-01T00:00:00Z",
    "2100-01-01T00:00:00",
    "not a time",
    0,
    None,
]
ROOT_NAMES: list[Any] = ["auditor", "", "ADMIN", "node ", "\x00", "\ud800"]
KEY_NAMES: list[Any] = ["n" * 256, "n" * 257, "\ud800", 7, None, {"a": 1}]


def trust_root_documents(document: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``document`` (a trust root) with one to three of its numbers, times, names or role names made hostile."""
    role_names = sorted(document["roles"])
    key_ids = sorted(document["keys"])

    def version(d: dict[str, Any], value: Any) -> None:
        d["version"] = value

    def expires(d: dict[str, Any], value: Any) -> None:
        d["expires"] = value

    def threshold(role: str) -> Any:
        return lambda d, value: d["roles"][role].__setitem__("threshold", value)

    def key_field(kid: str, field: str) -> Any:
        return lambda d, value: d["keys"][kid].__setitem__(field, value)

    def role_name(d: dict[str, Any], value: Any) -> None:
        d["roles"][value] = d["roles"].pop(role_names[0]) if value not in d["roles"] else d["roles"][value]

    slots: list[tuple[Any, list[Any]]] = [(version, ROOT_NUMBERS), (expires, ROOT_TIMES), (role_name, ROOT_NAMES)]
    slots += [(threshold(role), ROOT_NUMBERS) for role in role_names]
    for kid in key_ids:
        slots += [(key_field(kid, field), ROOT_TIMES) for field in ("notBefore", "notAfter", "revokedAt")]
        slots.append((key_field(kid, "name"), KEY_NAMES))

    @st.composite
    def strategy(draw: st.DrawFn) -> dict[str, Any]:
        changed = json.loads(json.dumps(document))
        for slot, values in draw(st.lists(st.sampled_from(slots), min_size=1, max_size=3, unique_by=id)):
            slot(changed, draw(st.sampled_from(values)))
        return changed

    return strategy()
