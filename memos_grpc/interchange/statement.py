"""The in-toto Statement v1 a bundle's envelope signs: building it, and parsing it once verified.

Subjects name every cube and blob entry of the bundle with its sha256 and
size; the predicate says what the bundle is (docs/protocol.md). The producer
writes canonical JSON; a verifier parses the verified bytes as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from memos_grpc import reasons
from memos_grpc.errors import BundleError
from memos_grpc.interchange import ijson
from memos_grpc.primitives.bounds import MAX_SUBJECT_SIZE, is_integer_in
from memos_grpc.primitives.canonical import canonical_json

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://memos-grpc.dev/MemCubeBundle/v1"
FORMAT_VERSION = 1
#: The predicate members of a marketplace release (docs/marketplace.md, "The release"), in this order:
#: the listing's name, the release id, the SPDX license expression and the terms digest.
RELEASE_FIELDS = ("listing", "release", "license", "termsDigest")

# Matched with fullmatch: "$" would also match before a trailing newline ("<64 hex>\n").
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CUBE_ENTRY = re.compile(r"cubes/[A-Za-z0-9][A-Za-z0-9._-]{0,94}\.pb")
_BLOB_ENTRY = re.compile(r"blobs/sha256/([0-9a-f]{64})")


@dataclass(frozen=True)
class Subject:
    """One bundle entry a statement vouches for: its entry name (``cubes/...`` or ``blobs/...``), sha256 and size."""

    name: str
    sha256: str
    size: int

    @property
    def is_blob(self) -> bool:
        return self.name.startswith("blobs/")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "digest": {"sha256": self.sha256}, "annotations": {"size": self.size}}


def cube_entry_name(provenance_id: str) -> str:
    return f"cubes/{provenance_id}.pb"


def blob_entry_name(digest: str) -> str:
    """``blobs/sha256/<hex>`` for a ``sha256:<hex>`` digest."""
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def build_statement(subjects: list[Subject], predicate: dict[str, Any]) -> bytes:
    """The statement's canonical JSON bytes."""
    return canonical_json(
        {
            "_type": STATEMENT_TYPE,
            "subject": [s.to_json() for s in subjects],
            "predicateType": PREDICATE_TYPE,
            "predicate": predicate,
        }
    )


@dataclass(frozen=True)
class Statement:
    """A verified in-toto statement: its subjects by entry name, and the predicate saying what the bundle is."""

    subjects: dict[str, Subject]
    predicate: dict[str, Any]


def parse_statement(payload: bytes, max_subjects: int) -> Statement:
    """Parses verified statement bytes; unknown fields are ignored. Raises BundleError."""
    try:
        document = ijson.loads(payload)
    except ijson.IJsonError as exc:
        raise BundleError(
            f"the statement is not strict JSON: {exc.message}", reason=reasons.BUNDLE_STATEMENT_INVALID
        ) from exc
    if not isinstance(document, dict):
        raise BundleError("the statement is not a JSON object", reason=reasons.BUNDLE_STATEMENT_INVALID)
    if document.get("_type") != STATEMENT_TYPE:
        raise BundleError(f"the statement's _type must be {STATEMENT_TYPE!r}", reason=reasons.BUNDLE_STATEMENT_INVALID)
    if document.get("predicateType") != PREDICATE_TYPE:
        raise BundleError(
            f"the statement's predicateType must be {PREDICATE_TYPE!r}, not {document.get('predicateType')!r}",
            reason=reasons.BUNDLE_STATEMENT_INVALID,
        )
    raw = document.get("subject")
    predicate = document.get("predicate", {})
    if not isinstance(raw, list) or not isinstance(predicate, dict):
        raise BundleError(
            "the statement needs a subject list and a predicate object", reason=reasons.BUNDLE_STATEMENT_INVALID
        )
    if len(raw) > max_subjects:
        raise BundleError(
            f"the statement lists {len(raw)} entries; the limit is {max_subjects} (bundle_max_entries)",
            reason=reasons.BUNDLE_TOO_MANY_ENTRIES,
        )
    subjects: dict[str, Subject] = {}
    for index, item in enumerate(raw):
        subject = _subject(index, item)
        if subject.name in subjects:
            raise BundleError(f"the statement lists {subject.name!r} twice", reason=reasons.BUNDLE_STATEMENT_INVALID)
        subjects[subject.name] = subject
    return Statement(subjects, predicate)


def _subject(index: int, item: Any) -> Subject:
    where = f"subject[{index}]"
    try:
        name, sha256, size = item["name"], item["digest"]["sha256"], item["annotations"]["size"]
    except (KeyError, TypeError) as exc:
        raise BundleError(
            f"{where} needs name, digest.sha256 and annotations.size", reason=reasons.BUNDLE_STATEMENT_INVALID
        ) from exc
    if not isinstance(name, str) or not isinstance(sha256, str) or not _HEX64.fullmatch(sha256):
        raise BundleError(f"{where} has a bad name or sha256", reason=reasons.BUNDLE_STATEMENT_INVALID)
    if not is_integer_in(size, 0, MAX_SUBJECT_SIZE):
        raise BundleError(
            f"{where} size must be an integer from 0 to {MAX_SUBJECT_SIZE}", reason=reasons.BUNDLE_STATEMENT_INVALID
        )
    blob = _BLOB_ENTRY.fullmatch(name)
    if blob is None and not _CUBE_ENTRY.fullmatch(name):
        raise BundleError(
            f"{where} names {name[:120]!r}; entries are cubes/<provenance-id>.pb or blobs/sha256/<hex>",
            reason=reasons.BUNDLE_STATEMENT_INVALID,
        )
    if blob is not None and blob.group(1) != sha256:
        raise BundleError(f"{where}: a blob's name must be its own sha256", reason=reasons.BUNDLE_STATEMENT_INVALID)
    return Subject(name, sha256, size)
