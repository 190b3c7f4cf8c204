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

The methods are those of every service the server registers
(``REGISTERED_SERVICES``: its own, health and reflection; reflection on a
live server lists exactly these, and each must answer something other than
UNIMPLEMENTED). Beyond the random requests, every method gets bytes no message
decodes (refused INVALID_ARGUMENT), every numeric field of a valid request,
at any depth, gets the boundary values of its type (0, -1, 2^31, 2^63-1,
2^64-1 for uint64...), client and bidirectional streams get random message
sequences, and UpdateTrustRoot gets the next trust root with its numbers,
times and role names at and past the protocol's bounds; after each of those
GetTrustRoot and VerifyBundle must still answer. Watches are read to their
first answer; ImportFromPeer may name only unreachable hosts on this machine.

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

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import pytest
from _fuzz_inputs import (
    ADMIN,
    BLOB_CUBE,
    CALL_TIMEOUT,
    CLIENT_STREAMS,
    CUBE,
    DIMENSION,
    ENDLESS,
    FOLLOWING,
    FORBIDDEN,
    FUZZ_SETTINGS,
    FUZZER,
    IMPORT_FROM_PEER,
    METHODS,
    PAYLOAD,
    PAYLOAD_DIGEST,
    PEER_TARGETS,
    REQUESTS,
    SPACE,
    SPACE_ID,
    UNARY,
    UPDATE_TRUST_ROOT,
    WRITE_PAYLOAD,
    Code,
    Shown,
    _b64,
    boundary_requests,
    confined,
    decodable_bytes,
    mutated,
    request_class,
    short,
    shown,
    trust_root_documents,
    write_streams,
)
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from memos_test_support import admin_token, start_server

from memos_grpc._proto.memos.v1 import cube_pb2, principal_pb2, trust_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import held_license_service_pb2 as held_pb2
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as mkt
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as sch
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1 import witness_service_pb2 as wit
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.interchange.dsse import Envelope, parse_envelope
from memos_grpc.interchange.trust import TRUST_ROOT_PAYLOAD_TYPE
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.server.app import MemosServer
from memos_grpc.store.paging import encode_token
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.note import NoteVerifier, sign_note

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
_INTER, _SCHED = "/memos.v1.InterchangeService/", "/memos.v1.SchedulerService/"
_HEALTH, _REFLECTION = "/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/"
_MARKET, _TLOG = "/memos.v1.MarketplaceService/", "/memos.v1.TransparencyLogService/"
_HELD = "/memos.v1.HeldLicenseService/"
#: The terms of the release the fuzz world holds a license of: imports as often as the fuzz likes.
_HELD_TERMS = '{"license":"MIT","permission":[{"action":"import"}],"maxOfflineSeconds":86400}'
#: The listing the fuzz's marketplace holds, and a release and license name under it (neither exists).
LISTING = "listings/fuzz"
RELEASE = f"{LISTING}/releases/1.0.0"
_NODE_POLICY = i.TrustPolicy(role=trust_pb2.KEY_ROLE_NODE)


def _request(path: str, **fields: Any) -> Message:
    """A request of a method that may not exist in this build (it is then never asked for)."""
    return request_class(path)(**fields) if path in METHODS else g.VerifyAuditLogRequest()


#: The log the fuzz server witnesses (its vkey in ``witness_logs``), so AddCheckpoint's inputs get past the origin.
_LOG_ORIGIN = "fuzz.example.com/log"
_LOG_KEY = SigningKey.from_seed(bytes([7]) * 32)
WITNESSED_LOG = NoteVerifier.for_key(_LOG_ORIGIN, _LOG_KEY.public_key).vkey()


