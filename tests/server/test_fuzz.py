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

Besides structured messages, the tests send raw bytes as the serialized
request: bytes that decode as the request type (a real request with random
unknown fields appended, or another message's bytes), and arbitrary bytes.
The client-streaming WritePayload is fuzzed with random message sequences.

Property, for each example: the call ends with any status but INTERNAL,
UNKNOWN or DEADLINE_EXCEEDED (a hang), and afterwards the server still
answers grpc.health.v1 Health.Check with SERVING. A failure shows the server
log's traceback. The fuzz runs as the admin (so authorization never stops an
input early) against a server of this module's own; hypothesis is
derandomized and keeps no example database, so CI runs are reproducible.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from conftest import start_server
from google.protobuf import field_mask_pb2, message_factory, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, assume, given, settings
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

FUZZ_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
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
    _b64(b"[" * 100_000),
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


VECTOR_VALUES = st.one_of(st.lists(FLOAT, max_size=8), _full_vector(), st.just([1.0] * (DIMENSION + 1)))
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


def string_strategy(field_name: str) -> st.SearchStrategy[str]:
    pool = FIELD_POOLS.get(field_name, [])
    options = [st.sampled_from(pool)] if pool else []
    return st.one_of(*options, st.sampled_from(GENERAL), st.text(max_size=40), st.sampled_from(HUGE))


def scalar_strategy(fd: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = FieldDescriptor
    if fd.type == t.TYPE_STRING:
        return string_strategy(fd.name)
    if fd.type == t.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.binary(min_size=32, max_size=32))
    if fd.type == t.TYPE_BOOL:
        return st.booleans()
    if fd.type == t.TYPE_ENUM:
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
def write_streams(draw: st.DrawFn) -> list[v.WritePayloadRequest]:
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
    stream = [first]
    for chunk in chunks[1:]:
        message = draw(st.one_of(st.just(v.WritePayloadRequest()), REQUESTS[WRITE_PAYLOAD]))
        message.data = chunk
        stream.append(message)
    return stream


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
    "/memos.v1.GovernanceService/DeletePrincipal": lambda r: getattr(r, "name", "") != ADMIN,
}


@dataclass
class Fuzz:
    server: MemosServer
    channel: grpc.Channel
    metadata: tuple[tuple[str, str], ...]
    errors: _Errors
    calls: dict[str, int] = field(default_factory=dict)

    def health(self) -> int:
        stub = health_pb2_grpc.HealthStub(self.channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=CALL_TIMEOUT).status

    def send(self, path: str, payload: bytes | Sequence[bytes]) -> tuple[grpc.StatusCode, str]:
        """Sends serialized request bytes (a list of them for a client stream) and returns the status."""
        method = METHODS[path]
        try:
            if method.client_streaming:
                assert not isinstance(payload, bytes)
                self.channel.stream_unary(path)(iter(payload), metadata=self.metadata, timeout=CALL_TIMEOUT)
            elif method.server_streaming:
                for _ in self.channel.unary_stream(path)(payload, metadata=self.metadata, timeout=CALL_TIMEOUT):
                    pass
            else:
                self.channel.unary_unary(path)(payload, metadata=self.metadata, timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
        return Code.OK, ""

    def check(self, path: str, payload: bytes | Sequence[bytes]) -> None:
        """The property: no forbidden status, and the server still SERVING afterwards."""
        seen = len(self.errors.records)
        code, details = self.send(path, payload)
        self.calls[code.name] = self.calls.get(code.name, 0) + 1
        log = self.errors.last() if len(self.errors.records) > seen else "(nothing in the server log)"
        assert code not in FORBIDDEN, f"{short(path)} answered {code.name}: {details}\nserver log: {log}"
        assert self.health() == health_pb2.HealthCheckResponse.SERVING

    def restore(self) -> None:
        """Puts back what a mutating example may have deleted: the space, its cubes, the fuzzer principal."""
        space_missing = not self.exists("/memos.v1.GovernanceService/GetSpace", g.GetSpaceRequest(name=SPACE))
        if space_missing:
            create_world(self.channel, self.metadata)
        for cube_id, name in (("known", CUBE), ("blob", BLOB_CUBE)):
            if space_missing or not self.exists("/memos.v1.VaultService/GetCube", v.GetCubeRequest(name=name)):
                create_cube(self.channel, self.metadata, cube_id)
        if not self.exists("/memos.v1.GovernanceService/GetPrincipal", g.GetPrincipalRequest(name=FUZZER)):
            create_fuzzer(self.channel, self.metadata)

    def exists(self, path: str, request: Message) -> bool:
        try:
            _unary(self.channel, path, request, self.metadata)
        except grpc.RpcError as error:
            assert error.code() is Code.NOT_FOUND, error
            return False
        return True


def _unary(channel: grpc.Channel, path: str, request: Message, metadata: Any) -> bytes:
    call = channel.unary_unary(path, request_serializer=type(request).SerializeToString)
    result: bytes = call(request, metadata=metadata, timeout=CALL_TIMEOUT)
    return result


def create_cube(channel: grpc.Channel, metadata: Any, cube_id: str) -> None:
    if cube_id == "known":
        cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="a known memory"), tags=["t"])
    else:
        blob = cube_pb2.BlobRef(digest=PAYLOAD_DIGEST)
        cube = cube_pb2.MemCube(activation=cube_pb2.ActivationPayload(blob=blob, model_fingerprint="m"))
    request = v.CreateCubeRequest(parent=SPACE, cube_id=cube_id, cube=cube)
    _unary(channel, "/memos.v1.VaultService/CreateCube", request, metadata)


