"""C2SP signed-note v1.0.0: Ed25519 notes, their key ids, verifier keys (vkeys), signing and opening.

A note is text, a blank line, then signature lines ``— <key name> <base64(4-byte key id || signature)>``.
Opening a note checks its grammar (docs/marketplace.md, "Signed notes"), ignores signatures from keys the
caller does not know (rotation and cosigning depend on it), refuses one from a known key that does not verify,
and refuses a note that no known key verified. Timestamped witness cosignatures are cosignature.py's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from memos_grpc import reasons
from memos_grpc.primitives.keys import PUBLIC_KEY_BYTES, PublicKeyError, SigningKey, check_public_key, verify_signature
from memos_grpc.transparency._text import (
    TransparencyFormatError,
    b64encode,
    has_control,
    strict_b64decode,
    utf8_text,
)

#: Signature type byte of plain Ed25519 note signatures (C2SP signed-note, "Signature types").
ED25519_TYPE = 0x01
#: Signature type byte of timestamped Ed25519 witness cosignatures (C2SP tlog-cosignature).
COSIGNATURE_TYPE = 0x04
KEY_ID_BYTES = 4
ED25519_SIGNATURE_BYTES = 64

#: Signature lines a note may carry (Go's golang.org/x/mod/sumdb/note stops at 100; the spec requires >= 16).
MAX_SIGNATURES = 100
#: A whole note, text and signatures: checkpoints are a few hundred bytes, 100 signatures under 10 KiB.
MAX_NOTE_BYTES = 1 << 20
#: A key name in UTF-8 bytes (the limit ML-DSA cosignatures put on cosigner names, 2**8 - 1).
MAX_KEY_NAME_BYTES = 255
#: Decoded bytes of one signature, key id included; room for post-quantum signatures of unknown keys.
MAX_SIGNATURE_BYTES = 8192

_SIGNATURE_LINE = re.compile(r"\u2014 (?P<name>[^ ]+) (?P<signature>[A-Za-z0-9+/=]+)")
_VKEY = re.compile(r"(?P<name>[^+]+)\+(?P<key_id>[0-9a-f]{8})\+(?P<key>[A-Za-z0-9+/=]+)")


class NoteError(TransparencyFormatError):
    """A note is malformed, carries a bad signature from a known key, or no known key verified it."""


def valid_key_name(name: str) -> bool:
    """Non-empty, at most MAX_KEY_NAME_BYTES, no Unicode space, no "+", no control character."""
    return (
        bool(name)
        and len(name.encode("utf-8", "surrogatepass")) <= MAX_KEY_NAME_BYTES
        and not any(c.isspace() for c in name)
        and "+" not in name
        and not has_control(name, allow_newline=False)
    )


def key_id_for(name: str, signature_type: int, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || type || public key)[:4]``."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()[:KEY_ID_BYTES]


def note_key_id(name: str, public_key: bytes) -> bytes:
    """Key id of an Ed25519 note key: the first 4 bytes of sha256(name || 0x0A || 0x01 || key)."""
    return key_id_for(name, ED25519_TYPE, public_key)


@dataclass(frozen=True)
class NoteVerifier:
    """A known Ed25519 note key: signatures with this name and key id must verify with ``public_key``."""

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        if not valid_key_name(self.name):
            raise ValueError(f"invalid note key name {self.name!r}")
        if len(self.key_id) != KEY_ID_BYTES or len(self.public_key) != PUBLIC_KEY_BYTES:
            raise ValueError("a note verifier needs a 4-byte key id and a 32-byte Ed25519 public key")

    @classmethod
    def for_key(cls, name: str, public_key: bytes) -> NoteVerifier:
        return cls(name, note_key_id(name, public_key), public_key)

    def vkey(self) -> str:
        return format_vkey(self.name, self.key_id, ED25519_TYPE, self.public_key)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the key name, the 4-byte key id, the signature bytes after the id."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"\u2014 {self.name} {b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class SignedNote:
    """An opened note: its text (final newline included), every signature line parsed, and who verified it."""

    text: str
    signatures: tuple[NoteSignature, ...]
    #: Names of the known verifiers whose signature verified, in the order of their first line.
    verified_by: tuple[str, ...] = ()


def parse_note(note: str | bytes) -> SignedNote:
    """The note's text and signature lines, grammar checked, no signature verified. Raises NoteError."""
    if len(note) > MAX_NOTE_BYTES:
        raise NoteError(f"the note is over {MAX_NOTE_BYTES} bytes", reason=reasons.NOTE_TOO_LARGE)
    text = utf8_text(note, "the note", NoteError, reasons.NOTE_MALFORMED)
    if len(text.encode()) > MAX_NOTE_BYTES:
        raise NoteError(f"the note is over {MAX_NOTE_BYTES} bytes", reason=reasons.NOTE_TOO_LARGE)
    if has_control(text, allow_newline=True):
        raise NoteError(
            "the note holds a control character other than newline (a CR, a tab?)", reason=reasons.NOTE_MALFORMED
        )
    if not text.endswith("\n"):
        raise NoteError("the note does not end with a newline", reason=reasons.NOTE_MALFORMED)
    split = text.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no blank line before its signatures", reason=reasons.NOTE_MALFORMED)
    body, block = text[: split + 1], text[split + 2 :]
    if not body.strip("\n") or body.startswith("\n") or "\n\n" in body:
        raise NoteError("the note text is empty or holds a blank line", reason=reasons.NOTE_MALFORMED)
    if not block:
        raise NoteError("the note has no signature lines", reason=reasons.NOTE_MALFORMED)
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(
            f"the note carries {len(lines)} signature lines; at most {MAX_SIGNATURES}",
            reason=reasons.NOTE_TOO_MANY_SIGNATURES,
        )
    return SignedNote(body, tuple(_parse_signature_line(n, line) for n, line in enumerate(lines, 1)))


