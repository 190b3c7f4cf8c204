"""C2SP tlog-cosignature v1.0.1, Ed25519: a witness's timestamped signature over a checkpoint, made and checked.

The signed message is ``cosignature/v1\\ntime <unix seconds>\\n`` followed by the checkpoint's note text; the
signature line carries base64(key id || 8-byte big-endian timestamp || Ed25519 signature), with the key id of
signature type 0x04. The timestamp is the only freshness signal a checkpoint has.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from memos_grpc import reasons
from memos_grpc.primitives.keys import PUBLIC_KEY_BYTES, SigningKey, verify_signature
from memos_grpc.transparency._text import MAX_INT63, TransparencyFormatError
from memos_grpc.transparency.note import (
    COSIGNATURE_TYPE,
    ED25519_SIGNATURE_BYTES,
    KEY_ID_BYTES,
    NoteSignature,
    check_text,
    format_vkey,
    key_id_for,
    parse_note,
    valid_key_name,
)

TIMESTAMP_BYTES = 8
#: Bytes after the key id of an Ed25519 cosignature: the timestamp and the signature.
COSIGNATURE_BYTES = TIMESTAMP_BYTES + ED25519_SIGNATURE_BYTES
#: Largest timestamp the spec allows (2**63 - 1).
MAX_TIMESTAMP = MAX_INT63


class CosignatureError(TransparencyFormatError):
    """A cosignature could not be made or does not verify."""


def cosignature_key_id(name: str, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || 0x04 || 32-byte Ed25519 public key)[:4]``."""
    return key_id_for(name, COSIGNATURE_TYPE, public_key)


@dataclass(frozen=True)
class CosignatureVerifier:
    """A known witness key: cosignature lines with this name and key id must verify with ``public_key``."""

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        if not valid_key_name(self.name):
            raise ValueError(f"invalid cosigner key name {self.name!r}")
        if len(self.key_id) != KEY_ID_BYTES or len(self.public_key) != PUBLIC_KEY_BYTES:
            raise ValueError("a cosignature verifier needs a 4-byte key id and a 32-byte Ed25519 public key")

    @classmethod
    def for_key(cls, name: str, public_key: bytes) -> CosignatureVerifier:
        return cls(name, cosignature_key_id(name, public_key), public_key)

    def vkey(self) -> str:
        return format_vkey(self.name, self.key_id, COSIGNATURE_TYPE, self.public_key)


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """What an Ed25519 cosigner signs: the header line, the time line, the checkpoint's note text."""
    return b"cosignature/v1\ntime %d\n" % timestamp + checkpoint_text.encode()


def cosign(checkpoint_text: str, name: str, key: SigningKey, timestamp: int) -> NoteSignature:
    """A cosignature by ``key`` under ``name`` at ``timestamp`` (unix seconds), as a note signature line."""
    check_text(checkpoint_text)
    if not valid_key_name(name):
        raise CosignatureError(f"invalid cosigner key name {name!r}", reason=reasons.COSIGNATURE_KEY_NAME_INVALID)
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureError(f"timestamp must be 0..{MAX_TIMESTAMP}", reason=reasons.COSIGNATURE_TIME_INVALID)
    signature = key.sign(cosigned_message(checkpoint_text, timestamp))
    return NoteSignature(name, cosignature_key_id(name, key.public_key), struct.pack(">Q", timestamp) + signature)


def add_cosignature(note: str, signature: NoteSignature) -> str:
    """The signed note with one more signature line at its end (the note must already be signed)."""
    if not note.endswith("\n"):
        raise CosignatureError("the note does not end with a newline", reason=reasons.COSIGNATURE_NOTE_INVALID)
    return note + signature.line()