def _witness_seeds() -> list[Message]:
    """The log's first checkpoint (3 entries) and its growth to 5 with the consistency proof."""
    leaves = [merkle.leaf_hash(b"fuzz entry %d" % n) for n in range(5)]

    def note(size: int) -> str:
        body = Checkpoint(_LOG_ORIGIN, size, merkle.root_from_leaves(leaves[:size])).body()
        return sign_note(body, _LOG_ORIGIN, _LOG_KEY)

    def node(level: int, index: int) -> bytes:
        return merkle.root_from_leaves(leaves[index << level : (index + 1) << level])

    return [
        wit.AddCheckpointRequest(old_size=0, checkpoint=note(3)),
        wit.AddCheckpointRequest(
            old_size=3, consistency_proof=merkle.consistency_proof(3, 5, node), checkpoint=note(5)
        ),
    ]


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
        _GOV + "GetTrustRoot": [g.GetTrustRootRequest()],
        _GOV + "CreateSigningKey": [g.CreateSigningKeyRequest(parent=FUZZER)],
        _INTER + "ExportBundle": [
            i.ExportBundleRequest(parent=SPACE),
            i.ExportBundleRequest(parent=SPACE, names=[CUBE]),
        ],
        _INTER + "ImportBundle": [i.ImportBundleRequest(parent=SPACE, trust_policy=_NODE_POLICY, chunk=b"\0" * 512)],
        _INTER + "VerifyBundle": [i.VerifyBundleRequest(trust_policy=_NODE_POLICY, chunk=b"\0" * 512)],
        IMPORT_FROM_PEER: [
            i.ImportFromPeerRequest(parent=SPACE, peer_target=PEER_TARGETS[0], selection={"parent": SPACE}),
            i.ImportFromPeerRequest(parent=SPACE, peer_target=PEER_TARGETS[0], peer_plaintext=True),
        ],
        _SCHED + "Recall": [sch.RecallRequest(parent=SPACE, query="a memory", token_budget=200, max_items=5)],
        _SCHED + "TransformCube": [sch.TransformCubeRequest(parent=SPACE, names=[CUBE], target_type=2)],
        _HEALTH + "Check": [health_pb2.HealthCheckRequest(service=""), health_pb2.HealthCheckRequest(service="x")],
        _HEALTH + "Watch": [health_pb2.HealthCheckRequest(service="memos.v1.VaultService")],
        "/memos.v1.WitnessService/AddCheckpoint": _witness_seeds(),
        _MARKET + "CreateListing": [
            _request(_MARKET + "CreateListing", listing_id="fresh", listing={"title": "t", "tags": ["a"]}),
            _request(_MARKET + "CreateListing", listing_id="fresh", listing={"title": "t"}, validate_only=True),
        ],
        _MARKET + "GetListing": [_request(_MARKET + "GetListing", name=LISTING)],
        _MARKET + "ListListings": [_request(_MARKET + "ListListings", page_size=2, filter='tags:"a"')],
        _MARKET + "SearchListings": [_request(_MARKET + "SearchListings", text="fuzz memories", top_k=3)],
        _MARKET + "UpdateListing": [
            _request(
                _MARKET + "UpdateListing",
                listing={"name": LISTING, "title": "new title"},
                update_mask={"paths": ["title"]},
            )
        ],
        _MARKET + "GetRelease": [_request(_MARKET + "GetRelease", name=RELEASE)],
        _MARKET + "ListReleases": [_request(_MARKET + "ListReleases", parent=LISTING, page_size=2, show_yanked=True)],
        _MARKET + "DownloadRelease": [_request(_MARKET + "DownloadRelease", name=RELEASE)],
        _MARKET + "YankRelease": [_request(_MARKET + "YankRelease", name=RELEASE, reason="broken")],
        _MARKET + "AcquireLicense": [
            _request(
                _MARKET + "AcquireLicense",
                license={"release": RELEASE, "licensee": FUZZER, "licensee_key": "ab" * 32},
            )
        ],
        _MARKET + "GetLicense": [_request(_MARKET + "GetLicense", name="licenses/fuzz")],
        _MARKET + "ListLicenses": [_request(_MARKET + "ListLicenses", page_size=2)],
        _MARKET + "RevokeLicense": [_request(_MARKET + "RevokeLicense", name="licenses/fuzz", reason="r")],
        _MARKET + "Subscribe": [_request(_MARKET + "Subscribe", start_index=0, types=[1], listings=[LISTING])],
        _TLOG + "GetCheckpoint": [_request(_TLOG + "GetCheckpoint")],
        _TLOG + "GetInclusionProof": [_request(_TLOG + "GetInclusionProof", index=0)],
        _TLOG + "GetConsistencyProof": [_request(_TLOG + "GetConsistencyProof", old_size=0)],
        _TLOG + "GetEntries": [_request(_TLOG + "GetEntries", start_index=0, max_entries=3)],
        _REFLECTION + "ServerReflectionInfo": [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="memos.v1.VaultService"),
            reflection_pb2.ServerReflectionRequest(
                file_containing_extension={"containing_type": "memos.v1.MemCube", "extension_number": 1}
            ),
        ],
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
    # The server would connect to (and first look up) whatever host is named: only hosts here, nothing listening.
    IMPORT_FROM_PEER: lambda request: getattr(request, "peer_target", "") in PEER_TARGETS,
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
        #: Seeds made on the server by ``buy``: a licensed import and the held license it made.
        self.held_seeds: dict[str, list[Message]] = {}

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
            if method.client_streaming and method.server_streaming:
                assert not isinstance(payload, bytes)
                for _ in self.channel.stream_stream(path, None, None)(iter(payload), **options):
                    pass
            elif method.client_streaming:
                assert not isinstance(payload, bytes)
                self.channel.stream_unary(path, None, None)(iter(payload), **options)
            elif path in FOLLOWING:  # its headers (sent before any event, which may never come) or its error
                call = self.channel.unary_stream(path, None, None)(payload, **options)
                call.initial_metadata()
                if call.done():  # refused: the error came instead of the headers
                    next(call, None)
                call.cancel()
            elif path in ENDLESS:  # the first answer, or the error instead of it, is the call's outcome
                call = self.channel.unary_stream(path, None, None)(payload, **options)
                next(call, None)
                call.cancel()
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
        if path == UPDATE_TRUST_ROOT:  # whatever the answer, the root in force still serves and verifies
            self.call(_GOV + "GetTrustRoot", g.GetTrustRootRequest())
            verify = [i.VerifyBundleRequest(chunk=b"\0" * 1024).SerializeToString()]
            code, details = self.send(_INTER + "VerifyBundle", verify)
            assert code not in FORBIDDEN, f"VerifyBundle after UpdateTrustRoot: {code.name}: {details}"
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
        if not self.exists(_MARKET + "GetListing", _request(_MARKET + "GetListing", name=LISTING)):
            self.call(
                _MARKET + "CreateListing",
                _request(_MARKET + "CreateListing", listing_id="fuzz", listing={"title": "fuzz memories"}),
            )
        if not self.credential or not self.exists(_GOV + "GetPrincipal", g.GetPrincipalRequest(name=FUZZER)):
            self.call(_GOV + "CreatePrincipal", g.CreatePrincipalRequest(principal_id="fuzzer"))
            credential = principal_pb2.Credential.FromString(
                self.call(_GOV + "CreateCredential", g.CreateCredentialRequest(parent=FUZZER))
            )
            self.credential = credential.name

    def root_document(self) -> dict[str, Any]:
        """The trust root in force as JSON, made the next version: an update the node key may sign alone."""
        message = trust_pb2.TrustRoot.FromString(self.call(_GOV + "GetTrustRoot", g.GetTrustRootRequest()))
        document: dict[str, Any] = json.loads(parse_envelope(message.signed_envelope).payload)
        document["version"] += 1
        return document

    def seeds(self, path: str) -> list[Message]:
        """Valid requests for ``path``; an empty one for a method added since this file was written."""
        if path == UPDATE_TRUST_ROOT:
            return [root_update(self.root_document())]
        if path in self.held_seeds:
            return self.held_seeds[path]
        return seed_requests(self.credential).get(path) or [request_class(path)()]

    def buy(self) -> None:
        """Makes the server its own buyer: a release of the admin's, licensed to the admin and imported once.

        A marketplace's trust root names its own marketplace key and log policy, so its grants import here; the
        licensed import and the held license it makes are then the seeds of ImportBundle and HeldLicenseService.
        """
        md = {"metadata": self.metadata, "timeout": CALL_TIMEOUT}
        governance, market = GovernanceServiceStub(self.channel), MarketplaceServiceStub(self.channel)
        key = governance.CreateSigningKey(g.CreateSigningKeyRequest(parent=ADMIN), **md).key_id
        market.CreateListing(mkt.CreateListingRequest(listing_id="held", listing={"title": "held memories"}), **md)
        info = i.ReleaseInfo(
            listing="listings/held",
            release="1.0.0",
            license="MIT",
            terms_digest="sha256:" + hashlib.sha256(_HELD_TERMS.encode()).hexdigest(),
        )
        export = InterchangeServiceStub(self.channel).ExportBundle(
            i.ExportBundleRequest(parent=SPACE, release=info), **md
        )
        bundle = b"".join(r.chunk for r in export)
        publish = mkt.PublishReleaseRequest(
            parent="listings/held", release_id="1.0.0", terms_json=_HELD_TERMS, chunk=bundle
        )
        release = market.PublishRelease(iter([publish]), **md).release.name
        wanted = mkt.License(release=release, licensee=ADMIN, licensee_key=key)
        license_ = market.AcquireLicense(mkt.AcquireLicenseRequest(license=wanted), **md)
        governance.CreateSpace(g.CreateSpaceRequest(space_id="held"), **md)
        first = i.ImportBundleRequest(
            parent="spaces/held",
            license=i.ReleaseLicense(grant=license_.grant_envelope, proof=license_.tlog_proof),
            chunk=bundle,
        )
        InterchangeServiceStub(self.channel).ImportBundle(iter([first]), **md)
        held = "heldLicenses/" + license_.grant_digest.removeprefix("sha256:")
        self.held_seeds = {
            _INTER + "ImportBundle": [*seed_requests(self.credential)[_INTER + "ImportBundle"], first],
            _HELD + "GetHeldLicense": [held_pb2.GetHeldLicenseRequest(name=held)],
            _HELD + "ListHeldLicenses": [held_pb2.ListHeldLicensesRequest(page_size=1)],
            _HELD + "SyncMarketplaceLog": [held_pb2.SyncMarketplaceLogRequest()],
            _HELD + "ListFollowedLogs": [held_pb2.ListFollowedLogsRequest()],
        }


