"""Peer-exchange test helpers: TLS stubs with bearer tokens, trust root edits, bundle layouts, a tampering proxy.

``Peers`` holds servers A (exporter) and B (importer); ``Tampering`` and the ``flip``/``rewrite_header`` plans say
which bytes of A's stream the proxy rewrites. The proxy is a real TLS gRPC server that serves
InterchangeService.ExportBundle by relaying a real peer's export, forwarding the caller's token, with chosen bytes
of the stream rewritten on the way.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from memos_grpc._proto.memos.v1 import (
    cube_pb2,
    governance_service_pb2,
    interchange_service_pb2,
    principal_pb2,
    trust_pb2,
    vault_service_pb2,
)
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import (
    InterchangeServiceServicer,
    InterchangeServiceStub,
    add_InterchangeServiceServicer_to_server,
)
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.interchange.dsse import Envelope, parse_envelope
from memos_grpc.interchange.tarstream import entry_header
from memos_grpc.interchange.trust import TRUST_ROOT_PAYLOAD_TYPE, Role, TrustRoot, parse_trust_root
from memos_grpc.primitives.keys import TrustedKey
from memos_grpc.server.app import MemosServer
from tests.memos_test_support import admin_token, stored_blobs
from tests.server._certs import Pki

TIMEOUT = 30.0
BLOCK = 512


# -- talking to a TLS server -------------------------------------------------------------------


@dataclass
class Stubs:
    """The three services of one server, over one TLS channel that sends a bearer token on every call."""

    channel: grpc.Channel
    vault: VaultServiceStub = field(init=False)
    governance: GovernanceServiceStub = field(init=False)
    interchange: InterchangeServiceStub = field(init=False)

    def __post_init__(self) -> None:
        self.vault = VaultServiceStub(self.channel)
        self.governance = GovernanceServiceStub(self.channel)
        self.interchange = InterchangeServiceStub(self.channel)


def tls_stubs(address: str, ca_pem: bytes, token: str) -> Stubs:
    credentials = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(root_certificates=ca_pem), grpc.access_token_call_credentials(token)
    )
    return Stubs(grpc.secure_channel(address, credentials))


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo of a failed call (asserts there is one)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status in {error}"
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError(f"no ErrorInfo in {error}")


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def blob_files(server: MemosServer) -> list[str]:
    """Every blob the server's store holds, and every file under its blob directory (staging files too)."""
    root: Path = server.settings.blob_dir
    return sorted(stored_blobs(server) | {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()})


# -- filling a source server -------------------------------------------------------------------


def new_space(stubs: Stubs) -> str:
    space_id = "s" + uuid.uuid4().hex[:12]
    return str(stubs.governance.CreateSpace(governance_service_pb2.CreateSpaceRequest(space_id=space_id)).name)


def add_texts(stubs: Stubs, parent: str, texts: Sequence[str]) -> list[cube_pb2.MemCube]:
    requests = [
        vault_service_pb2.CreateCubeRequest(cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=t)))
        for t in texts
    ]
    response = stubs.vault.BatchCreateCubes(
        vault_service_pb2.BatchCreateCubesRequest(parent=parent, requests=requests), timeout=TIMEOUT
    )
    return list(response.cubes)


def add_activation(stubs: Stubs, parent: str, data: bytes) -> cube_pb2.MemCube:
    """Uploads ``data`` with WritePayload and makes an activation cube of it."""

    def upload() -> Iterator[vault_service_pb2.WritePayloadRequest]:
        yield vault_service_pb2.WritePayloadRequest(
            parent=parent, expected_size=len(data), media_type="application/vnd.safetensors"
        )
        for start in range(0, len(data), 64 * 1024):
            yield vault_service_pb2.WritePayloadRequest(data=data[start : start + 64 * 1024])

    blob = stubs.vault.WritePayload(upload(), timeout=TIMEOUT).blob
    cube = cube_pb2.MemCube(
        activation=cube_pb2.ActivationPayload(
            blob=cube_pb2.BlobRef(digest=blob.digest),
            model_fingerprint="tiny-gpt2@sha256:00",
            dtype="float32",
            shape=[1, 2, 8, 4],
            num_layers=2,
            num_heads=2,
            token_count=8,
        )
    )
    return stubs.vault.CreateCube(vault_service_pb2.CreateCubeRequest(parent=parent, cube=cube), timeout=TIMEOUT)


def list_cubes(stubs: Stubs, parent: str) -> list[cube_pb2.MemCube]:
    return list(stubs.vault.ListCubes(vault_service_pb2.ListCubesRequest(parent=parent), timeout=TIMEOUT).cubes)


def export(stubs: Stubs, parent: str) -> bytes:
    request = interchange_service_pb2.ExportBundleRequest(parent=parent)
    return b"".join(r.chunk for r in stubs.interchange.ExportBundle(request, timeout=TIMEOUT))


# -- trust ------------------------------------------------------------------------------------


