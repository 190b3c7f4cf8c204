"""The bundle codec: a streaming writer, and a streaming verifier that checks in protocol order.

A bundle is a ustar stream: ``memos-bundle`` (the major version), then
``statement.dsse.json`` (the signed statement), then the cube and blob
entries the statement lists. ``BundleVerifier`` reads it once, front to
back, holding at most one chunk of any entry; it hands each entry to an
optional sink (the importer) only as its bytes arrive, and raises a
``BundleError`` with the step's stable reason at the first failure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from memos_grpc import reasons
from memos_grpc.errors import BundleError
from memos_grpc.interchange.dsse import (
    STATEMENT_PAYLOAD_TYPE,
    Envelope,
    EnvelopeFormatError,
    EnvelopeVerification,
    Shortfall,
    parse_envelope,
    verify_envelope,
)
from memos_grpc.interchange.statement import Statement, Subject, parse_statement
from memos_grpc.interchange.tarstream import END_OF_ARCHIVE, TarEntry, TarLimits, TarReader, file_entry
from memos_grpc.primitives.bounds import MAX_MARKER_BYTES
from memos_grpc.primitives.keys import TrustedKey

MARKER_NAME = "memos-bundle"
ENVELOPE_NAME = "statement.dsse.json"
MAJOR_VERSION = 1
MARKER = b"%d\n" % MAJOR_VERSION


@dataclass(frozen=True)
class BundleEntry:
    """One cube or blob entry to write: its name, size and a way to stream its bytes."""

    name: str
    size: int
    open: Callable[[], Iterable[bytes]]


def write_bundle(envelope: Envelope, entries: Iterable[BundleEntry]) -> Iterator[bytes]:
    """Yields the bundle's bytes in pieces (headers, data, padding), in the order of the format."""
    yield from file_entry(MARKER_NAME, len(MARKER), [MARKER])
    envelope_json = envelope.to_json()
    yield from file_entry(ENVELOPE_NAME, len(envelope_json), [envelope_json])
    for entry in entries:
        yield from file_entry(entry.name, entry.size, entry.open())
    yield END_OF_ARCHIVE


