"""``memos-grpc market``: the marketplace from the command line.

``listing``, ``publish``, ``releases``, ``download``, ``yank``, ``acquire``, ``license``, ``revoke``, ``subscribe``
and ``log`` talk to a marketplace server through ``MemosClient`` (the connection options and ``--json`` of every
client command; they are in ``market_commands``); bundles stream from and to files with a progress bar. ``acquire``
writes the grant and its proof to the files ``verify`` and ``bundle import --grant --proof`` read. ``held``,
``sync`` and ``followed`` talk to the buyer's own node (``market_held``): the licenses it holds and the log it
follows.

``market verify`` checks a licensed release offline, with no server: the bundle, its license grant and the
grant's log proof under the buyer's trust root (``memos_grpc.marketplace.offline``), and prints a report in the
style of ``bundle verify``, exiting 1 with the reason when anything falls short.
"""

from __future__ import annotations

import argparse
import datetime as dt
import pathlib
from typing import Any

from memos_client.interchange import read_chunks

from memos_grpc.cli import market_commands, market_held
from memos_grpc.cli._connect import print_json
from memos_grpc.cli.bundle_inspect import fail
from memos_grpc.interchange.importer import bundle_limits
from memos_grpc.marketplace.grants import PRINCIPAL_NAME
from memos_grpc.marketplace.offline import (
    DEFAULT_MAX_AGE_SECONDS,
    LicensedReleaseVerification,
    verify_licensed_release,
)
from memos_grpc.primitives.canonical import format_time, parse_time
from memos_grpc.settings import Settings