def verify_cosignature(checkpoint_text: str, signature: NoteSignature, verifier: CosignatureVerifier) -> int:
    """The cosignature's timestamp if it verifies with ``verifier``; raises CosignatureError otherwise."""
    if (signature.name, signature.key_id) != (verifier.name, verifier.key_id):
        raise CosignatureError(
            f"the signature line is by {signature.name}+{signature.key_id.hex()}, not {verifier.name}",
            reason=reasons.COSIGNATURE_KEY_MISMATCH,
        )
    if len(signature.signature) != COSIGNATURE_BYTES:
        raise CosignatureError(
            f"cosignature by {verifier.name} is {len(signature.signature)} bytes after its key id; "
            f"{COSIGNATURE_BYTES} expected",
            reason=reasons.COSIGNATURE_INVALID,
        )
    (timestamp,) = struct.unpack(">Q", signature.signature[:TIMESTAMP_BYTES])
    if timestamp > MAX_TIMESTAMP:
        raise CosignatureError(
            f"cosignature by {verifier.name} has a timestamp over 2**63 - 1", reason=reasons.COSIGNATURE_INVALID
        )
    message = cosigned_message(checkpoint_text, timestamp)
    if not verify_signature(verifier.public_key, signature.signature[TIMESTAMP_BYTES:], message):
        raise CosignatureError(f"cosignature by {verifier.name} does not verify", reason=reasons.COSIGNATURE_INVALID)
    return int(timestamp)


class CosignatureStatus(enum.Enum):
    """What checking one witness's cosignature on a checkpoint found."""

    #: Verified, and its time is within the allowed age.
    FRESH = "FRESH"
    #: Verified, but older than the allowed age.
    STALE = "STALE"
    #: Verified, but dated after the verification time.
    FUTURE = "FUTURE"
    #: The name and key id are a known witness's, but the signature does not verify.
    INVALID = "INVALID"


@dataclass(frozen=True)
class CosignatureResult:
    """The verdict on one witness's cosignature: which witness, its status, its timestamp and a message."""

    #: The verifier's label (a policy's witness name).
    name: str
    status: CosignatureStatus
    timestamp: int | None = None
    message: str = ""


def check_cosignatures(
    checkpoint_text: str,
    signatures: Sequence[NoteSignature],
    verifiers: Mapping[str, CosignatureVerifier],
    now: int,
    max_age: int,
) -> list[CosignatureResult]:
    """One result per signature line made under a known witness's key name and key id; other lines are ignored.

    ``verifiers`` maps a label (a policy's witness name) to the witness's key; results carry the label. A
    cosignature is FRESH when ``now - max_age <= timestamp <= now`` (all in unix seconds).
    """
    results: list[CosignatureResult] = []
    for label, verifier in verifiers.items():
        for signature in signatures:
            if (signature.name, signature.key_id) != (verifier.name, verifier.key_id):
                continue
            try:
                timestamp = verify_cosignature(checkpoint_text, signature, verifier)
            except CosignatureError as error:
                results.append(CosignatureResult(label, CosignatureStatus.INVALID, None, error.message))
                continue
            if timestamp > now:
                status = CosignatureStatus.FUTURE
            elif now - timestamp > max_age:
                status = CosignatureStatus.STALE
            else:
                status = CosignatureStatus.FRESH
            results.append(CosignatureResult(label, status, timestamp))
    return results


def verify_cosigned(note: str | bytes, verifier: CosignatureVerifier, now: int, max_age: int) -> int:
    """The time of ``verifier``'s fresh cosignature on the checkpoint note; raises CosignatureError otherwise.

    Only the note's grammar is checked here, not the log's signature (``note.open_note`` does that): a note that
    does not parse raises NoteError with its NOTE_* reason. The note
    must carry a cosignature line under the witness's name and key id (COSIGNATURE_MISSING), every such line
    must verify (COSIGNATURE_INVALID), and one must be dated within ``now - max_age .. now``
    (COSIGNATURE_STALE, COSIGNATURE_FUTURE).
    """
    parsed = parse_note(note)
    results = check_cosignatures(parsed.text, parsed.signatures, {verifier.name: verifier}, now, max_age)
    if not results:
        raise CosignatureError(f"no cosignature by {verifier.name}", reason=reasons.COSIGNATURE_MISSING)
    for result in results:
        if result.status is CosignatureStatus.INVALID:
            raise CosignatureError(result.message, reason=reasons.COSIGNATURE_INVALID)
    fresh = [r.timestamp for r in results if r.status is CosignatureStatus.FRESH and r.timestamp is not None]
    if fresh:
        return max(fresh)
    if any(r.status is CosignatureStatus.FUTURE for r in results):
        raise CosignatureError(
            f"the cosignature by {verifier.name} is dated after now", reason=reasons.COSIGNATURE_FUTURE
        )
    raise CosignatureError(
        f"the cosignature by {verifier.name} is older than {max_age} s", reason=reasons.COSIGNATURE_STALE
    )