def trusted(key: principal_pb2.PublicKey, name: str) -> TrustedKey:
    return TrustedKey(key.key_id, key.public_key, name)


def node_key(stubs: Stubs) -> TrustedKey:
    """A server's node key, as it publishes it on ``principals/node``."""
    node = stubs.governance.GetPrincipal(governance_service_pb2.GetPrincipalRequest(name="principals/node"))
    (key,) = node.public_keys
    return trusted(key, "principals/node")


def set_trust(
    stubs: Stubs, *, node: Sequence[TrustedKey] = (), publisher: Sequence[TrustedKey] = ()
) -> trust_pb2.TrustRoot:
    """Puts a new trust root in force: the server's own node key as admin and node, plus exactly these keys.

    Unsigned by the test: the server adds its node signature, which satisfies the old and the new admin role.
    """
    current_message = stubs.governance.GetTrustRoot(governance_service_pb2.GetTrustRootRequest(), timeout=TIMEOUT)
    current = parse_trust_root(parse_envelope(current_message.signed_envelope).payload)
    (own,) = current.role("admin").key_ids
    keys = {own: current.keys[own], **{k.key_id: k for k in (*node, *publisher)}}
    root = TrustRoot(
        version=current.version + 1,
        expires=current.expires,
        keys=keys,
        roles={
            "admin": Role((own,), 1),
            "node": Role((own, *(k.key_id for k in node)), 1),
            "publisher": Role(tuple(k.key_id for k in publisher), 1),
            "marketplace": Role((), 1),
        },
    )
    request = governance_service_pb2.UpdateTrustRootRequest(
        signed_envelope=Envelope(TRUST_ROOT_PAYLOAD_TYPE, root.payload()).to_json(), add_node_signature=True
    )
    updated = stubs.governance.UpdateTrustRoot(request, timeout=TIMEOUT)
    assert updated.version == root.version
    return updated


# -- bundle layout ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """Where one tar entry lies in a bundle's byte stream."""

    name: str
    header: int
    size: int

    @property
    def data(self) -> int:
        return self.header + BLOCK

    @property
    def end(self) -> int:
        return self.data + self.size

    @property
    def padding(self) -> int:
        return -self.size % BLOCK


def tar_layout(bundle: bytes) -> list[Member]:
    """The entries of a (well-formed, untampered) bundle, in stream order, from their ustar headers."""
    members: list[Member] = []
    offset = 0
    while (header := bundle[offset : offset + BLOCK]) != bytes(BLOCK):
        name = header[:100].split(b"\x00", 1)[0].decode()
        prefix = header[345:500].split(b"\x00", 1)[0].decode()
        size = int(header[124:136].split(b"\x00", 1)[0], 8)
        members.append(Member(f"{prefix}/{name}" if prefix else name, offset, size))
        offset += BLOCK + size + (-size % BLOCK)
    assert bundle[offset:] == bytes(2 * BLOCK), "a bundle ends with exactly two zero blocks"
    return members


# -- the tampering proxy ----------------------------------------------------------------------

#: A byte edit: the stream's byte at that offset becomes edit(byte).
Edit = Callable[[int], int]


class TamperingProxy(InterchangeServiceServicer):
    """Serves ExportBundle over TLS by relaying ``upstream``'s, with ``edits`` applied at absolute stream offsets.

    The caller's ``authorization`` metadata is forwarded, so the upstream server sees the importer's peer token.
    Chunks are re-cut into ``piece_bytes`` pieces, so the importer reads the bundle across many message boundaries.
    """

    def __init__(self, upstream: str, pki: Pki, piece_bytes: int = 1000) -> None:
        self.edits: dict[int, Edit] = {}
        self.cut_at: int | None = None
        self.piece_bytes = piece_bytes
        self._lock = threading.Lock()
        self._applied = 0
        self._channel = grpc.secure_channel(upstream, grpc.ssl_channel_credentials(root_certificates=pki.ca.cert_pem()))
        self._upstream = InterchangeServiceStub(self._channel)
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        add_InterchangeServiceServicer_to_server(self, self._server)
        credentials = grpc.ssl_server_credentials([(pki.server.key_pem(), pki.server.cert_pem())])
        self.address = f"127.0.0.1:{self._server.add_secure_port('127.0.0.1:0', credentials)}"
        self._server.start()

    def tamper(self, edits: dict[int, Edit], cut_at: int | None = None) -> None:
        """Sets the edits of the next streams; ``cut_at`` ends them (with status OK) after that many bytes."""
        with self._lock:
            self.edits, self.cut_at, self._applied = dict(edits), cut_at, 0

    @property
    def applied(self) -> int:
        """How many edits (a cut counts as one) the last relayed stream actually went through."""
        with self._lock:
            return self._applied

    def ExportBundle(
        self, request: interchange_service_pb2.ExportBundleRequest, context: grpc.ServicerContext
    ) -> Iterator[interchange_service_pb2.ExportBundleResponse]:
        forwarded = [(k, v) for k, v in context.invocation_metadata() if k == "authorization"]
        with self._lock:
            edits, cut_at = dict(self.edits), self.cut_at
        call = self._upstream.ExportBundle(request, metadata=forwarded, timeout=TIMEOUT)
        position = 0
        try:
            for response in call:
                chunk = bytearray(response.chunk)
                for offset, edit in edits.items():
                    if position <= offset < position + len(chunk):
                        before = chunk[offset - position]
                        chunk[offset - position] = edit(before)
                        assert chunk[offset - position] != before, f"the edit at {offset} changed nothing"
                        with self._lock:
                            self._applied += 1
                if cut_at is not None and position + len(chunk) > cut_at:
                    del chunk[cut_at - position :]
                    with self._lock:
                        self._applied += 1
                position += len(chunk)
                for start in range(0, len(chunk), self.piece_bytes):
                    yield interchange_service_pb2.ExportBundleResponse(
                        chunk=bytes(chunk[start : start + self.piece_bytes])
                    )
                if cut_at is not None and position >= cut_at:
                    return  # the importer sees a stream that ends early, with status OK
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details() or "")
        finally:
            call.cancel()

    def stop(self) -> None:
        self._server.stop(grace=None)
        self._channel.close()


