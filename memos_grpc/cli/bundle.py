"""``memos-grpc bundle``: export, import, verify and inspect signed bundles of cubes.

``export`` and ``import`` stream between a server and a file with a progress bar; ``verify`` asks the server, or
checks locally against given keys with ``--offline``; ``inspect`` reads a bundle file offline, entry by entry,
and shows its (unverified unless ``--trust-key``) statement and contents. Files are streamed, never read whole.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import json
import os
import pathlib
import sys
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from memos_client import BundleVerification, ImportResult, MemosClient, space_name
from memos_client.interchange import CONFLICT_POLICIES, ROLES, progress_updates, read_chunks, trust_policy

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.cli._connect import common_options, message_dict, preview, print_json, run
from memos_grpc.errors import BundleError
from memos_grpc.interchange.bundle import (
    ENVELOPE_NAME,
    MAJOR_VERSION,
    MARKER_NAME,
    BundleLimits,
    TrustPolicy,
    verify_bundle,
    verify_statement_envelope,
)
from memos_grpc.interchange.dsse import EnvelopeFormatError, EnvelopeVerification, parse_envelope
from memos_grpc.interchange.keys import PUBLIC_KEY_BYTES, TrustedKey, key_id
from memos_grpc.interchange.report import verification_message
from memos_grpc.interchange.tarstream import TarEntry, TarLimits, TarReader
from memos_grpc.settings import Settings

_CUBE_PREFIX, _CUBE_SUFFIX = "cubes/", ".pb"
#: What inspect accepts: anything a ustar archive can hold (it is a viewer; verify applies the server's limits).
_INSPECT_LIMITS = TarLimits(max_entry_bytes=8**11 - 1, max_bundle_bytes=1 << 62, max_entries=1 << 62)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``bundle`` and its subcommands to the ``memos-grpc`` parser."""
    common = common_options()
    bundle = commands.add_parser(
        "bundle", help="export, import, verify and inspect signed bundles", description="Signed bundles of cubes."
    )
    sub = bundle.add_subparsers(dest="bundle_command", required=True, metavar="COMMAND")

    export = sub.add_parser(
        "export",
        parents=[common],
        help="write a signed bundle of a space's cubes to a file",
        description="Export the cubes of SPACE (all, or those named or matching --filter) as a bundle signed by "
        "the server, to FILE. The file appears only once complete (it is written to FILE.part first).",
    )
    export.add_argument("space", metavar="SPACE", help="the space id or name")
    export.add_argument("--out", type=pathlib.Path, required=True, metavar="FILE", help="the bundle file to write")
    export.add_argument("--name", action="append", metavar="CUBE", help="export this cube (id or name; repeatable)")
    export.add_argument("--filter", default="", help="an AIP-160 filter the exported cubes must match")
    export.set_defaults(handler=_export)

    import_ = sub.add_parser(
        "import",
        parents=[common],
        help="verify a bundle file and import its cubes into a space",
        description="Upload FILE to the server, which verifies it against its trust root and imports its cubes "
        "into SPACE, all or nothing.",
    )
    import_.add_argument("space", metavar="SPACE", help="the space id or name")
    import_.add_argument("file", type=pathlib.Path, metavar="FILE", help="the bundle file")
    import_.add_argument(
        "--conflict",
        default="skip",
        choices=[c.replace("_", "-") for c in CONFLICT_POLICIES],
        help="for a cube already in the space: keep it (skip, the default), add a new version, or replace it",
    )
    _add_trust_options(import_)
    import_.set_defaults(handler=_import)

    verify = sub.add_parser(
        "verify",
        parents=[common],
        help="verify a bundle file (against the server's trust root, or --offline against given keys)",
        description="Verify FILE without importing it and print the report; exit 1 when it is not valid. "
        "By default the server verifies it against its trust root; with --offline it is checked here, "
        "against the --trust-key public keys, and no server is needed.",
    )
    verify.add_argument("file", type=pathlib.Path, metavar="FILE", help="the bundle file")
    _add_trust_options(verify)
    verify.add_argument("--offline", action="store_true", help="verify here against --trust-key, not on the server")
    _add_key_options(verify)
    verify.set_defaults(handler=_verify)

    inspect = sub.add_parser(
        "inspect",
        help="show what a bundle file holds (offline)",
        description="Read FILE entry by entry and show its format version, statement, signers and contents. "
        "The statement is UNVERIFIED unless --trust-key is given and its signatures check out.",
    )
    inspect.add_argument("file", type=pathlib.Path, metavar="FILE", help="the bundle file")
    inspect.add_argument("--limit", type=int, default=50, metavar="N", help="show at most N entries (0: all)")
    inspect.add_argument("--role", default="node", choices=ROLES, help="the role the trusted keys play (a label)")
    _add_key_options(inspect)
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect.set_defaults(handler=_inspect)