def root_update(document: dict[str, Any]) -> Message:
    """UpdateTrustRoot of ``document``, unsigned: the server adds its node signature (admin in its root)."""
    envelope = Envelope(TRUST_ROOT_PAYLOAD_TYPE, json.dumps(document).encode())
    return g.UpdateTrustRootRequest(signed_envelope=envelope.to_json(), add_node_signature=True)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Fuzz]:
    # A marketplace too (no witnesses: each checkpoint is published at once), so its methods are fuzzed for real.
    server = start_server(
        tmp_path_factory.mktemp("fuzz"), embedder, witness_logs=WITNESSED_LOG, marketplace_enabled=True
    )
    errors = _Errors()
    loggers = [logging.getLogger("memos_grpc"), logging.getLogger("grpc")]
    for logger in loggers:
        logger.addHandler(errors)
    channel = grpc.insecure_channel(server.address)
    try:
        fuzz = Fuzz(server, channel, errors)
        fuzz.restore()
        fuzz.buy()
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
    (
        "unknown access scope (past a SMALLINT)",
        _VAULT + "CreateCube",
        v.CreateCubeRequest(
            parent=SPACE,
            cube=cube_pb2.MemCube(plaintext={"text": "x"}, access={"scope": 2**31 - 1}),  # type: ignore[dict-item]
        ),
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
    request = confined(path, data.draw(shown(strategy), label="request").message)
    assume(allowed(path, request))
    fuzz.check(path, request.SerializeToString())


@pytest.mark.parametrize("path", UNARY, ids=[short(p) for p in UNARY])
@settings(FUZZ_SETTINGS, max_examples=10)
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
    with contextlib.suppress(DecodeError):  # bytes that do not decode are refused before any handler runs
        assume(allowed(path, request_class(path).FromString(raw)))
    fuzz.check(path, [raw] if METHODS[path].client_streaming else raw)


#: Bytes no request type decodes (a varint, a length or a tag cut short), for every method.
UNDECODABLE = {
    "unfinished varint": b"\xff",
    "length past the end": b"\x0a\x05ab",
    "group never closed": b"\x0b",
    "wire type 7": b"\x0f",
}


@pytest.mark.parametrize("path", sorted(METHODS), ids=[short(p) for p in sorted(METHODS)])
def test_every_method_refuses_undecodable_bytes_as_malformed_request(fuzz: Fuzz, path: str) -> None:
    """Health and reflection too: grpcio itself would answer INTERNAL for a request it cannot decode."""
    for raw in UNDECODABLE.values():
        payload = [raw] if METHODS[path].client_streaming else raw
        fuzz.check(path, payload)
        assert fuzz.send(path, payload)[0] is Code.INVALID_ARGUMENT, f"{short(path)}: {raw!r}"


@pytest.mark.parametrize("path", CLIENT_STREAMS, ids=[short(p) for p in CLIENT_STREAMS])
@settings(FUZZ_SETTINGS, max_examples=15)
@given(data=st.data())
def test_random_client_streams_never_crash_the_server(fuzz: Fuzz, path: str, data: st.DataObject) -> None:
    """Bundle imports and verifications, and reflection's two-way stream: one to three messages of any kind."""
    strategy = st.lists(st.one_of(REQUESTS[path], mutated(fuzz.seeds(path))), min_size=1, max_size=3)
    stream = data.draw(strategy.map(lambda messages: [Shown(m) for m in messages]), label="stream")
    fuzz.check(path, [item.message.SerializeToString() for item in stream])


@pytest.mark.parametrize("path", sorted(METHODS), ids=[short(p) for p in sorted(METHODS)])
def test_boundary_numbers_never_crash_the_server(fuzz: Fuzz, path: str) -> None:
    """Each numeric field of a valid request, at any depth, at each bound of its type: 0, -1, 2^31, 2^63-1, 2^64-1..."""
    for label, request in boundary_requests(fuzz.seeds(path)[0]):
        request = confined(path, request)
        if not allowed(path, request):
            continue
        raw = request.SerializeToString()
        try:
            fuzz.check(path, [raw] if METHODS[path].client_streaming else raw)
        except AssertionError as failure:
            raise AssertionError(f"{label}: {failure}") from None


@settings(FUZZ_SETTINGS, max_examples=30)
@given(data=st.data())
def test_trust_root_documents_never_crash_the_server(fuzz: Fuzz, data: st.DataObject) -> None:
    """The next trust root with its numbers, times and role names at and past their bounds (docs/protocol.md).

    A root refused must change nothing; one accepted must serve GetTrustRoot and VerifyBundle (``check``).
    """
    document = data.draw(trust_root_documents(fuzz.root_document()), label="trust root")
    fuzz.check(UPDATE_TRUST_ROOT, root_update(document).SerializeToString())


#: Trust roots an outside fuzz run found answering INTERNAL (or put in force while answering it), as
#: changes to the next root; test_trust_root.py checks that each is refused TRUST_ROOT_MALFORMED.
FOUND_ROOTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "version 2^80": lambda d: d.__setitem__("version", 2**80),
    "node threshold 2^31": lambda d: d["roles"]["node"].__setitem__("threshold", 2**31),
    "key name with a lone surrogate": lambda d: next(iter(d["keys"].values())).__setitem__("name", "\ud800"),
    "expires after 9999 in UTC": lambda d: d.__setitem__("expires", "9999-12-31T23:59:59-01:00"),
}


@pytest.mark.parametrize("change", FOUND_ROOTS.values(), ids=FOUND_ROOTS.keys())
def test_trust_roots_the_fuzz_found_never_crash_the_server(
    fuzz: Fuzz, change: Callable[[dict[str, Any]], None]
) -> None:
    document = fuzz.root_document()
    change(document)
    fuzz.check(UPDATE_TRUST_ROOT, root_update(document).SerializeToString())


def test_every_method_the_fuzz_knows_is_served(fuzz: Fuzz) -> None:
    """The fuzz's method list is the server's: each answers (if only to refuse), none is UNIMPLEMENTED."""
    unserved = [
        path
        for path in sorted(METHODS)
        if fuzz.send(path, [b""] if METHODS[path].client_streaming else b"")[0] is Code.UNIMPLEMENTED
    ]
    assert unserved == []
