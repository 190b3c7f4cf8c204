"""``memos-grpc trust``: show, export and extend a server's trust root (docs/protocol.md, "The trust root").

``show`` prints the root in force: version, expiry, each role's keys and threshold, the marketplace log policies.
``export`` writes its signed envelope (``GetTrustRoot``'s ``signed_envelope``) to a file: the file ``market
verify --trust-root`` reads, and what a buyer's operator takes from a marketplace node. ``add-marketplace`` makes
a buyer's node trust a marketplace: it reads that node's exported root, takes its ``marketplace`` keys and its
``marketplaceLogs`` policies, and submits the next version of this node's root with them (``UpdateTrustRoot``,
signed by the node key, which the admin threshold of a node's own root accepts).
"""

from __future__ import annotations

import argparse
import datetime as dt
import pathlib
from dataclasses import dataclass

from memos_client import MemosClient, TrustRoot

from memos_grpc.cli._connect import common_options, message_dict, print_json, run
from memos_grpc.errors import TrustRootError
from memos_grpc.interchange import trust
from memos_grpc.interchange.dsse import Envelope, EnvelopeFormatError, parse_envelope, verify_envelope
from memos_grpc.primitives.canonical import format_time
from memos_grpc.primitives.keys import TrustedKey

#: The most a trust root file may hold before it is read (roots are bounded far below this).
_MAX_ROOT_FILE_BYTES = 4 * 1024 * 1024


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``trust`` and its subcommands to the ``memos-grpc`` parser."""
    common = common_options()
    root = commands.add_parser(
        "trust",
        help="show, export and extend the server's trust root",
        description="The server's trust root: which keys it trusts for what, and which marketplace logs.",
    )
    sub = root.add_subparsers(dest="trust_command", required=True, metavar="COMMAND")

    show = sub.add_parser("show", parents=[common], help="show the trust root in force")
    show.set_defaults(handler=_show)

    export = sub.add_parser(
        "export",
        parents=[common],
        help="write the trust root's signed envelope to a file",
        description="Write the trust root in force, as its signed DSSE envelope, to FILE: what 'market verify "
        "--trust-root' reads, and what 'trust add-marketplace --root' takes from a marketplace node.",
    )
    export.add_argument("--out", type=pathlib.Path, required=True, metavar="FILE")
    export.set_defaults(handler=_export)

    add = sub.add_parser(
        "add-marketplace",
        parents=[common],
        help="trust a marketplace: its marketplace key and log policy, from its exported trust root (admins)",
        description="Read a marketplace node's trust root (written there by 'trust export'), take the keys of its "
        "marketplace role and its marketplace log policies (log key, witnesses, quorum), and make them part of "
        "this server's trust root as its next version, signed by the server's node key. A policy of a log this "
        "root already names is replaced. Prints the new version.",
    )
    add.add_argument(
        "--root", type=pathlib.Path, required=True, metavar="FILE", help="the marketplace node's trust root envelope"
    )
    add.set_defaults(handler=_add_marketplace)


# -- show and export -------------------------------------------------------------------------------------------


def _origins(policies: tuple[str, ...]) -> list[str]:
    """The log origin each policy names (its ``log`` line's key name), read without judging the rest."""
    origins = []
    for text in policies:
        for line in text.splitlines():
            word, _, rest = line.partition(" ")
            if word == "log":
                origins.append(rest.partition("+")[0])
    return origins


def _show(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        root = client.get_trust_root()
        if args.json:
            shown = message_dict(root.proto)
            shown.pop("signed_envelope", None)  # base64 of the whole root again: 'trust export' writes it
            print_json(shown)
            return 0
        _print_root(root)
        return 0

    return run(args, action)


def _print_root(root: TrustRoot) -> None:
    print(f"version:      {root.version}")
    print(f"expires:      {format_time(root.expire_time) if root.expire_time else 'never'}")
    for name, role in sorted(root.roles.items()):
        counted = f"threshold {role.threshold} of {len(role.key_ids)}" if role.key_ids else "no keys"
        print(f"{name}:{' ' * max(1, 13 - len(name))}{counted}")
        for key_id in role.key_ids:
            key = root.keys.get(key_id)
            print(f"  {key_id}{f'  {key.name}' if key and key.name else ''}")
    if not root.log_policies:
        print("logs:         none")
        return
    for origin, text in zip(_origins(root.log_policies), root.log_policies, strict=False):
        print(f"log:          {origin}")
        for line in text.splitlines():
            print(f"  {line}")


def _export(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        root = client.get_trust_root()
        out: pathlib.Path = args.out
        out.write_bytes(root.signed_envelope)
        if args.json:
            print_json({"file": str(out), "version": root.version, "bytes": len(root.signed_envelope)})
        else:
            print(f"wrote trust root version {root.version} to {out}")
        return 0

    return run(args, action)


# -- add-marketplace -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Marketplace:
    """What a buyer takes from a marketplace node's trust root: its marketplace keys and its log policies."""

    keys: dict[str, TrustedKey]
    policies: tuple[str, ...]
    origins: tuple[str, ...]


def read_marketplace(path: pathlib.Path, now: dt.datetime) -> Marketplace:
    """The marketplace keys and log policies of a trust root envelope file; ValueError says what is wrong.

    The envelope must be a trust root signed by a threshold of its own admin keys and not expired: a file
    damaged or edited on its way is refused. Whether it is the marketplace the operator means is theirs to
    know (compare the key ids 'trust show' prints on both nodes); nothing here can tell.
    """
    with open(path, "rb") as source:
        data = source.read(_MAX_ROOT_FILE_BYTES + 1)
    if len(data) > _MAX_ROOT_FILE_BYTES:
        raise ValueError(f"{path}: over {_MAX_ROOT_FILE_BYTES} bytes, too large for a trust root")
    try:
        envelope = parse_envelope(data)
        if envelope.payload_type != trust.TRUST_ROOT_PAYLOAD_TYPE:
            raise ValueError(f"payloadType is {envelope.payload_type!r}, not {trust.TRUST_ROOT_PAYLOAD_TYPE!r}")
        theirs = trust.parse_trust_root(envelope.payload)
    except (EnvelopeFormatError, TrustRootError, ValueError) as error:
        raise ValueError(f"{path} is not a trust root envelope ('trust export' writes one): {error}") from None
    signed = verify_envelope(envelope, theirs.keys_for("admin"), theirs.threshold_for("admin"), now)
    if not signed:
        raise ValueError(f"{path}: the trust root is not signed by its own admin keys: {signed.message}")
    if theirs.expires <= now:
        raise ValueError(f"{path}: the trust root expired at {format_time(theirs.expires)}")
    keys = theirs.keys_for("marketplace")
    if not keys or not theirs.marketplace_logs:
        raise ValueError(
            f"{path}: the trust root names no marketplace key or no marketplace log; export it from a node "
            "with marketplace_enabled (it publishes both at start)"
        )
    origins = tuple(log.name for policy in theirs.log_policies for log in policy.logs)  # parse_trust_root checked
    return Marketplace(keys, theirs.marketplace_logs, origins)


def with_marketplace(ours: trust.TrustRoot, market: Marketplace) -> trust.TrustRoot | None:
    """The next version of ``ours`` trusting ``market``; None when ``ours`` already says all of it.

    The marketplace keys join the ``marketplace`` role (its threshold stays); each policy replaces one of
    ``ours`` naming the same log, and is added otherwise.
    """
    role = ours.role("marketplace")
    added = [k for k in market.keys if k not in role.key_ids]
    wanted = set(market.origins)
    kept = tuple(
        text
        for text, policy in zip(ours.marketplace_logs, ours.log_policies, strict=True)
        if text in market.policies or all(log.name not in wanted for log in policy.logs)
    )
    logs = (*kept, *(text for text in market.policies if text not in kept))
    if not added and logs == ours.marketplace_logs:
        return None
    keys = {**ours.keys, **{k: ours.keys.get(k, market.keys[k]) for k in market.keys}}
    roles = {**ours.roles, "marketplace": trust.Role((*role.key_ids, *added), role.threshold)}
    return trust.TrustRoot(ours.version + 1, ours.expires, keys, roles, logs)


def _add_marketplace(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        market = read_marketplace(args.root, dt.datetime.now(dt.UTC))
        current = client.get_trust_root()
        ours = trust.parse_trust_root(parse_envelope(current.signed_envelope).payload)
        proposed = with_marketplace(ours, market)
        if proposed is None:
            version = current.version
        else:
            envelope = Envelope(trust.TRUST_ROOT_PAYLOAD_TYPE, proposed.payload())
            version = client.update_trust_root(envelope.to_json(), add_node_signature=True).version
        if args.json:
            print_json(
                {
                    "version": version,
                    "changed": proposed is not None,
                    "marketplace_keys": sorted(market.keys),
                    "logs": list(market.origins),
                }
            )
        elif proposed is None:
            print(f"trust root version {version} already trusts this marketplace; nothing changed")
        else:
            print(f"trust root version {version}")
        if not args.json:
            print(f"marketplace keys: {', '.join(sorted(market.keys))}")
            print(f"logs:             {', '.join(market.origins)}")
        return 0

    return run(args, action)
