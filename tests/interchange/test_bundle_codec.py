"""The bundle codec in-process: rechunking, writer to verifier, required signers, and the sink's view."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from memos_grpc.interchange import (
    BundleEntry,
    BundleLimits,
    SigningKey,
    Subject,
    TrustedKey,
    TrustPolicy,
    build_statement,
    sign_envelope,
    verify_bundle,
    write_bundle,
)
from memos_grpc.interchange.bundle import BundleVerifier, rechunk
from memos_grpc.interchange.dsse import STATEMENT_PAYLOAD_TYPE

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LIMITS = BundleLimits(1 << 30, 1 << 32, 1000, 1 << 20, 1 << 20)


@given(st.lists(st.binary(max_size=300), max_size=30), st.integers(min_value=1, max_value=700))
def test_rechunk_keeps_every_byte_in_chunks_of_the_size(pieces: list[bytes], size: int) -> None:
    chunks = list(rechunk(pieces, size))
    assert b"".join(chunks) == b"".join(pieces)
    assert all(len(c) == size for c in chunks[:-1])
    assert not chunks or 0 < len(chunks[-1]) <= size


def bundle(keys: list[SigningKey], entries: dict[str, bytes]) -> bytes:
    subjects = [Subject(n, hashlib.sha256(d).hexdigest(), len(d)) for n, d in entries.items()]
    envelope = sign_envelope(STATEMENT_PAYLOAD_TYPE, build_statement(subjects, {"formatVersion": 1}), keys)
    parts = [BundleEntry(n, len(d), lambda d=d: [d]) for n, d in entries.items()]  # type: ignore[misc]
    return b"".join(write_bundle(envelope, parts))


def policy(*keys: SigningKey, threshold: int = 1, required: tuple[str, ...] = ()) -> TrustPolicy:
    trusted = {k.key_id: TrustedKey(k.key_id, k.public_key) for k in keys}
    return TrustPolicy("node", trusted, threshold, required)


def test_written_bundles_verify_whatever_the_chunking() -> None:
    key = SigningKey.from_seed(b"\x01" * 32)
    blob = bytes(range(256)) * 1000
    data = bundle([key], {"cubes/a.pb": b"cube a", f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}": blob})
    for size in (1, 511, 512, 4096, len(data)):
        report = verify_bundle(rechunk([data], size), policy(key), LIMITS, NOW)
        assert report.valid and (report.cube_count, report.blob_count, report.blob_bytes) == (1, 1, len(blob))
        assert report.bundle_bytes == len(data)


def test_a_pinned_signer_must_have_signed() -> None:
    node, publisher = SigningKey.from_seed(b"\x02" * 32), SigningKey.from_seed(b"\x03" * 32)
    data = bundle([node], {"cubes/a.pb": b"x"})
    report = verify_bundle([data], policy(node, publisher, required=(publisher.key_id,)), LIMITS, NOW)
    assert (report.valid, report.reason) == (False, "BUNDLE_REQUIRED_SIGNER_MISSING")
    both = bundle([node, publisher], {"cubes/a.pb": b"x"})
    assert verify_bundle([both], policy(node, publisher, required=(publisher.key_id,)), LIMITS, NOW).valid


class Recorder:
    """A sink that records what it was handed, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self.finished = False

    def cube(self, subject: Subject, data: bytes) -> None:
        self.seen.append((subject.name, data))

    def blob(self, subject: Subject, chunks: Iterator[memoryview]) -> None:
        self.seen.append((subject.name, b"".join(bytes(c) for c in chunks)))

    def finish(self) -> None:
        self.finished = True


def test_the_sink_gets_each_entry_in_order_and_finish_only_after_all_verified() -> None:
    key = SigningKey.from_seed(b"\x04" * 32)
    blob = b"\x00\xff" * 70_000
    name = f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"
    data = bundle([key], {"cubes/a.pb": b"first", "cubes/b.pb": b"second", name: blob})
    sink = Recorder()
    BundleVerifier(rechunk([data], 1000), policy(key), LIMITS, NOW, sink).run()
    assert sink.seen == [("cubes/a.pb", b"first"), ("cubes/b.pb", b"second"), (name, blob)] and sink.finished
    broken = bytearray(data)
    broken[data.index(b"second")] ^= 1
    sink = Recorder()
    report = verify_bundle([bytes(broken)], policy(key), LIMITS, NOW, sink)
    assert report.reason == "BUNDLE_DIGEST_MISMATCH"
    assert [n for n, _ in sink.seen] == ["cubes/a.pb"] and not sink.finished