#: The most a grant or proof file may hold before it is read (both formats are far smaller).
_MAX_SIDE_FILE_BYTES = 4 * 1024 * 1024


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``market`` and its subcommands to the ``memos-grpc`` parser."""
    market = commands.add_parser(
        "market",
        help="the marketplace: listings, releases, licenses, events, its log; verify licensed releases; "
        "a buyer's held licenses",
        description="MemStore, the marketplace.",
    )
    sub = market.add_subparsers(dest="market_command", required=True, metavar="COMMAND")
    market_commands.register(sub)
    market_held.register(sub)

    verify = sub.add_parser(
        "verify",
        help="verify a licensed release offline: bundle, grant and log proof under a trust root",
        description="Check, with no server, that RELEASE is intact, that GRANT is a license for it signed by a "
        "marketplace key of the trust root (for --licensee, inside its window at --at), and that PROOF shows the "
        "grant's log entry in the trust root's marketplace log, signed by the log key and cosigned by the quorum "
        "of its policy. Prints a report; exits 1 with the reason when anything falls short.",
    )
    verify.add_argument("file", type=pathlib.Path, metavar="RELEASE", help="the release bundle file")
    verify.add_argument("--grant", type=pathlib.Path, required=True, metavar="FILE", help="the grant (DSSE JSON)")
    verify.add_argument(
        "--proof", type=pathlib.Path, required=True, metavar="FILE", help="the grant's tlog-proof@v1 file"
    )
    verify.add_argument(
        "--trust-root",
        type=pathlib.Path,
        required=True,
        metavar="FILE",
        help="the buyer's trust root: its signed envelope (GetTrustRoot's signed_envelope)",
    )
    verify.add_argument(
        "--licensee", metavar="PRINCIPAL", help="the grant must license this principal (principals/<id>)"
    )
    verify.add_argument("--licensee-key", metavar="KEYID", help="and this key id (64 hex; required with --licensee)")
    verify.add_argument(
        "--at", type=_time, metavar="RFC3339", help="verify as of this time (default: now), e.g. 2026-06-01T00:00:00Z"
    )
    verify.add_argument(
        "--max-age",
        type=_seconds,
        metavar="SECONDS",
        help="the oldest witness cosignature that counts, in seconds before --at (default: the grant's "
        f"maxOfflineSeconds; {DEFAULT_MAX_AGE_SECONDS} when the grant cannot be read)",
    )
    verify.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify.set_defaults(handler=_verify)


def _time(text: str) -> dt.datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None


def _seconds(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a number of seconds (1 or more): {text!r}")
    return int(text)


def read_side_file(path: pathlib.Path) -> bytes:
    """A grant, proof or trust root file, refused past ``_MAX_SIDE_FILE_BYTES`` (OSError) before it is read whole."""
    with open(path, "rb") as source:
        data = source.read(_MAX_SIDE_FILE_BYTES + 1)
    if len(data) > _MAX_SIDE_FILE_BYTES:
        raise OSError(f"{path}: over {_MAX_SIDE_FILE_BYTES} bytes, too large for a grant, proof or trust root")
    return data


def _verify(args: argparse.Namespace) -> int:
    if (args.licensee is None) != (args.licensee_key is None):
        fail("--licensee and --licensee-key go together: a grant licenses a principal and one of its keys")
        return 2
    if args.licensee is not None and not PRINCIPAL_NAME.fullmatch(args.licensee):
        fail(f"--licensee must be principals/<id>, not {args.licensee!r}")
        return 2
    now: dt.datetime = args.at or dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        grant, proof, root = read_side_file(args.grant), read_side_file(args.proof), read_side_file(args.trust_root)
        with open(args.file, "rb") as source:
            result = verify_licensed_release(
                read_chunks(source),
                grant,
                proof,
                root,
                now=now,
                limits=bundle_limits(Settings()),
                licensee=None if args.licensee is None else (args.licensee, args.licensee_key),
                max_age=args.max_age,
            )
    except OSError as error:
        fail(str(error))
        return 1
    if args.json:
        print_json(_result_json(result, args.file, now))
    else:
        _print_result(result, args.file, now)
    if not result:
        first = result.shortfalls[0]
        fail(f"the licensed release is not valid: {first.reason}: {first.message}")
        return 1
    return 0


def _status(passed: bool | None) -> str:
    return {True: "ok", False: "FAILED", None: "skipped"}[passed]


def _print_result(result: LicensedReleaseVerification, path: pathlib.Path, now: dt.datetime) -> None:
    if result:
        print(f"{path}: VALID")
    else:
        print(f"{path}: INVALID  {result.reason}: {result.shortfalls[0].message}")
    grant = result.grant
    rows = [
        ("verified at", format_time(now)),
        ("statement", result.statement_digest),
        ("release", grant.release if grant else ""),
        ("license", grant.license if grant else ""),
        ("licensee", f"{grant.licensee_principal} (key {grant.licensee_key_id})" if grant else ""),
        ("log", grant.log_origin if grant else ""),
        ("max age", f"{result.max_age} s"),
    ]
    for label, value in rows:
        if value:
            print(f"{label + ':':<14}{value}")
    print("checks:")
    for step in result.steps:
        print(f"  {step.step.value + ':':<12}{_status(step.passed):<9}{step.detail}")
    for note in result.notes:
        print(f"note:         {note}")


def _result_json(result: LicensedReleaseVerification, path: pathlib.Path, now: dt.datetime) -> dict[str, Any]:
    grant = result.grant
    return {
        "file": str(path),
        "valid": bool(result),
        "reason": result.reason,
        "verified_at": format_time(now),
        "statement_digest": result.statement_digest,
        "release": grant.release if grant else "",
        "license": grant.license if grant else "",
        "licensee": {"principal": grant.licensee_principal, "key_id": grant.licensee_key_id} if grant else None,
        "log_origin": grant.log_origin if grant else "",
        "max_age_seconds": result.max_age,
        "checks": [{"step": s.step.value, "status": _status(s.passed), "detail": s.detail} for s in result.steps],
        "shortfalls": [{"step": s.step.value, "reason": s.reason, "message": s.message} for s in result.shortfalls],
        "notes": list(result.notes),
    }
