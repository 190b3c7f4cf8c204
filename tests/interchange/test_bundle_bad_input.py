"""Bad input to ImportBundle and VerifyBundle through a real server: each refused with its own reason, nothing kept.

Most bundles are signed with the server's own node key, so the signature is good and the content is the attack.
Every refusal is checked for: the exact reason, no cube and no blob imported, no temporary file left, an audit event.
"""

from __future__ import annotations

import hashlib
import tracemalloc
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from memos_grpc._proto.memos.v1 import (
    audit_pb2,
    governance_service_pb2,
    governance_service_pb2_grpc,
    interchange_service_pb2,
    interchange_service_pb2_grpc,
    vault_service_pb2,
    vault_service_pb2_grpc,
)
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.interchange.bundle import BundleLimits, TrustPolicy, verify_bundle
from memos_grpc.interchange.statement import Subject, blob_entry_name, cube_entry_name
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.server.app import MemosServer
from tests.interchange._bundles import (
    Entry,
    Placed,
    activation_cube,
    blob_entry,
    bundle,
    cube_entry,
    head,
    huge_header,
    layout,
    lazy_blob_bundle,
    leftover_parts,
    node_key,
    plaintext_cube,
    provenance_id,
    sha256_digest,
    trusted,
)
from tests.memos_test_support import admin_token, authorized_channel, reason_of, start_server, stored_blobs

MiB = 1024 * 1024
TB = 10**12
IMPORT_METHOD = "/memos.v1.InterchangeService/ImportBundle"
#: The entry limit of the small server; a statement may list two fewer (the marker and envelope are entries too).
SMALL_MAX_ENTRIES = 100
Request = interchange_service_pb2.ImportBundleRequest


class Target:
    """A running server with admin stubs to it, and the node key it trusts."""

    def __init__(self, server: MemosServer, channel: grpc.Channel) -> None:
        self.server = server
        self.data_dir: Path = server.settings.data_dir
        self.key = node_key(server)
        self.interchange = interchange_service_pb2_grpc.InterchangeServiceStub(channel)
        self.vault = vault_service_pb2_grpc.VaultServiceStub(channel)
        self.governance = governance_service_pb2_grpc.GovernanceServiceStub(channel)

    def new_space(self) -> str:
        space_id = "s" + uuid.uuid4().hex[:12]
        return self.governance.CreateSpace(governance_service_pb2.CreateSpaceRequest(space_id=space_id)).name

    def import_events(self, filter_text: str) -> list[audit_pb2.AuditEvent]:
        request = governance_service_pb2.ListAuditEventsRequest(
            page_size=1000, filter=f'method = "{IMPORT_METHOD}" AND {filter_text}'
        )
        return list(self.governance.ListAuditEvents(request).events)


@pytest.fixture(scope="module")
def target(server: MemosServer) -> Iterator[Target]:
    with authorized_channel(server.address, admin_token(server)) as channel:
        yield Target(server, channel)


@pytest.fixture(scope="module")
def small_target(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Target]:
    """A server that takes bundles of at most SMALL_MAX_ENTRIES entries."""
    running = start_server(tmp_path_factory.mktemp("small"), embedder, bundle_max_entries=SMALL_MAX_ENTRIES)
    try:
        with authorized_channel(running.address, admin_token(running)) as channel:
            yield Target(running, channel)
    finally:
        running.stop(grace=1)


@dataclass(frozen=True)
class Kit:
    """What the cases build from: the trusted key, a bundle the server exported, and the server's text limit."""

    key: SigningKey
    exported: bytes
    max_text_bytes: int

    def placed(self, prefix: str) -> Placed:
        """The first exported entry whose name starts with ``prefix``."""
        return next(p for p in layout(self.exported) if p.name.startswith(prefix))