def _add_trust_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--role", default="node", choices=ROLES, help="whose signatures count: keys of this role (default: node)"
    )
    parser.add_argument(
        "--require-key",
        action="append",
        default=[],
        metavar="KEYID",
        help="a key id that must be among the signers (repeatable)",
    )


def _add_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-key",
        action="append",
        default=[],
        type=_public_key,
        metavar="PUBKEY_B64",
        help="a trusted Ed25519 public key, base64 (repeatable; see 'keys show')",
    )
    parser.add_argument(
        "--threshold", type=int, default=1, metavar="N", help="distinct trusted keys that must sign (default 1)"
    )


def _public_key(text: str) -> TrustedKey:
    """An argparse type: a base64 raw Ed25519 public key."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise argparse.ArgumentTypeError(f"not base64: {text!r}") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise argparse.ArgumentTypeError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, not {len(raw)}")
    return TrustedKey(key_id(raw), raw)


def _local_policy(args: argparse.Namespace, required_key_ids: list[str]) -> TrustPolicy | None:
    """The policy of the --trust-key options, or None when none were given."""
    keys: list[TrustedKey] = args.trust_key
    if not keys:
        return None
    return TrustPolicy(args.role, {k.key_id: k for k in keys}, args.threshold, tuple(required_key_ids))


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


# -- export and import -----------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        out: pathlib.Path = args.out
        size = client.export_bundle_to_file(args.space, out, names=args.name or (), filter=args.filter, progress=True)
        if args.json:
            print_json({"space": space_name(args.space), "file": str(out), "bytes": size})
        else:
            print(f"exported {space_name(args.space)} to {out} ({size} bytes)")
        return 0

    return run(args, action)


def _import(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        result = client.import_bundle_file(
            args.space,
            args.file,
            conflict_policy=args.conflict,
            role=args.role,
            required_key_ids=args.require_key,
            progress=True,
        )
        if args.json:
            print_json(message_dict(result.proto))
        else:
            _print_import(result, space_name(args.space), args.file)
        return 0

    return run(args, action)


def _print_import(result: ImportResult, space: str, path: pathlib.Path) -> None:
    print(f"imported {path} into {space}")
    rows = [
        ("created", result.created_count),
        ("skipped", result.skipped_count),
        ("new version", result.new_version_count),
        ("replaced", result.replaced_count),
        ("re-embedded", result.reembedded_count),
        ("statement", result.verification.statement_digest),
    ]
    for label, value in rows:
        print(f"{label + ':':<14}{value}")
    _print_signers(result.verification)


def _print_signers(report: BundleVerification) -> None:
    print("signers:" if report.signatures else "signers:      none")
    for check in report.signatures:
        who = f"  {check.principal}" if check.principal else ""
        print(f"  {check.key_id or check.key_id_hint or '(no key id)'}  {check.status}{who}")


# -- verify ----------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    if not args.offline:
        if args.trust_key:
            _fail("--trust-key is for --offline; the server verifies against its own trust root")
            return 2

        def action(client: MemosClient) -> int:
            report = client.verify_bundle_file(
                args.file, role=args.role, required_key_ids=args.require_key, progress=True
            )
            return _report(report, args)

        return run(args, action)
    policy = _local_policy(args, args.require_key)
    if policy is None:
        _fail("--offline needs at least one --trust-key PUBKEY_B64 (see 'memos-grpc keys show')")
        return 2
    try:
        report = _verify_locally(args.file, policy, progress=True)
    except OSError as error:
        _fail(str(error))
        return 1
    return _report(report, args)


def offline_limits() -> BundleLimits:
    """The limits a server with default settings applies, for verifying without one."""
    settings = Settings()
    return BundleLimits(
        max_entry_bytes=settings.max_payload_bytes,
        max_bundle_bytes=settings.bundle_max_bytes,
        max_entries=settings.bundle_max_entries,
        max_envelope_bytes=settings.bundle_max_envelope_bytes,
        max_cube_bytes=settings.bundle_max_cube_bytes,
    )


def _verify_locally(path: pathlib.Path, policy: TrustPolicy, *, progress: bool) -> BundleVerification:
    """Verifies a bundle file here, with the codec the server uses; the report has the server's shape."""
    names = {k: v.name for k, v in policy.keys.items()}
    with open(path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        with progress_updates(progress, size, path.name) as update:
            report = verify_bundle(read_chunks(source, update), policy, offline_limits(), dt.datetime.now(dt.UTC))
    role = trust_policy(policy.role, ()).role
    return BundleVerification.from_proto(verification_message(report, role, lambda k: names.get(k, "")))


def _report(report: BundleVerification, args: argparse.Namespace) -> int:
    if args.json:
        print_json(message_dict(report.proto))
    else:
        _print_report(report, args.file)
    if not report.valid:
        _fail(f"the bundle is not valid: {report.reason}: {report.message}")
        return 1
    return 0


def _print_report(report: BundleVerification, path: pathlib.Path) -> None:
    if report.valid:
        print(f"{path}: VALID")
    else:
        print(f"{path}: INVALID  {report.reason}: {report.message}")
    rows = [
        ("role", f"{report.role} (threshold {report.threshold})"),
        ("statement", report.statement_digest),
        ("cubes", str(report.cube_count)),
        ("blobs", f"{report.blob_count} ({report.blob_bytes} bytes)"),
        ("bundle bytes", str(report.bundle_bytes)),
        ("exporter", " on ".join(x for x in (report.exporter_principal, report.exporter_node) if x)),
        ("source", report.source_server),
        ("created", report.create_time.isoformat() if report.create_time else ""),
        ("embedder", report.embedding_fingerprint),
    ]
    for label, value in rows:
        if value:
            print(f"{label + ':':<14}{value}")
    _print_signers(report)


# -- inspect ---------------------------------------------------------------------


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


def _inspect(args: argparse.Namespace) -> int:
    path: pathlib.Path = args.file
    policy = _local_policy(args, [])
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
        _fail(str(error))
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
            f"the first entry is not {MARKER_NAME!r}: this is not a memos bundle", reason="BUNDLE_MARKER_MISSING"
        )
    found.format_version = marker.read_all(64).decode("ascii", errors="replace").strip()
    if found.format_version.split(".", 1)[0] != str(MAJOR_VERSION):
        found.problems.append(
            ("BUNDLE_VERSION_UNSUPPORTED", f"format version {found.format_version[:20]!r}; this reads {MAJOR_VERSION}")
        )
    envelope = next(entries, None)
    if envelope is None or envelope.name != ENVELOPE_NAME:
        raise BundleError(f"the second entry is not {ENVELOPE_NAME!r}", reason="BUNDLE_ENVELOPE_MISSING")
    _read_envelope(envelope.read_all(settings.bundle_max_envelope_bytes), policy, found)
    seen: set[str] = set()
    for entry in entries:
        found.entry_count += 1
        seen.add(entry.name)
        _read_entry(entry, settings.bundle_max_cube_bytes, found)
    missing = [name for name in found.subjects if name not in seen]
    if missing:
        found.problems.append(
            ("BUNDLE_MISSING_ENTRY", f"{len(missing)} entries the statement lists are missing, e.g. {missing[0]!r}")
        )


def _read_envelope(data: bytes, policy: TrustPolicy | None, found: _Inspection) -> None:
    try:
        envelope = parse_envelope(data)
    except EnvelopeFormatError as error:
        found.problems.append(("BUNDLE_ENVELOPE_MALFORMED", str(error)))
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
        found.statement = json.loads(envelope.payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        found.problems.append(("BUNDLE_STATEMENT_INVALID", f"the statement is not JSON: {error}"))
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
        found.problems.append(("BUNDLE_UNLISTED_ENTRY", f"entry {entry.name!r} is not listed in the statement"))
    elif subject is not None and subject[1] != entry.size:
        found.problems.append(
            ("BUNDLE_SIZE_MISMATCH", f"entry {entry.name!r} holds {entry.size} bytes; the statement says {subject[1]}")
        )
    elif subject is not None and subject[0] != digest.hexdigest():
        found.problems.append(
            ("BUNDLE_DIGEST_MISMATCH", f"entry {entry.name!r} has sha256 {digest.hexdigest()}; the statement differs")
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
        _fail(f"{reason}: {message}")


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
