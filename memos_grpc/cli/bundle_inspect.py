"""``memos-grpc bundle inspect``: read a bundle file offline, entry by entry, and show what it holds.

The statement is shown as UNVERIFIED unless ``--trust-key`` keys verify it; each entry is hashed against it on
the way. The file is streamed, never read whole, and the listing stops at ``--limit`` entries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import pathlib
import sys
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from memos_client.interchange import read_chunks

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.cli._connect import preview, print_json
from memos_grpc.errors import BundleError
from memos_grpc.interchange import ijson
from memos_grpc.interchange.bundle import (
    ENVELOPE_NAME,
    MAJOR_VERSION,
    MARKER_NAME,
    TrustPolicy,
    verify_statement_envelope,
)
from memos_grpc.interchange.dsse import EnvelopeFormatError, EnvelopeVerification, parse_envelope
from memos_grpc.interchange.tarstream import TarEntry, TarLimits, TarReader
from memos_grpc.primitives.grammar import Base64Error, decode_base64
from memos_grpc.primitives.keys import PUBLIC_KEY_BYTES, PublicKeyError, TrustedKey, check_public_key, key_id
from memos_grpc.settings import Settings

_CUBE_PREFIX, _CUBE_SUFFIX = "cubes/", ".pb"
#: Largest entry a ustar header can describe: its size field holds 11 octal digits.
_USTAR_MAX_ENTRY_BYTES = 8**11 - 1
#: A bound no file reaches (4.6 exabytes, or that many entries), standing for "no limit" where TarLimits wants a number.
_UNBOUNDED = 1 << 62
#: What inspect accepts: anything a ustar archive can hold (it is a viewer; verify applies the server's limits).
_INSPECT_LIMITS = TarLimits(max_entry_bytes=_USTAR_MAX_ENTRY_BYTES, max_bundle_bytes=_UNBOUNDED, max_entries=_UNBOUNDED)


def public_key(text: str) -> TrustedKey:
    """An argparse type: a base64 raw Ed25519 public key."""
    try:
        raw = decode_base64(text)
    except Base64Error as error:
        raise argparse.ArgumentTypeError(f"not padded standard base64: {text!r} ({error})") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise argparse.ArgumentTypeError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, not {len(raw)}")
    try:
        check_public_key(raw)
    except PublicKeyError as error:
        raise argparse.ArgumentTypeError(error.message) from None
    return TrustedKey(key_id(raw), raw)


def local_policy(args: argparse.Namespace, required_key_ids: list[str]) -> TrustPolicy | None:
    """The policy of the --trust-key options, or None when none were given."""
    keys: list[TrustedKey] = args.trust_key
    if not keys:
        return None
    return TrustPolicy(args.role, {k.key_id: k for k in keys}, args.threshold, tuple(required_key_ids))


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


@dataclass
class _Inspection:
    """What inspect found, in reading order; ``problems`` are (reason, message) pairs."""

    path: pathlib.Path
    limit: int
    format_version: str = ""
    statement: Any = None
    verification: dict[str, Any] | None = None
    signers: list[dict[str, str]] = field(default_factory=list)
    subjects: dict[str, tuple[str, int]] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)
    entry_count: int = 0
    cube_count: int = 0
    blob_count: int = 0
    content_bytes: int = 0
    bytes_read: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    def shown(self) -> bool:
        """Whether the entry being counted is among those listed."""
        return self.limit <= 0 or self.entry_count <= self.limit


def inspect_bundle(args: argparse.Namespace) -> int:
    path: pathlib.Path = args.file
    policy = local_policy(args, [])
    found = _Inspection(path, args.limit)
    try:
        with open(path, "rb") as source:
            reader = TarReader(read_chunks(source), _INSPECT_LIMITS)
            try:
                _read_bundle(reader, policy, found)
            except BundleError as error:
                found.problems.append((error.reason, error.message))
            found.bytes_read = reader.bytes_read
    except OSError as error:
        fail(str(error))
        return 1
    if args.json:
        print_json(_inspection_json(found))
    else:
        _print_inspection(found)
    return 1 if found.problems else 0


def _read_bundle(reader: TarReader, policy: TrustPolicy | None, found: _Inspection) -> None:
    settings = Settings()
    entries = reader.entries()
    marker = next(entries, None)
    if marker is None or marker.name != MARKER_NAME:
        raise BundleError(
            f"the first entry is not {MARKER_NAME!r}: this is not a memos bundle", reason=reasons.BUNDLE_MARKER_MISSING
        )
    found.format_version = marker.read_all(64).decode("ascii", errors="replace").strip()
    if found.format_version.split(".", 1)[0] != str(MAJOR_VERSION):
        found.problems.append(
            (
                reasons.BUNDLE_VERSION_UNSUPPORTED,
                f"format version {found.format_version[:20]!r}; this reads {MAJOR_VERSION}",
            )
        )
    envelope = next(entries, None)
    if envelope is None or envelope.name != ENVELOPE_NAME:
        raise BundleError(f"the second entry is not {ENVELOPE_NAME!r}", reason=reasons.BUNDLE_ENVELOPE_MISSING)
    _read_envelope(envelope.read_all(settings.bundle_max_envelope_bytes), policy, found)
    seen: set[str] = set()
    for entry in entries:
        found.entry_count += 1
        seen.add(entry.name)
        _read_entry(entry, settings.bundle_max_cube_bytes, found)
    missing = [name for name in found.subjects if name not in seen]
    if missing:
        found.problems.append(
            (
                reasons.BUNDLE_MISSING_ENTRY,
                f"{len(missing)} entries the statement lists are missing, e.g. {missing[0]!r}",
            )
        )


def _read_envelope(data: bytes, policy: TrustPolicy | None, found: _Inspection) -> None:
    try:
        envelope = parse_envelope(data)
    except EnvelopeFormatError as error:
        found.problems.append((reasons.BUNDLE_ENVELOPE_MALFORMED, str(error)))
        return
    found.signers = [{"keyid": s.keyid} for s in envelope.signatures]
    if policy is not None:
        checks: list[EnvelopeVerification] = []
        try:
            verify_statement_envelope(data, policy, dt.datetime.now(dt.UTC), checks)
            found.verification = {"verified": True, "role": policy.role, "threshold": policy.threshold}
        except BundleError as error:
            found.verification = {"verified": False, "reason": error.reason, "message": error.message}
            found.problems.append((error.reason, error.message))
        if checks:
            for signer, result in zip(found.signers, checks[0].signatures, strict=True):
                signer["status"] = result.status.value.lower()
                if result.key_id:
                    signer["key_id"] = result.key_id
    try:
        found.statement = ijson.loads(envelope.payload)
    except ijson.IJsonError as error:
        found.problems.append((reasons.BUNDLE_STATEMENT_INVALID, f"the statement is not strict JSON: {error.message}"))
        return
    subjects = found.statement.get("subject") if isinstance(found.statement, dict) else None
    for item in subjects if isinstance(subjects, list) else []:
        try:
            found.subjects[str(item["name"])] = (str(item["digest"]["sha256"]), int(item["annotations"]["size"]))
        except (KeyError, TypeError, ValueError):
            continue


def _read_entry(entry: TarEntry, max_cube_bytes: int, found: _Inspection) -> None:
    is_cube = entry.name.startswith(_CUBE_PREFIX) and entry.name.endswith(_CUBE_SUFFIX)
    keep = is_cube and entry.size <= max_cube_bytes and found.shown()
    digest = hashlib.sha256()
    kept = bytearray()
    for chunk in entry.chunks():
        digest.update(chunk)
        if keep:
            kept += chunk
    found.content_bytes += entry.size
    found.cube_count += is_cube
    found.blob_count += entry.name.startswith("blobs/")
    subject = found.subjects.get(entry.name)
    if found.statement is not None and subject is None:
        found.problems.append((reasons.BUNDLE_UNLISTED_ENTRY, f"entry {entry.name!r} is not listed in the statement"))
    elif subject is not None and subject[1] != entry.size:
        found.problems.append(
            (
                reasons.BUNDLE_SIZE_MISMATCH,
                f"entry {entry.name!r} holds {entry.size} bytes; the statement says {subject[1]}",
            )
        )
    elif subject is not None and subject[0] != digest.hexdigest():
        found.problems.append(
            (
                reasons.BUNDLE_DIGEST_MISMATCH,
                f"entry {entry.name!r} has sha256 {digest.hexdigest()}; the statement differs",
            )
        )
    if not found.shown():
        return
    row: dict[str, Any] = {"name": entry.name, "size": entry.size}
    if keep:
        row.update(_cube_row(bytes(kept)))
    found.entries.append(row)


def _cube_row(data: bytes) -> dict[str, Any]:
    try:
        cube = cube_pb2.MemCube.FromString(data)
    except DecodeError as error:
        return {"error": f"not a MemCube: {error}"}
    row: dict[str, Any] = {
        "type": cube_pb2.MemoryType.Name(cube.type).removeprefix("MEMORY_TYPE_").lower(),
        "cube": cube.name,
        "provenance_id": cube.provenance_id,
    }
    payload = cube.WhichOneof("payload")
    if payload == "plaintext":
        row["text"] = preview(cube.plaintext.text)
    elif payload in ("activation", "parametric"):
        blob = getattr(cube, payload).blob
        row["blob"] = f"{blob.digest} ({blob.size_bytes} bytes, {blob.media_type})"
    return row


def _inspection_json(found: _Inspection) -> dict[str, Any]:
    return {
        "file": str(found.path),
        "bytes": found.bytes_read,
        "format_version": found.format_version,
        "statement": found.statement,
        "statement_verification": found.verification or {"verified": None, "note": "UNVERIFIED: no --trust-key"},
        "signers": found.signers,
        "entry_count": found.entry_count,
        "cube_count": found.cube_count,
        "blob_count": found.blob_count,
        "entries": found.entries,
        "more_entries": found.entry_count - len(found.entries),
        "problems": [{"reason": r, "message": m} for r, m in found.problems],
    }


def _print_inspection(found: _Inspection) -> None:
    print(f"bundle:         {found.path} ({found.bytes_read} bytes)")
    print(f"format version: {found.format_version or '(none)'}")
    verification = found.verification
    if verification is None:
        label = "UNVERIFIED (signatures not checked; pass --trust-key to check them)"
    elif verification["verified"]:
        label = f"VERIFIED (role {verification['role']}, threshold {verification['threshold']})"
    else:
        label = f"NOT VERIFIED ({verification['reason']}: {verification['message']})"
    print(f"statement:      {label}")
    if found.statement is not None:
        print(_statement_text(found.statement, found.limit))
    print("signers:" if found.signers else "signers:        none")
    for signer in found.signers:
        status = f"  {signer['status']}" if "status" in signer else ""
        print(f"  keyid {signer['keyid'] or '(none)'}{status}")
    print(
        f"contents:       {found.entry_count} entries ({found.cube_count} cubes, {found.blob_count} blobs, "
        f"{found.content_bytes} bytes)"
    )
    for row in found.entries:
        print("  " + _entry_line(row))
    if found.entry_count > len(found.entries):
        print(f"  ... and {found.entry_count - len(found.entries)} more")
    for reason, message in found.problems:
        fail(f"{reason}: {message}")


def _statement_text(statement: Any, limit: int) -> str:
    """The statement as indented JSON; a long subject list is cut to ``limit`` items, with a note."""
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    if limit <= 0 or not isinstance(subjects, list) or len(subjects) <= limit:
        return json.dumps(statement, indent=2, ensure_ascii=False)
    cut = {**statement, "subject": subjects[:limit]}
    note = f"(the subject list is cut to {limit} of {len(subjects)}; --limit 0 or --json shows all)"
    return json.dumps(cut, indent=2, ensure_ascii=False) + "\n" + note


def _entry_line(row: dict[str, Any]) -> str:
    parts = [row["name"], f"{row['size']} bytes"]
    if "type" in row:
        parts += [row["type"], row["cube"], f"provenance {row['provenance_id']}"]
    for key in ("text", "blob", "error"):
        if key in row:
            parts.append(row[key])
    return "  ".join(parts)