# -- the two servers, and a man in the middle ------------------------------------------------


@dataclass
class Peers:
    """Server A (the exporter) and server B (the importer), both TLS-only, with admin stubs for each."""

    pki: Pki
    a: MemosServer
    b: MemosServer
    admin_a: Stubs
    admin_b: Stubs

    @property
    def ca(self) -> bytes:
        return self.pki.ca.cert_pem()

    def a_node(self) -> TrustedKey:
        return node_key(self.admin_a)

    def pull(
        self, parent: str, source: str, *, target: str = "", token: str = "", **fields: object
    ) -> interchange_service_pb2.ImportBundleResponse:
        """B's admin asks B to import ``source`` (a space on A) into ``parent`` (a space on B)."""
        tls: dict[str, object] = {"peer_ca_certificates": self.ca, **fields}  # the test CA unless overridden
        request = interchange_service_pb2.ImportFromPeerRequest(
            parent=parent,
            peer_target=target or self.a.address,
            peer_token=token or admin_token(self.a),
            selection=interchange_service_pb2.ExportBundleRequest(parent=source),
            **tls,  # type: ignore[arg-type]
        )
        return self.admin_b.interchange.ImportFromPeer(request, timeout=TIMEOUT)

    def refused(self, parent: str, source: str, **kwargs: object) -> grpc.RpcError:
        """Pulls, expecting a refusal; checks nothing reached B's space and returns the error."""
        files = blob_files(self.b)
        with pytest.raises(grpc.RpcError) as caught:
            self.pull(parent, source, **kwargs)  # type: ignore[arg-type]
        assert list_cubes(self.admin_b, parent) == []
        assert blob_files(self.b) == files
        return caught.value


@dataclass
class Tampering:
    peers: Peers
    proxy: TamperingProxy
    source: str
    #: A's bundle of ``source`` as it exports it (byte layouts of later exports are the same).
    bundle: bytes
    layout: list[Member]
    blob_digest: str

    def blob_stored(self, server: MemosServer) -> bool:
        """Whether ``server`` holds this bundle's blob (it must never get there)."""
        return self.blob_digest in stored_blobs(server)

    def member(self, prefix: str) -> Member:
        return next(m for m in self.layout if m.name.startswith(prefix))

    def find(self, member: Member, needle: bytes, skip: int = 0) -> int:
        """The stream offset of ``needle`` inside ``member``'s data, plus ``skip``."""
        at = self.bundle.find(needle, member.data, member.end)
        assert at >= 0, f"{needle!r} is not in {member.name}"
        return at + skip


def xor(byte: int) -> int:
    return byte ^ 0x01


def other_base64(byte: int) -> int:
    """Another base64 letter: the text still decodes, to different bytes."""
    return ord("B") if byte == ord("A") else ord("A")


#: How to tamper with a stream: the edits to make, by absolute offset, worked out from the untampered bundle.
Plan = Callable[[Tampering], dict[int, Edit]]


def set_byte(value: int) -> Edit:
    return lambda _: value


def flip(offset: Callable[[Tampering], int], edit: Edit = xor) -> Plan:
    return lambda t: {offset(t): edit}


def rewrite_header(name_of: Callable[[str], str], size_of: Callable[[int], int]) -> Plan:
    """Replaces the first cube's header with a well-formed one (valid checksum) for another name or size."""

    def edits(t: Tampering) -> dict[int, Edit]:
        cube = t.member("cubes/")
        new = entry_header(name_of(cube.name), size_of(cube.size))
        old = t.bundle[cube.header : cube.data]
        return {cube.header + i: set_byte(v) for i, (u, v) in enumerate(zip(old, new, strict=True)) if u != v}

    return edits
