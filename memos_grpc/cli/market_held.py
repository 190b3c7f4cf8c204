"""The buyer's ``memos-grpc market`` subcommands, run against the buyer's own node: ``held``, ``sync``, ``followed``.

``held list`` and ``held get`` show the licenses the node holds for releases imported into it (``bundle import
--grant --proof``): their state and, per action the terms name, the uses counted and the limit. ``sync`` has the
node follow the marketplace's log now (admins) and ``followed`` shows what it has accepted of each log. ``revoke``
is the marketplace-side ``license revoke`` under the name the marketplace's command list gives it.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any

from memos_client import FollowedLog, HeldLicense, MemosClient, space_name

from memos_grpc.cli import market_commands
from memos_grpc.cli._connect import common_options, message_dict, print_json, run
from memos_grpc.cli.import_report import print_import
from memos_grpc.primitives.canonical import format_time


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the buyer-side subcommands (and the top-level ``revoke``) to ``memos-grpc market``."""
    common = common_options()

    held = sub.add_parser(
        "held",
        help="the licenses this node holds for imported releases: state and uses (on the buyer's node)",
        description="Licenses a buyer's node holds: each was verified when a release was imported with it "
        "('bundle import --grant --proof'). Its licensee and admins see it.",
    )
    helds = held.add_subparsers(dest="held_command", required=True, metavar="COMMAND")
    hlist = helds.add_parser("list", parents=[common], help="list the held licenses you may see")
    hlist.add_argument("--page-size", type=int, default=0, metavar="N", help="licenses per call (all are shown)")
    hlist.set_defaults(handler=_held_list)
    hget = helds.add_parser("get", parents=[common], help="show a held license: state, window, uses per action")
    hget.add_argument("held_license", metavar="NAME", help="heldLicenses/<hex>, the hex, or the grant digest")
    hget.set_defaults(handler=_held_get)

    pull = sub.add_parser(
        "pull",
        parents=[common],
        help="have this (buyer's) node pull a licensed release from its marketplace and import it",
        description="The node dials the marketplace it follows (marketplace_follow) with your token there, reads "
        "LICENSE (acquired for your key on this node) and imports its release into SPACE, checked as "
        "'bundle import --grant --proof' checks it. --server and --token are this node's.",
    )
    pull.add_argument("space", metavar="SPACE", help="the space id or name, on this node")
    pull.add_argument("license", metavar="LICENSE", help="licenses/<id> on the marketplace")
    pull.add_argument(
        "--marketplace-token-file", type=pathlib.Path, required=True, metavar="PATH", help="your token there"
    )
    pull.add_argument("--conflict", default="skip", choices=["skip", "new-version", "replace"])
    pull.set_defaults(handler=_pull)

    sync = sub.add_parser(
        "sync",
        parents=[common],
        help="follow the marketplace log now and act on its revocations and yanks (admins, buyer's node)",
        description="Have the node fetch the marketplace's latest cosigned checkpoint, check it against the "
        "trust root's log policy and for consistency with the last one accepted, read the new entries and act "
        "on the revocations and yanks among them. The node also does so every marketplace_sync_seconds.",
    )
    sync.set_defaults(handler=_sync)

    followed = sub.add_parser(
        "followed", parents=[common], help="what the node has accepted of each marketplace log (admins)"
    )
    followed.set_defaults(handler=_followed)

    revoke = sub.add_parser(
        "revoke", parents=[common], help="revoke a license, with a reason (as 'license revoke'; the listing's owner)"
    )
    revoke.add_argument("license", metavar="LICENSE")
    revoke.add_argument("--reason", required=True)
    revoke.set_defaults(handler=market_commands.license_revoke)


def _when(value: Any) -> str:
    return format_time(value) if value is not None else ""


def _uses(held: HeldLicense) -> str:
    """``recall 3/3, search 2`` : each action's uses, over its limit when it has one; refused ones marked."""
    parts = []
    for use in held.actions:
        count = f"{use.uses}/{use.limit}" if use.limit else str(use.uses)
        parts.append(f"{use.action} {count}{'' if use.allowed else ' (refused)'}")
    return ", ".join(parts)


def _state(held: HeldLicense) -> str:
    return held.state + (f" ({held.state_reason})" if held.state_reason else "")


def _held_list(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        found = client.list_held_licenses(page_size=args.page_size)
        if args.json:
            print_json([message_dict(x.proto) for x in found])
            return 0
        for held in found:
            yanked = "  yanked" if held.release_yanked else ""
            print(f"{held.name}  {_state(held)}  {held.release}  {held.licensee}{yanked}")
        return 0

    return run(args, action)


def _held_get(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        held = client.get_held_license(args.held_license)
        if args.json:
            print_json(message_dict(held.proto))
            return 0
        print(held.name)
        rows: list[tuple[str, object]] = [
            ("state", _state(held)),
            ("release", held.release + ("  (yanked)" if held.release_yanked else "")),
            ("license", held.license),
            ("licensee", f"{held.licensee} (key {held.licensee_key_id})"),
            ("valid", f"{_when(held.not_before)} to {_when(held.not_after)}"),
            ("log", f"{held.log_origin} (grant {held.grant_log_index}, publish {held.publish_log_index})"),
            ("cubes", held.cube_count),
            ("imported", _when(held.import_time)),
        ]
        for label, value in rows:
            print(f"{label + ':':<16}{value}")
        print("uses:")
        for use in held.actions:
            limit = f"of {use.limit}" if use.limit else "no limit"
            refused = "allowed" if use.allowed else f"refused: {use.reason}"
            print(f"  {use.action + ':':<12}{use.uses:>6}  {limit:<10}  {refused}")
        return 0

    return run(args, action)


def _show_followed(log: FollowedLog) -> None:
    print(log.origin)
    rows = [
        ("size", log.tree_size),
        ("root", log.root_hash.hex()),
        ("fresh", _when(log.fresh_time) or "never: no quorum-cosigned checkpoint accepted yet"),
        ("synced", _when(log.sync_time)),
    ]
    if log.last_error_reason:
        rows.append(("last error", f"{log.last_error_reason}: {log.last_error}"))
    for label, value in rows:
        print(f"{label + ':':<16}{value}")


def _pull(args: argparse.Namespace) -> int:
    try:
        token = args.marketplace_token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise SystemExit(f"error: --marketplace-token-file {args.marketplace_token_file}: {error}") from None

    def action(client: MemosClient) -> int:
        result = client.pull_release(args.space, args.license, token, conflict_policy=args.conflict)
        if args.json:
            print_json(message_dict(result.proto))
        else:
            print_import(result, space_name(args.space), args.license)
        return 0

    return run(args, action)


def _sync(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        log = client.sync_marketplace_log()
        if args.json:
            print_json(message_dict(log.proto))
        else:
            _show_followed(log)
        return 0

    return run(args, action)


def _followed(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        logs = client.list_followed_logs()
        if args.json:
            print_json([message_dict(x.proto) for x in logs])
            return 0
        for number, log in enumerate(logs):
            if number:
                print()
            _show_followed(log)
        return 0

    return run(args, action)