def rechunk(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Joins small pieces and splits large ones into chunks of exactly ``size`` bytes (the last may be short).

    Each byte is copied once, into the chunk that carries it.
    """
    pending: list[memoryview] = []
    pending_bytes = 0
    for piece in pieces:
        view = memoryview(piece)
        while view:
            take = min(size - pending_bytes, len(view))
            pending.append(view[:take])
            pending_bytes += take
            view = view[take:]
            if pending_bytes == size:
                yield b"".join(pending)
                pending, pending_bytes = [], 0
    if pending:
        yield b"".join(pending)


@dataclass(frozen=True)
class BundleLimits:
    """The sizes and counts a bundle is verified under (from the server's settings); past any, it is refused."""

    max_entry_bytes: int
    max_bundle_bytes: int
    max_entries: int
    #: Largest envelope and largest cube entry (both are read whole).
    max_envelope_bytes: int
    max_cube_bytes: int


@dataclass(frozen=True)
class TrustPolicy:
    """Which keys a bundle must be signed by: a role's keys and threshold, and any pinned key ids."""

    role: str
    keys: dict[str, TrustedKey]
    threshold: int
    required_key_ids: tuple[str, ...] = ()


class EntrySink(Protocol):
    """Receives verified entries (the importer stages them; nothing is committed until the end)."""

    def cube(self, subject: Subject, data: bytes) -> None: ...

    def blob(self, subject: Subject, chunks: Iterator[memoryview]) -> None:
        """Must consume ``chunks``; its digest is checked after, and a mismatch raises."""

    def finish(self) -> None:
        """Called once every entry has verified: checks that span entries (a cube's blob is carried)."""


@dataclass
class BundleReport:
    """Everything verification learned; ``valid`` is false with ``reason`` at the first failed step."""

    valid: bool = False
    reason: str = ""
    message: str = ""
    signatures: EnvelopeVerification | None = None
    statement_digest: str = ""
    statement_bytes: bytes = b""
    statement: Statement | None = None
    entry_count: int = 0
    cube_count: int = 0
    blob_count: int = 0
    blob_bytes: int = 0
    bundle_bytes: int = 0

    def __bool__(self) -> bool:
        return self.valid


class BundleVerifier:
    """Reads one bundle stream through the verification steps of docs/protocol.md, in order."""

    def __init__(
        self,
        chunks: Iterable[bytes],
        policy: TrustPolicy | None,
        limits: BundleLimits,
        now: datetime,
        sink: EntrySink | None = None,
    ) -> None:
        """``policy`` None checks integrity only (every entry against the statement), not who signed it: for a
        caller that trusts the statement digest by other means (a license grant naming it)."""
        self._reader = TarReader(chunks, TarLimits(limits.max_entry_bytes, limits.max_bundle_bytes, limits.max_entries))
        self._policy = policy
        self._limits = limits
        self._now = now
        self._sink = sink
        self.report = BundleReport()

    def run(self) -> BundleReport:
        """Verifies the whole stream; raises BundleError at the first failure (``report`` keeps what was learned)."""
        try:
            self._run()
        except BundleError as error:
            self.report.reason, self.report.message = error.reason, error.message
            raise
        finally:
            self.report.bundle_bytes = self._reader.bytes_read
        self.report.valid = True
        return self.report

    def _run(self) -> None:
        entries = self._reader.entries()
        marker = next(entries, None)
        if marker is None or marker.name != MARKER_NAME:
            raise BundleError(
                f"the first entry must be {MARKER_NAME!r}; this is not a memos bundle",
                reason=reasons.BUNDLE_MARKER_MISSING,
            )
        _check_marker(marker.read_all(MAX_MARKER_BYTES))
        envelope_entry = next(entries, None)
        if envelope_entry is None or envelope_entry.name != ENVELOPE_NAME:
            raise BundleError(f"the second entry must be {ENVELOPE_NAME!r}", reason=reasons.BUNDLE_ENVELOPE_MISSING)
        statement = self._verify_envelope(envelope_entry.read_all(self._limits.max_envelope_bytes))
        seen: set[str] = set()
        for entry in entries:
            subject = statement.subjects.get(entry.name)
            if subject is None:
                raise BundleError(
                    f"entry {entry.name[:120]!r} is not listed in the signed statement",
                    reason=reasons.BUNDLE_UNLISTED_ENTRY,
                )
            if entry.size != subject.size:
                raise BundleError(
                    f"entry {entry.name!r} holds {entry.size} bytes; the statement says {subject.size}",
                    reason=reasons.BUNDLE_SIZE_MISMATCH,
                )
            self._read_entry(entry, subject)
            seen.add(entry.name)
            self.report.entry_count += 1
        missing = [name for name in statement.subjects if name not in seen]
        if missing:
            raise BundleError(
                f"{len(missing)} entries the statement lists are missing, e.g. {missing[0]!r}",
                reason=reasons.BUNDLE_MISSING_ENTRY,
            )
        if self._sink is not None:
            self._sink.finish()

    def _verify_envelope(self, data: bytes) -> Statement:
        verification: list[EnvelopeVerification] = []
        try:
            if self._policy is None:
                payload = _statement_envelope(data).payload
            else:
                payload = verify_statement_envelope(data, self._policy, self._now, verification)
        finally:
            if verification:
                self.report.signatures = verification[0]
        self.report.statement_bytes = payload
        self.report.statement_digest = "sha256:" + hashlib.sha256(payload).hexdigest()
        statement = parse_statement(payload, max(0, self._limits.max_entries - 2))
        self.report.statement = statement
        return statement

    def _read_entry(self, entry: TarEntry, subject: Subject) -> None:
        digest = hashlib.sha256()
        if subject.is_blob:

            def hashed() -> Iterator[memoryview]:
                for chunk in entry.chunks():
                    digest.update(chunk)
                    yield chunk

            if self._sink is not None:
                self._sink.blob(subject, hashed())
            else:
                for _ in hashed():
                    pass
            self.report.blob_count += 1
            self.report.blob_bytes += subject.size
            _check_digest(entry.name, digest.hexdigest(), subject)
            return
        data = entry.read_all(self._limits.max_cube_bytes)
        digest.update(data)
        _check_digest(entry.name, digest.hexdigest(), subject)
        self.report.cube_count += 1
        if self._sink is not None:
            self._sink.cube(subject, data)


def verify_statement_envelope(
    data: bytes, policy: TrustPolicy, now: datetime, out: list[EnvelopeVerification] | None = None
) -> bytes:
    """Steps 2 and 3: decodes a statement envelope and checks its signatures; returns the verified payload.

    Raises BundleError with the step's reason; ``out`` receives the per-signature results when given.
    """
    envelope = _statement_envelope(data)
    verification = verify_envelope(envelope, policy.keys, policy.threshold, now)
    if out is not None:
        out.append(verification)
    _raise_shortfall(verification, policy)
    missing = [k for k in policy.required_key_ids if k not in verification.counted_keys]
    if missing:
        raise BundleError(
            f"the trust policy requires a signature by key {missing[0]}, and the bundle has none that counts",
            reason=reasons.BUNDLE_REQUIRED_SIGNER_MISSING,
        )
    return envelope.payload  # verified: only now may it be parsed


def _statement_envelope(data: bytes) -> Envelope:
    """Step 2: the statement envelope, decoded, with the statement's payloadType; raises BundleError."""
    try:
        envelope = parse_envelope(data)
    except EnvelopeFormatError as exc:
        raise BundleError(f"the envelope is malformed: {exc}", reason=reasons.BUNDLE_ENVELOPE_MALFORMED) from exc
    if envelope.payload_type != STATEMENT_PAYLOAD_TYPE:
        raise BundleError(
            f"payloadType is {envelope.payload_type[:80]!r}; a bundle's is {STATEMENT_PAYLOAD_TYPE!r}",
            reason=reasons.BUNDLE_PAYLOAD_TYPE_INVALID,
        )
    return envelope


def _check_marker(data: bytes) -> None:
    text = data.decode("ascii", errors="replace").strip()
    major = text.split(".", 1)[0]
    if not major.isdigit():
        raise BundleError(f"the format marker reads {text[:20]!r}, not a version", reason=reasons.BUNDLE_MARKER_MISSING)
    if int(major) != MAJOR_VERSION:
        raise BundleError(
            f"bundle format version {major} is not supported; this server reads version {MAJOR_VERSION}",
            reason=reasons.BUNDLE_VERSION_UNSUPPORTED,
        )


def _check_digest(name: str, actual: str, subject: Subject) -> None:
    if actual != subject.sha256:
        raise BundleError(
            f"entry {name!r} has sha256 {actual}; the signed statement says {subject.sha256}",
            reason=reasons.BUNDLE_DIGEST_MISMATCH,
        )


def _raise_shortfall(verification: EnvelopeVerification, policy: TrustPolicy) -> None:
    """Raises the reason of docs/protocol.md for a signature threshold that was not met."""
    shortfall, why = verification.shortfall, f"{verification.message} (role {policy.role})"
    if shortfall is None:
        return
    if shortfall is Shortfall.SIGNATURE_INVALID:
        raise BundleError(why, reason=reasons.BUNDLE_SIGNATURE_INVALID)
    if shortfall is Shortfall.SIGNER_REVOKED:
        raise BundleError(why, reason=reasons.BUNDLE_SIGNER_REVOKED)
    if shortfall is Shortfall.SIGNER_EXPIRED:
        raise BundleError(why, reason=reasons.BUNDLE_SIGNER_EXPIRED)
    if shortfall is Shortfall.THRESHOLD_NOT_MET:
        raise BundleError(why, reason=reasons.BUNDLE_THRESHOLD_NOT_MET)
    raise BundleError(why, reason=reasons.BUNDLE_UNTRUSTED_SIGNER)


def verify_bundle(
    chunks: Iterable[bytes],
    policy: TrustPolicy | None,
    limits: BundleLimits,
    now: datetime,
    sink: EntrySink | None = None,
) -> BundleReport:
    """Verifies a bundle without importing it; never raises for a bad bundle (the report says why).

    With ``policy`` None the signatures are not checked, only the entries against the statement (see
    ``BundleVerifier``).
    """
    verifier = BundleVerifier(chunks, policy, limits, now, sink)
    try:
        return verifier.run()
    except BundleError:
        return verifier.report
