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

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import pytest
from _fuzz_inputs import (
    ADMIN,
    BLOB_CUBE,
    CALL_TIMEOUT,
    CUBE,
    DIMENSION,
    FORBIDDEN,
    FUZZ_SETTINGS,
    FUZZER,
    METHODS,
    PAYLOAD,
    PAYLOAD_DIGEST,
    REQUESTS,
    SPACE,
    SPACE_ID,
    UNARY,
    WRITE_PAYLOAD,
    Code,
    Shown,
    _b64,
    decodable_bytes,
    mutated,
    request_class,
    short,
    shown,
    write_streams,
)
from conftest import start_server
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from memos_test_support import admin_token

from memos_grpc._proto.memos.v1 import cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import MemosServer
from memos_grpc.vault.paging import encode_token

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