def _parse_signature_line(number: int, line: str) -> NoteSignature:
    match = _SIGNATURE_LINE.fullmatch(line)
    if match is None:
        raise NoteError(
            f"signature line {number} is not '\u2014 <key name> <base64>'", reason=reasons.NOTE_SIGNATURE_MALFORMED
        )
    name = match["name"]
    if not valid_key_name(name):
        raise NoteError(f"signature line {number} has an invalid key name", reason=reasons.NOTE_SIGNATURE_MALFORMED)
    raw = strict_b64decode(match["signature"])
    if raw is None:
        raise NoteError(
            f"signature line {number} is not standard padded base64", reason=reasons.NOTE_SIGNATURE_MALFORMED
        )
    if not KEY_ID_BYTES < len(raw) <= MAX_SIGNATURE_BYTES:
        raise NoteError(
            f"signature line {number} decodes to {len(raw)} bytes; a key id and 1 to "
            f"{MAX_SIGNATURE_BYTES - KEY_ID_BYTES} signature bytes expected",
            reason=reasons.NOTE_SIGNATURE_MALFORMED,
        )
    return NoteSignature(name, raw[:KEY_ID_BYTES], raw[KEY_ID_BYTES:])


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> SignedNote:
    """Parses the note and verifies it: see the module docstring. Raises NoteError with a stable reason."""
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for candidate in verifiers:
        pair = (candidate.name, candidate.key_id)
        if pair in known and known[pair] != candidate:
            # Two keys under one name and id: whoever configured them made a mistake we cannot resolve.
            raise NoteError(
                f"two verifier keys share the name {candidate.name!r} and key id {candidate.key_id.hex()}",
                reason=reasons.NOTE_VERIFIER_AMBIGUOUS,
            )
        known[pair] = candidate
    parsed = parse_note(note)
    message = parsed.text.encode()
    verified: list[str] = []
    for number, signature in enumerate(parsed.signatures, 1):
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue
        # Every line from a known key is checked, repeats included: a bad one refuses the note.
        if len(signature.signature) != ED25519_SIGNATURE_BYTES or not verify_signature(
            verifier.public_key, signature.signature, message
        ):
            raise NoteError(
                f"signature line {number} by known key {signature.name}+{signature.key_id.hex()} does not verify",
                reason=reasons.NOTE_SIGNATURE_INVALID,
            )
        if verifier.name not in verified:
            verified.append(verifier.name)
    if not verified:
        raise NoteError("no known key signed the note", reason=reasons.NOTE_UNVERIFIED)
    return SignedNote(parsed.text, parsed.signatures, tuple(verified))


def check_text(text: str) -> None:
    """Raises NoteError unless ``text`` can be a note's text: non-empty lines, each ending in a newline."""
    utf8_text(text, "the note text", NoteError, reasons.NOTE_MALFORMED)
    if (
        not text.endswith("\n")
        or text.startswith("\n")
        or "\n\n" in text
        or has_control(text, allow_newline=True)
        or len(text.encode()) > MAX_NOTE_BYTES
    ):
        raise NoteError(
            "note text must be non-empty lines, each ending in a newline, with no control character",
            reason=reasons.NOTE_MALFORMED,
        )


def sign_note(text: str, name: str, key: SigningKey) -> str:
    """``text`` (ending in a newline), a blank line, and one Ed25519 signature line by ``key`` under ``name``."""
    return text + "\n" + note_signature(text, name, key).line()


def note_signature(text: str, name: str, key: SigningKey) -> NoteSignature:
    """An Ed25519 signature of ``text`` by ``key`` under ``name``, for adding to a note."""
    check_text(text)
    if not valid_key_name(name):
        raise NoteError(f"invalid note key name {name!r}", reason=reasons.NOTE_KEY_NAME_INVALID)
    return NoteSignature(name, note_key_id(name, key.public_key), key.sign(text.encode()))


def format_vkey(name: str, key_id: bytes, signature_type: int, public_key: bytes) -> str:
    """A verifier key: ``<name>+<8 lowercase hex key id>+<base64(type || public key)>``."""
    return f"{name}+{key_id.hex()}+{b64encode(bytes([signature_type]) + public_key)}"


def parse_vkey(text: str) -> tuple[str, bytes, int, bytes]:
    """(name, key id, signature type, public key) of a vkey whose key id is the one its key gives.

    Only Ed25519 keys (type 0x01 and 0x04) are read. Raises NoteError ``VKEY_INVALID``.
    """
    match = _VKEY.fullmatch(text)
    if match is None or not valid_key_name(match["name"]):
        raise NoteError(f"{text!r} is not a verifier key '<name>+<hex id>+<base64 key>'", reason=reasons.VKEY_INVALID)
    raw = strict_b64decode(match["key"])
    if raw is None or len(raw) != 1 + PUBLIC_KEY_BYTES or raw[0] not in (ED25519_TYPE, COSIGNATURE_TYPE):
        raise NoteError(
            f"verifier key {match['name']!r} is not an Ed25519 key of type 0x01 or 0x04 in padded base64",
            reason=reasons.VKEY_INVALID,
        )
    name, key_id, signature_type, public_key = match["name"], bytes.fromhex(match["key_id"]), raw[0], raw[1:]
    try:
        check_public_key(public_key)
    except PublicKeyError as exc:
        raise NoteError(f"verifier key {name!r}: {exc.message}", reason=reasons.VKEY_INVALID) from exc
    if key_id != key_id_for(name, signature_type, public_key):
        raise NoteError(
            f"verifier key {name!r} names key id {key_id.hex()}, not its key's", reason=reasons.VKEY_INVALID
        )
    return name, key_id, signature_type, public_key
