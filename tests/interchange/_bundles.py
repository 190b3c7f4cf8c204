"""A small builder of bundles for tests: well formed, or broken on purpose, and signed by any key.

What the signed statement lists and what the tar carries are chosen separately, and raw tar bytes (a forged header)
can be spliced in, so a test can play a trusted signer that sends bad content.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.interchange.bundle import ENVELOPE_NAME, MARKER, MARKER_NAME
from memos_grpc.interchange.dsse import STATEMENT_PAYLOAD_TYPE, Envelope, sign_envelope
from memos_grpc.interchange.statement import (
    FORMAT_VERSION,
    Subject,
    blob_entry_name,
    build_statement,
    cube_entry_name,
)
from memos_grpc.interchange.tarstream import BLOCK_SIZE, END_OF_ARCHIVE, entry_header, file_entry
from memos_grpc.primitives.keys import SigningKey, TrustedKey
from memos_grpc.server.app import MemosServer


def node_key(server: MemosServer) -> SigningKey:
    """The server's own node key, which its first trust root trusts for the node role."""
    return SigningKey.read(server.settings.key_dir / "node.key")


def trusted(key: SigningKey) -> dict[str, TrustedKey]:
    """``key`` as the ``keys`` of a codec TrustPolicy."""
    return {key.key_id: TrustedKey(key.key_id, key.public_key)}


@dataclass(frozen=True)
class Entry:
    """One tar entry: its name and bytes. ``subject`` is what an honest statement lists for it."""

    name: str
    data: bytes

    @property
    def subject(self) -> Subject:
        return Subject(self.name, hashlib.sha256(self.data).hexdigest(), len(self.data))

    def tar(self) -> bytes:
        return b"".join(file_entry(self.name, len(self.data), [self.data]))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_entry(data: bytes) -> Entry:
    return Entry(blob_entry_name(sha256_digest(data)), data)


def cube_entry(cube: cube_pb2.MemCube) -> Entry:
    """The cube under the entry name of its provenance id, serialized as the exporter does."""
    return Entry(cube_entry_name(cube.provenance_id), cube.SerializeToString(deterministic=True))


def provenance_id() -> str:
    return "p" + uuid.uuid4().hex


def plaintext_cube(text: str, provenance: str | None = None) -> cube_pb2.MemCube:
    return cube_pb2.MemCube(provenance_id=provenance or provenance_id(), plaintext=cube_pb2.PlaintextPayload(text=text))


def activation_cube(blob: bytes, provenance: str | None = None) -> cube_pb2.MemCube:
    """An activation cube whose payload is ``blob`` (which the bundle may or may not carry)."""
    return cube_pb2.MemCube(
        provenance_id=provenance or provenance_id(),
        activation=cube_pb2.ActivationPayload(
            blob=cube_pb2.BlobRef(digest=sha256_digest(blob), size_bytes=len(blob)),
            model_fingerprint="tiny-gpt2@sha256:00",
            dtype="float32",
            shape=[1, 2, 8, 4],
            num_layers=2,
            num_heads=2,
        ),
    )


def envelope(key: SigningKey, listed: Iterable[Subject | Entry]) -> Envelope:
    """A statement listing ``listed``, signed by ``key``."""
    subjects = [item.subject if isinstance(item, Entry) else item for item in listed]
    statement = build_statement(subjects, {"formatVersion": FORMAT_VERSION})
    return sign_envelope(STATEMENT_PAYLOAD_TYPE, statement, [key])


def head(key: SigningKey, listed: Iterable[Subject | Entry]) -> bytes:
    """The marker and the signed envelope entries: the start of every bundle."""
    envelope_json = envelope(key, listed).to_json()
    return Entry(MARKER_NAME, MARKER).tar() + Entry(ENVELOPE_NAME, envelope_json).tar()


def bundle(
    key: SigningKey,
    sent: Sequence[Entry | bytes],
    listed: Iterable[Subject | Entry] | None = None,
    tail: bytes = END_OF_ARCHIVE,
) -> bytes:
    """A whole bundle: ``sent`` in order (raw bytes as they are), listing ``listed`` (default: the sent entries)."""
    if listed is None:
        listed = [item for item in sent if isinstance(item, Entry)]
    body = b"".join(item.tar() if isinstance(item, Entry) else item for item in sent)
    return head(key, listed) + body + tail


def huge_header(name: str, size: int) -> bytes:
    """A ustar header whose size field is GNU base-256, as tar writes sizes of 8 GiB and more."""
    header = bytearray(entry_header(name, 0))
    header[124:136] = b"\x80" + size.to_bytes(11, "big")
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\x00" % sum(header)
    return bytes(header)


def lazy_blob_bundle(key: SigningKey, chunk: bytes, count: int) -> Iterator[bytes]:
    """A signed bundle of one blob made of ``chunk`` repeated ``count`` times, never held whole (nor is the blob)."""
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(chunk)
    size = len(chunk) * count
    subject = Subject(blob_entry_name("sha256:" + digest.hexdigest()), digest.hexdigest(), size)

    def pieces() -> Iterator[bytes]:
        yield head(key, [subject])
        yield entry_header(subject.name, size)
        for _ in range(count):
            yield chunk
        yield bytes(-size % BLOCK_SIZE)
        yield END_OF_ARCHIVE

    return pieces()


@dataclass(frozen=True)
class Placed:
    """Where one entry of a tar stream lies: its header's offset, its data's offset and its size."""

    name: str
    header: int
    data: int
    size: int

    @property
    def end(self) -> int:
        """The offset just past the entry's padding: where the next header starts."""
        return self.data + self.size + (-self.size % BLOCK_SIZE)


def layout(archive: bytes) -> list[Placed]:
    """The entries of a ustar archive (octal sizes, plain names), in order; stops at the end-of-archive marker."""
    placed: list[Placed] = []
    offset = 0
    while archive[offset : offset + BLOCK_SIZE] != bytes(BLOCK_SIZE):
        header = archive[offset : offset + BLOCK_SIZE]
        name, prefix = (header[a:b].split(b"\x00", 1)[0].decode() for a, b in ((0, 100), (345, 500)))
        size = int(header[124:136].split(b"\x00", 1)[0] or b"0", 8)
        placed.append(Placed(f"{prefix}/{name}" if prefix else name, offset, offset + BLOCK_SIZE, size))
        offset = placed[-1].end
    return placed


def leftover_parts(data_dir: Path) -> list[Path]:
    """Temporary blob files an upload or import left behind."""
    return sorted((data_dir / "blobs" / "tmp").glob("*.part"))
