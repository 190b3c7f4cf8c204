"""``memos-grpc bundle``: export, import, verify and inspect signed bundles of cubes.

``export`` and ``import`` stream between a server and a file with a progress bar (``import --grant --proof``
imports a marketplace release under its license); ``verify`` asks the server, or
checks locally against given keys with ``--offline``; ``inspect`` reads a bundle file offline, entry by entry,
and shows its (unverified unless ``--trust-key``) statement and contents. Files are streamed, never read whole.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import pathlib

from memos_client import BundleVerification, MemosClient, release_info, space_name
from memos_client.interchange import CONFLICT_POLICIES, ROLES, progress_updates, read_chunks, trust_policy

from memos_grpc.cli._connect import common_options, message_dict, print_json, run
from memos_grpc.cli.bundle_inspect import fail, inspect_bundle, local_policy, public_key
from memos_grpc.cli.import_report import print_import, print_signers
from memos_grpc.cli.market import read_side_file
from memos_grpc.interchange.bundle import (
    TrustPolicy,
    verify_bundle,
)
from memos_grpc.interchange.dsse import EnvelopeFormatError, parse_envelope
from memos_grpc.interchange.importer import bundle_limits
from memos_grpc.interchange.report import verification_message
from memos_grpc.settings import Settings


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
    export.add_argument(
        "--release",
        metavar="LISTING/RELEASE",
        help="make it a marketplace release: the statement names this listing and release id (with --terms)",
    )
    export.add_argument(
        "--terms", type=pathlib.Path, metavar="FILE", help="with --release: the terms JSON the release is offered under"
    )
    export.set_defaults(handler=_export)

    import_ = sub.add_parser(
        "import",
        parents=[common],
        help="verify a bundle file and import its cubes into a space",
        description="Upload FILE to the server, which verifies it against its trust root and imports its cubes "
        "into SPACE, all or nothing. A marketplace release is imported with its license: --grant and --proof "
        "(as 'market acquire --grant-out --proof-out' writes them), for you as the licensee; --role and "
        "--require-key are not used then.",
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
    import_.add_argument(
        "--grant", type=pathlib.Path, metavar="FILE", help="a release's license grant (DSSE JSON; with --proof)"
    )
    import_.add_argument(
        "--proof", type=pathlib.Path, metavar="FILE", help="the grant's tlog-proof@v1 file (with --grant)"
    )
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
    inspect.set_defaults(handler=inspect_bundle)


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
        type=public_key,
        metavar="PUBKEY_B64",
        help="a trusted Ed25519 public key, base64 (repeatable; see 'keys show')",
    )
    parser.add_argument(
        "--threshold", type=int, default=1, metavar="N", help="distinct trusted keys that must sign (default 1)"
    )


# -- export and import -----------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    release = None
    if args.release or args.terms:
        listing, slash, release_id = (args.release or "").removeprefix("listings/").partition("/")
        release_id = release_id.removeprefix("releases/")
        if not (args.release and args.terms and slash and listing and release_id):
            raise SystemExit("error: --release LISTING/RELEASE and --terms FILE go together")
        try:
            release = release_info(listing, release_id, args.terms.read_bytes())
        except (OSError, ValueError) as error:
            raise SystemExit(f"error: --terms {args.terms}: {error}") from None

    def action(client: MemosClient) -> int:
        out: pathlib.Path = args.out
        size = client.export_bundle_to_file(
            args.space, out, names=args.name or (), filter=args.filter, release=release, progress=True
        )
        if args.json:
            print_json({"space": space_name(args.space), "file": str(out), "bytes": size})
        else:
            print(f"exported {space_name(args.space)} to {out} ({size} bytes)")
        return 0

    return run(args, action)


def _import(args: argparse.Namespace) -> int:
    if (args.grant is None) != (args.proof is None):
        fail("--grant and --proof go together: a release is imported with its grant and the grant's log proof")
        return 2
    if args.grant is not None and args.require_key:
        fail("--require-key is not used with --grant: the marketplace's grant vouches for the release")
        return 2

    def action(client: MemosClient) -> int:
        grant = proof = None
        if args.grant is not None:
            grant = read_side_file(args.grant)
            proof = read_side_file(args.proof).decode("utf-8")
        result = client.import_bundle_file(
            args.space,
            args.file,
            conflict_policy=args.conflict,
            role=args.role,
            required_key_ids=args.require_key,
            grant=grant,
            proof=proof,
            progress=True,
        )
        held = held_license_of(grant) if grant is not None else ""
        if args.json:
            print_json({**message_dict(result.proto), **({"held_license": held} if held else {})})
        else:
            print_import(result, space_name(args.space), args.file)
            if held:
                print(f"{'held license:':<14}{held}")
        return 0

    return run(args, action)


def held_license_of(grant: bytes) -> str:
    """The name the importing node gives the license of ``grant``: ``heldLicenses/`` + sha256 of its statement."""
    try:
        return "heldLicenses/" + hashlib.sha256(parse_envelope(grant).payload).hexdigest()
    except EnvelopeFormatError:
        return ""  # the server accepted it, so it parses; were it not, the name is just not shown


# -- verify ----------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    if not args.offline:
        if args.trust_key:
            fail("--trust-key is for --offline; the server verifies against its own trust root")
            return 2

        def action(client: MemosClient) -> int:
            report = client.verify_bundle_file(
                args.file, role=args.role, required_key_ids=args.require_key, progress=True
            )
            return _report(report, args)

        return run(args, action)
    policy = local_policy(args, args.require_key)
    if policy is None:
        fail("--offline needs at least one --trust-key PUBKEY_B64 (see 'memos-grpc keys show')")
        return 2
    try:
        report = _verify_locally(args.file, policy, progress=True)
    except OSError as error:
        fail(str(error))
        return 1
    return _report(report, args)


def _verify_locally(path: pathlib.Path, policy: TrustPolicy, *, progress: bool) -> BundleVerification:
    """Verifies a bundle file here, with the codec the server uses; the report has the server's shape."""
    names = {k: v.name for k, v in policy.keys.items()}
    with open(path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        with progress_updates(progress, size, path.name) as update:
            report = verify_bundle(
                read_chunks(source, update), policy, bundle_limits(Settings()), dt.datetime.now(dt.UTC)
            )
    role = trust_policy(policy.role, ()).role
    return BundleVerification.from_proto(verification_message(report, role, lambda k: names.get(k, "")))


def _report(report: BundleVerification, args: argparse.Namespace) -> int:
    if args.json:
        print_json(message_dict(report.proto))
    else:
        _print_report(report, args.file)
    if not report.valid:
        fail(f"the bundle is not valid: {report.reason}: {report.message}")
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
    print_signers(report)
