"""The ``memstore-entry/v1`` line format: what one leaf of the marketplace's transparency log holds.

An entry is a few ASCII lines with identical bytes in every language (no JSON): the event type, the release
statement it concerns, the digest of the signed statement that records the event, the signer's key id and, for a
yank or a revoke, the log index of the entry it acts on. ``parse`` accepts exactly the bytes ``encode`` writes
(docs/marketplace.md, "Log entries"); the envelopes themselves live in the marketplace's store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memos_grpc import reasons

#: The first line of every entry of this version.
HEADER = "memstore-entry/v1"
#: Entry types; ``yank`` and ``revoke`` (and only they) carry a ``ref`` line.
ENTRY_TYPES = ("publish", "grant", "yank", "revoke", "key")
REF_TYPES = frozenset({"yank", "revoke"})
#: An entry is at most this many bytes (the log refuses anything larger before hashing it).
MAX_ENTRY_BYTES = 64 * 1024
#: Log indexes are tree sizes minus one: a tree holds at most 2^63 - 1 leaves.
MAX_LOG_INDEX = 2**63 - 2

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{64}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_OTHER_VERSION = re.compile(r"memstore-entry/v[0-9]{1,9}")
_FIELDS = ("type", "subject", "statement", "signer")


class EntryError(ValueError):
    """The bytes are not a ``memstore-entry/v1`` entry; ``reason`` is stable (docs/marketplace.md)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Entry:
    """One log entry. Digests are ``sha256:<64 lowercase hex>``; ``signer`` is a key id (64 lowercase hex)."""

    type: str
    #: The release statement the event concerns (for ``key``: the statement of the key change).
    subject: str
    #: sha256 of the payload bytes of the signed envelope that records the event.
    statement: str
    signer: str
    #: The log index of the entry a ``yank`` or ``revoke`` acts on; None for every other type.
    ref: int | None = None

    def __post_init__(self) -> None:
        # Checked at construction so that encode() can only write what parse() reads back.
        _check_type(self.type)
        _check_digest("subject", self.subject)
        _check_digest("statement", self.statement)
        _check_signer(self.signer)
        if self.type in REF_TYPES:
            if self.ref is None:
                raise EntryError(reasons.ENTRY_REF_MISSING, f"a {self.type} entry needs ref, the index it acts on")
            if isinstance(self.ref, bool) or not isinstance(self.ref, int) or not 0 <= self.ref <= MAX_LOG_INDEX:
                raise EntryError(reasons.ENTRY_REF_INVALID, f"ref must be a log index from 0 to {MAX_LOG_INDEX}")
        elif self.ref is not None:
            raise EntryError(reasons.ENTRY_REF_UNEXPECTED, f"a {self.type} entry carries no ref")

    def encode(self) -> bytes:
        lines = [
            HEADER,
            f"type {self.type}",
            f"subject {self.subject}",
            f"statement {self.statement}",
            f"signer {self.signer}",
        ]
        if self.ref is not None:
            lines.append(f"ref {self.ref}")
        return ("\n".join(lines) + "\n").encode("ascii")


def parse(data: bytes) -> Entry:
    """The entry ``data`` encodes, read by the one grammar of docs/marketplace.md; raises EntryError."""
    if len(data) > MAX_ENTRY_BYTES:
        raise EntryError(reasons.ENTRY_TOO_LARGE, f"the entry is {len(data)} bytes; at most {MAX_ENTRY_BYTES}")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise EntryError(reasons.ENTRY_MALFORMED, f"the entry is not ASCII (byte {exc.start})") from exc
    if "\r" in text:
        raise EntryError(reasons.ENTRY_MALFORMED, 'lines end with "\\n" alone; the entry holds a "\\r"')
    if not text.endswith("\n"):
        raise EntryError(reasons.ENTRY_MALFORMED, 'the entry must end with "\\n"')
    lines = text[:-1].split("\n")
    if lines[0] != HEADER:
        if _OTHER_VERSION.fullmatch(lines[0]):
            raise EntryError(reasons.ENTRY_VERSION_UNSUPPORTED, f"{lines[0]!r} is not {HEADER!r}")
        raise EntryError(reasons.ENTRY_MALFORMED, f"the first line must be {HEADER!r}")
    values: list[str] = []
    for number, field in enumerate(_FIELDS, 2):
        values.append(_value(lines, number, field))
    kind, subject, statement, signer = values
    _check_type(kind)
    _check_digest("subject", subject)
    _check_digest("statement", statement)
    _check_signer(signer)
    ref: int | None = None
    if kind in REF_TYPES:
        if len(lines) < 6 or not lines[5].startswith("ref "):
            if len(lines) < 6:
                raise EntryError(reasons.ENTRY_REF_MISSING, f"a {kind} entry needs a line 6 'ref <log index>'")
            raise EntryError(reasons.ENTRY_MALFORMED, "line 6 must be 'ref <log index>'")
        ref = _ref(lines[5][4:])
        extra = 6
    else:
        if len(lines) > 5 and lines[5].startswith("ref "):
            raise EntryError(reasons.ENTRY_REF_UNEXPECTED, f"a {kind} entry carries no ref line")
        extra = 5
    if len(lines) > extra:
        raise EntryError(reasons.ENTRY_MALFORMED, f"a {kind} entry has {extra} lines; this one has {len(lines)}")
    return Entry(kind, subject, statement, signer, ref)


def _value(lines: list[str], number: int, field: str) -> str:
    """The value of line ``number`` (1-based), which must be ``<field> <value>``."""
    if len(lines) < number or not lines[number - 1].startswith(field + " "):
        raise EntryError(reasons.ENTRY_MALFORMED, f"line {number} must be '{field} <value>'")
    return lines[number - 1][len(field) + 1 :]


def _check_type(kind: str) -> None:
    if kind not in ENTRY_TYPES:
        raise EntryError(reasons.ENTRY_TYPE_INVALID, f"type {str(kind)[:40]!r} is not one of {', '.join(ENTRY_TYPES)}")


def _check_digest(field: str, value: str) -> None:
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise EntryError(reasons.ENTRY_DIGEST_INVALID, f"{field} must be sha256:<64 lowercase hex digits>")


def _check_signer(value: str) -> None:
    if not isinstance(value, str) or not _KEY_ID.fullmatch(value):
        raise EntryError(reasons.ENTRY_SIGNER_INVALID, "signer must be a key id: 64 lowercase hex digits")


def _ref(text: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) > MAX_LOG_INDEX:
        raise EntryError(
            reasons.ENTRY_REF_INVALID,
            f"ref {text[:40]!r} must be decimal without sign or leading zeros, 0 to {MAX_LOG_INDEX}",
        )
    return int(text)