def create_fuzzer(channel: grpc.Channel, metadata: Any) -> None:
    request = g.CreatePrincipalRequest(principal_id="fuzzer", principal=principal_pb2.Principal(display_name="f"))
    _unary(channel, "/memos.v1.GovernanceService/CreatePrincipal", request, metadata)


def create_world(channel: grpc.Channel, metadata: Any) -> None:
    _unary(channel, "/memos.v1.GovernanceService/CreateSpace", g.CreateSpaceRequest(space_id=SPACE_ID), metadata)
    upload = channel.stream_unary(WRITE_PAYLOAD, request_serializer=v.WritePayloadRequest.SerializeToString)
    stream = [v.WritePayloadRequest(parent=SPACE, expected_digest=PAYLOAD_DIGEST, data=PAYLOAD)]
    upload(iter(stream), metadata=metadata, timeout=CALL_TIMEOUT)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Fuzz]:
    server = start_server(tmp_path_factory.mktemp("fuzz"), embedder)
    errors = _Errors()
    loggers = [logging.getLogger("memos_grpc"), logging.getLogger("grpc")]
    for logger in loggers:
        logger.addHandler(errors)
    channel = grpc.insecure_channel(server.address)
    try:
        metadata = (("authorization", f"Bearer {admin_token(server)}"),)
        fuzz = Fuzz(server, channel, metadata, errors)
        fuzz.restore()
        yield fuzz
        # The fuzz kept its admin access to the end, so every example reached the handlers.
        _unary(channel, "/memos.v1.GovernanceService/ListPrincipals", g.ListPrincipalsRequest(), metadata)
    finally:
        channel.close()
        for logger in loggers:
            logger.removeHandler(errors)
        server.stop(grace=1)


# -- the properties --------------------------------------------------------------------------


@pytest.mark.parametrize("path", UNARY, ids=[short(p) for p in UNARY])
@FUZZ_SETTINGS
@given(data=st.data())
def test_random_requests_never_crash_the_server(fuzz: Fuzz, path: str, data: st.DataObject) -> None:
    request = data.draw(REQUESTS[path], label="request")
    assume(GUARDS.get(path, lambda _: True)(request))
    fuzz.check(path, request.SerializeToString())
    if path.endswith(("/DeleteSpace", "/DeleteCube", "/DeletePrincipal")):
        fuzz.restore()


@pytest.mark.parametrize("path", UNARY, ids=[short(p) for p in UNARY])
@settings(FUZZ_SETTINGS, max_examples=15)
@given(data=st.data())
def test_raw_bytes_that_decode_never_crash_the_server(fuzz: Fuzz, path: str, data: st.DataObject) -> None:
    raw = data.draw(decodable_bytes(path), label="raw request bytes")
    assume(GUARDS.get(path, lambda _: True)(request_class(path).FromString(raw)))
    fuzz.check(path, raw)
    if path.endswith(("/DeleteSpace", "/DeleteCube", "/DeletePrincipal")):
        fuzz.restore()


@FUZZ_SETTINGS
@given(stream=write_streams())
def test_random_write_payload_streams_never_crash_the_server(fuzz: Fuzz, stream: list[v.WritePayloadRequest]) -> None:
    fuzz.check(WRITE_PAYLOAD, [message.SerializeToString() for message in stream])


@settings(FUZZ_SETTINGS, max_examples=60)
@given(path=st.sampled_from(sorted(METHODS)), raw=st.binary(max_size=512))
def test_arbitrary_bytes_never_crash_the_server(fuzz: Fuzz, path: str, raw: bytes) -> None:
    """Bytes that are not a request at all must be refused (INVALID_ARGUMENT), not crash the call."""
    fuzz.check(path, [raw] if METHODS[path].client_streaming else raw)