@pytest.fixture(scope="module")
def kit(target: Target) -> Kit:
    """A real export of a space holding a plaintext cube and an activation cube with a 200 kB blob."""
    source = target.new_space()
    blob = uuid.uuid4().bytes * (200_000 // 16)

    def upload() -> Iterator[vault_service_pb2.WritePayloadRequest]:
        yield vault_service_pb2.WritePayloadRequest(
            parent=source, expected_digest=sha256_digest(blob), expected_size=len(blob)
        )
        for start in range(0, len(blob), 65536):
            yield vault_service_pb2.WritePayloadRequest(data=blob[start : start + 65536])

    target.vault.WritePayload(upload())
    for cube in (plaintext_cube("the exported memory"), activation_cube(blob)):
        target.vault.CreateCube(vault_service_pb2.CreateCubeRequest(parent=source, cube=cube))
    request = interchange_service_pb2.ExportBundleRequest(parent=source)
    exported = b"".join(r.chunk for r in target.interchange.ExportBundle(request))
    names = [p.name for p in layout(exported)]
    assert names[2].startswith("cubes/") and names[-1].startswith("blobs/") and len(names) == 5, names
    return Kit(node_key(target.server), exported, target.server.settings.max_text_bytes)


# -- the bundles ---------------------------------------------------------------------------------------------------


def cut(at: Callable[[Kit], int]) -> Callable[[Kit], bytes]:
    """The exported bundle cut short at an offset."""
    return lambda kit: kit.exported[: at(kit)]


def unique_blob(size: int = 1000) -> bytes:
    return (uuid.uuid4().bytes * (size // 16 + 1))[:size]


def huge_unlisted(kit: Kit) -> bytes:
    return bundle(kit.key, [huge_header(blob_entry_name(sha256_digest(b"huge")), TB)], listed=[], tail=b"")


def huge_listed(kit: Kit) -> bytes:
    """A trusted signer lists a 1 TB blob and sends its header; the size limit still applies."""
    hex_digest = hashlib.sha256(b"huge").hexdigest()
    name = blob_entry_name("sha256:" + hex_digest)
    return bundle(kit.key, [huge_header(name, TB)], listed=[Subject(name, hex_digest, TB)], tail=b"")


def too_many_listed(kit: Kit) -> bytes:
    subjects = [
        Subject(blob_entry_name(sha256_digest(b"%d" % i)), hashlib.sha256(b"%d" % i).hexdigest(), 1)
        for i in range(SMALL_MAX_ENTRIES - 1)
    ]
    return bundle(kit.key, [], listed=subjects)


def too_many_sent(kit: Kit) -> bytes:
    """As many listed blobs as the limit allows, all sent, then one of them again: the entry count is checked first."""
    blobs = [blob_entry(unique_blob(16)) for _ in range(SMALL_MAX_ENTRIES - 2)]
    return bundle(kit.key, [*blobs, blobs[0]], listed=blobs)


def duplicate_cube(kit: Kit) -> bytes:
    entry = cube_entry(plaintext_cube("twice"))
    return bundle(kit.key, [entry, entry], listed=[entry])


def listed_blob_never_comes(kit: Kit) -> bytes:
    blob = unique_blob()
    cube = cube_entry(activation_cube(blob))
    return bundle(kit.key, [cube], listed=[cube, blob_entry(blob)])


def cube_blob_not_carried(kit: Kit) -> bytes:
    return bundle(kit.key, [cube_entry(activation_cube(unique_blob()))])


def extra_unlisted_entry(kit: Kit) -> bytes:
    cube = cube_entry(plaintext_cube("listed"))
    return bundle(kit.key, [cube, blob_entry(unique_blob())], listed=[cube])


def not_a_memcube(kit: Kit) -> bytes:
    garbage = b"not a memcube \xff\xff\xff"  # 'n' opens a field of wire type 6, which does not exist
    return bundle(kit.key, [Entry(cube_entry_name(provenance_id()), garbage)])


def provenance_mismatch(kit: Kit) -> bytes:
    cube = plaintext_cube("misnamed")
    return bundle(kit.key, [Entry(cube_entry_name(provenance_id()), cube.SerializeToString())])


def text_too_long(kit: Kit) -> bytes:
    return bundle(kit.key, [cube_entry(plaintext_cube("x" * (kit.max_text_bytes + 1)))])


def last_blob_tampered(kit: Kit) -> bytes:
    """Two good cubes, a good blob, then a last blob whose bytes differ from what the statement signs."""
    first, last = unique_blob(), unique_blob()
    entries = [
        cube_entry(plaintext_cube("kept nowhere")),
        cube_entry(activation_cube(first)),
        cube_entry(activation_cube(last)),
        blob_entry(first),
        blob_entry(last),
    ]
    tampered = Entry(entries[-1].name, bytes([last[0] ^ 1]) + last[1:])
    return bundle(kit.key, [*entries[:-1], tampered], listed=entries)


def size_lie(kit: Kit) -> bytes:
    entry = cube_entry(plaintext_cube("short"))
    subject = entry.subject
    return bundle(kit.key, [entry], listed=[Subject(subject.name, subject.sha256, subject.size + 1)])


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Kit], bytes]
    reason: str
    small: bool = False


def _end(kit: Kit) -> int:
    return len(kit.exported)


CASES = [
    Case("cut-nothing", cut(lambda k: 0), "BUNDLE_TRUNCATED"),
    Case("cut-marker-header", cut(lambda k: 100), "BUNDLE_TRUNCATED"),
    Case("cut-marker-data", cut(lambda k: 513), "BUNDLE_TRUNCATED"),
    Case("cut-envelope-header", cut(lambda k: k.placed("statement").header + 300), "BUNDLE_TRUNCATED"),
    Case("cut-envelope-data", cut(lambda k: k.placed("statement").data + 100), "BUNDLE_TRUNCATED"),
    Case("cut-cube-data", cut(lambda k: k.placed("cubes/").data + k.placed("cubes/").size // 2), "BUNDLE_TRUNCATED"),
    Case("cut-cube-padding", cut(lambda k: k.placed("cubes/").end - 1), "BUNDLE_TRUNCATED"),
    Case("cut-blob-data", cut(lambda k: k.placed("blobs/").data + k.placed("blobs/").size // 2), "BUNDLE_TRUNCATED"),
    Case("cut-between-entries", cut(lambda k: k.placed("blobs/").header), "BUNDLE_TRUNCATED"),
    Case("cut-before-end-marker", cut(lambda k: _end(k) - 1024), "BUNDLE_TRUNCATED"),
    Case("cut-inside-end-marker", cut(lambda k: _end(k) - 512), "BUNDLE_TRUNCATED"),
    Case("1tb-unlisted", huge_unlisted, "BUNDLE_ENTRY_TOO_LARGE"),
    Case("1tb-listed", huge_listed, "BUNDLE_ENTRY_TOO_LARGE"),
    Case("statement-over-max-entries", too_many_listed, "BUNDLE_TOO_MANY_ENTRIES", small=True),
    Case("stream-over-max-entries", too_many_sent, "BUNDLE_TOO_MANY_ENTRIES", small=True),
    Case("duplicate-cube", duplicate_cube, "BUNDLE_DUPLICATE_ENTRY"),
    Case("listed-blob-missing", listed_blob_never_comes, "BUNDLE_MISSING_ENTRY"),
    Case("cube-blob-not-carried", cube_blob_not_carried, "BUNDLE_BLOB_MISSING"),
    Case("unlisted-entry", extra_unlisted_entry, "BUNDLE_UNLISTED_ENTRY"),
    Case("cube-not-memcube", not_a_memcube, "BUNDLE_CUBE_INVALID"),
    Case("cube-provenance-mismatch", provenance_mismatch, "BUNDLE_CUBE_INVALID"),
    Case("cube-text-too-long", text_too_long, "BUNDLE_CUBE_INVALID"),
    Case("last-blob-digest-mismatch", last_blob_tampered, "BUNDLE_DIGEST_MISMATCH"),
    Case("size-lie", size_lie, "BUNDLE_SIZE_MISMATCH"),
]


# -- calling the server --------------------------------------------------------------------------------------------


def pieces(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


def import_requests(parent: str, chunks: Iterable[bytes], **first: object) -> Iterator[Request]:
    yield Request(parent=parent, **first)  # type: ignore[arg-type]
    for chunk in chunks:
        yield Request(chunk=chunk)


def refused_import(target: Target, requests: Iterator[Request]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        target.interchange.ImportBundle(requests)
    return caught.value


def verification(target: Target, chunks: Iterable[bytes]) -> interchange_service_pb2.BundleVerification:
    def requests() -> Iterator[interchange_service_pb2.VerifyBundleRequest]:
        yield interchange_service_pb2.VerifyBundleRequest(trust_policy=interchange_service_pb2.TrustPolicy())
        for chunk in chunks:
            yield interchange_service_pb2.VerifyBundleRequest(chunk=chunk)

    return target.interchange.VerifyBundle(requests()).verification


def assert_nothing_kept(target: Target, space: str, blobs_before: set[str]) -> None:
    listed = target.vault.ListCubes(vault_service_pb2.ListCubesRequest(parent=space))
    assert not listed.cubes, [c.name for c in listed.cubes]
    assert stored_blobs(target.server) == blobs_before
    assert leftover_parts(target.data_dir) == []


def assert_audited(target: Target, space: str, reason: str) -> None:
    events = target.import_events(f'resource = "{space}"')
    assert [(e.outcome, e.reason) for e in events] == [(audit_pb2.AuditEvent.OUTCOME_FAILED, reason)]


# -- the tests -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_bundle_is_refused_and_nothing_is_kept(
    case: Case, kit: Kit, request: pytest.FixtureRequest, target: Target
) -> None:
    where: Target = request.getfixturevalue("small_target") if case.small else target
    data = case.build(Kit(where.key, kit.exported, kit.max_text_bytes))
    space = where.new_space()
    blobs_before = stored_blobs(where.server)
    error = refused_import(where, import_requests(space, pieces(data)))
    assert (error.code(), reason_of(error)) == (grpc.StatusCode.INVALID_ARGUMENT, case.reason), error.details()
    assert_nothing_kept(where, space, blobs_before)
    assert_audited(where, space, case.reason)
    # VerifyBundle makes the same checks, cube by cube, and reports rather than refuses.
    report = verification(where, pieces(data))
    assert (report.valid, report.reason) == (False, case.reason), report.message
    assert leftover_parts(where.data_dir) == []


def test_the_exported_bundle_itself_is_accepted(kit: Kit, target: Target) -> None:
    """The cuts above are of a bundle the server takes whole, so only the cut makes them fail."""
    space = target.new_space()
    response = target.interchange.ImportBundle(import_requests(space, pieces(kit.exported)))
    assert response.created_count == 2 and response.verification.valid


def test_a_bundle_built_here_is_accepted(kit: Kit, target: Target) -> None:
    """The builder's bundles are good until a case breaks them: one with a cube and its blob imports."""
    blob = unique_blob()
    data = bundle(kit.key, [cube_entry(activation_cube(blob)), blob_entry(blob)])
    space = target.new_space()
    response = target.interchange.ImportBundle(import_requests(space, pieces(data)))
    assert response.created_count == 1 and response.verification.valid
    assert target.server.vault.context.blobs.exists(sha256_digest(blob))


def test_the_small_server_takes_a_bundle_at_its_entry_limit(small_target: Target) -> None:
    """The entry-limit cases go one past the limit: exactly at it, the same server verifies the bundle."""
    blobs = [blob_entry(unique_blob(16)) for _ in range(SMALL_MAX_ENTRIES - 2)]
    report = verification(small_target, pieces(bundle(small_target.key, blobs)))
    assert report.valid, report.message
    assert report.blob_count == SMALL_MAX_ENTRIES - 2


@dataclass(frozen=True)
class RequestCase:
    id: str
    #: Makes the request stream from the target space and a good bundle.
    requests: Callable[[str, bytes], Iterator[Request]]
    code: grpc.StatusCode
    reason: str


def _empty(space: str, data: bytes) -> Iterator[Request]:
    return iter([])


def _late_header(field: str, value: object) -> Callable[[str, bytes], Iterator[Request]]:
    def requests(space: str, data: bytes) -> Iterator[Request]:
        half = len(data) // 2
        yield Request(parent=space, chunk=data[:half])
        yield Request(chunk=data[half:], **{field: value})  # type: ignore[arg-type]

    return requests


REQUEST_CASES = [
    RequestCase("empty-stream", _empty, grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_STREAM"),
    RequestCase(
        "late-parent", _late_header("parent", "spaces/other"), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_STREAM"
    ),
    RequestCase(
        "late-conflict-policy",
        _late_header("conflict_policy", interchange_service_pb2.CONFLICT_POLICY_REPLACE),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_STREAM",
    ),
    RequestCase(
        "late-trust-policy",
        _late_header("trust_policy", interchange_service_pb2.TrustPolicy()),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_STREAM",
    ),
    RequestCase(
        "unknown-conflict-policy",
        lambda space, data: import_requests(space, pieces(data), conflict_policy=99),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ENUM",
    ),
    RequestCase(
        "missing-space",
        lambda space, data: import_requests(space + "-gone", pieces(data)),
        grpc.StatusCode.NOT_FOUND,
        "SPACE_NOT_FOUND",
    ),
]


@pytest.mark.parametrize("case", REQUEST_CASES, ids=[c.id for c in REQUEST_CASES])
def test_bad_import_request_is_refused(case: RequestCase, kit: Kit, target: Target) -> None:
    data = bundle(kit.key, [cube_entry(plaintext_cube("a good bundle, badly sent"))])
    space = target.new_space()
    blobs_before = stored_blobs(target.server)
    resource = {"empty-stream": "", "missing-space": space + "-gone"}.get(case.id, space)
    audited = f'resource = "{resource}" AND reason = "{case.reason}"'
    events_before = len(target.import_events(audited))
    error = refused_import(target, case.requests(space, data))
    assert (error.code(), reason_of(error)) == (case.code, case.reason), error.details()
    assert_nothing_kept(target, space, blobs_before)
    events = target.import_events(audited)[events_before:]
    assert [e.outcome for e in events] == [audit_pb2.AuditEvent.OUTCOME_FAILED]


def test_a_million_unlisted_entries_are_refused_at_the_first(kit: Kit, target: Target) -> None:
    """The stream is generated lazily; the server answers at the first entry, long before the client runs out."""
    space = target.new_space()
    entries = 1_000_000
    produced = 0

    def requests() -> Iterator[Request]:
        nonlocal produced
        yield Request(parent=space, chunk=head(kit.key, []))
        for index in range(entries):
            produced += 1
            yield Request(chunk=Entry(f"junk/{index}", b"x").tar())

    blobs_before = stored_blobs(target.server)
    error = refused_import(target, requests())
    assert reason_of(error) == "BUNDLE_UNLISTED_ENTRY"
    assert "'junk/0'" in (error.details() or "")
    # What the transport buffers before the answer, not the stream: a few MB at most, of a 1 GB stream.
    assert produced < entries // 50, produced
    assert_nothing_kept(target, space, blobs_before)
    assert_audited(target, space, "BUNDLE_UNLISTED_ENTRY")


def test_the_codec_verifies_a_300_mb_blob_in_bounded_memory() -> None:
    key = SigningKey.generate()
    chunk = bytes(range(256)) * 4096  # 1 MiB, the same object every time
    chunks = lazy_blob_bundle(key, chunk, 300)
    limits = BundleLimits(
        max_entry_bytes=1 << 40, max_bundle_bytes=1 << 40, max_entries=10, max_envelope_bytes=MiB, max_cube_bytes=MiB
    )
    tracemalloc.start()
    try:
        report = verify_bundle(chunks, TrustPolicy("node", trusted(key), 1), limits, datetime.now(UTC))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.valid, report.message
    assert report.blob_bytes == 300 * MiB
    assert peak < 16 * MiB, peak


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def test_the_server_verifies_a_200_mb_blob_in_bounded_memory(target: Target) -> None:
    """The server is in this process, so this process's peak RSS bounds what it held while verifying."""
    chunk = bytes(range(256)) * 4096
    chunks = lazy_blob_bundle(target.key, chunk, 200)
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (the peak) to the current RSS
    before = _status_kib("VmRSS")
    report = verification(target, chunks)
    grown = _status_kib("VmHWM") - before
    assert report.valid, report.message
    assert report.blob_bytes == 200 * MiB
    assert grown < 100 * 1024, f"peak RSS grew by {grown} kB"
    assert leftover_parts(target.data_dir) == []
