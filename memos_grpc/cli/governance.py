"""``memos-grpc principal``, ``credential`` and ``audit``: identities, their signing keys, tokens and the audit log.

``audit export`` writes the audit log as JSON lines (one event per line, in
sequence order) to stdout or a file; ``audit verify`` checks its hash chain
and exits 1 when it is broken.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import re
import sys
from typing import TextIO

from memos_client import MemosClient, Principal, PublicKey

from memos_grpc.cli._connect import common_options, message_dict, print_json, run


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = common_options()
    principal = commands.add_parser("principal", help="manage principals (admins)")
    sub = principal.add_subparsers(dest="principal_command", required=True, metavar="COMMAND")
    create = sub.add_parser("create", parents=[common], help="create a principal")
    create.add_argument("principal_id", metavar="ID")
    create.add_argument("--kind", default="user", choices=["user", "agent", "service", "peer_node"])
    create.add_argument("--display-name", default="")
    create.add_argument("--admin", action="store_true", help="may administer the server")
    create.add_argument(
        "--certificate-fingerprint", action="append", default=[], metavar="HEX", help="an mTLS client certificate"
    )
    create.set_defaults(handler=_principal_create)
    get = sub.add_parser("get", parents=[common], help="show a principal")
    get.add_argument("principal", metavar="ID")
    get.set_defaults(handler=lambda a: run(a, lambda c: _show(c.get_principal(a.principal), a.json)))
    list_ = sub.add_parser("list", parents=[common], help="list principals")
    list_.set_defaults(handler=_principal_list)
    delete = sub.add_parser("delete", parents=[common], help="delete a principal and its credentials")
    delete.add_argument("principal", metavar="ID")
    delete.set_defaults(handler=_principal_delete)
    key = sub.add_parser("key", help="signing keys of a principal (a licensee's key, a publisher's key)")
    keys = key.add_subparsers(dest="key_command", required=True, metavar="COMMAND")
    key_create = keys.add_parser(
        "create",
        parents=[common],
        help="have the server make and keep an Ed25519 key for a principal; prints its key id",
        description="The server makes an Ed25519 key for PRINCIPAL, keeps it (its exports are then signed by it "
        "too) and registers it to the principal: the key id a marketplace license is acquired for.",
    )
    key_create.add_argument("principal", metavar="PRINCIPAL", help="the principal id or name")
    key_create.add_argument(
        "--public-out", type=pathlib.Path, metavar="FILE", help="also write the public key (64 hex digits) here"
    )
    key_create.set_defaults(handler=_key_create)
    key_add = keys.add_parser(
        "add",
        parents=[common],
        help="register a public key a principal holds (e.g. its publisher key on a marketplace); prints its key id",
    )
    key_add.add_argument("principal", metavar="PRINCIPAL", help="the principal id or name")
    key_add.add_argument(
        "public_key", metavar="PUBLIC_KEY", help="the raw Ed25519 public key as 64 hex digits, or @FILE holding them"
    )
    key_add.set_defaults(handler=_key_add)

    credential = commands.add_parser("credential", help="create and revoke bearer tokens")
    sub = credential.add_subparsers(dest="credential_command", required=True, metavar="COMMAND")
    new = sub.add_parser("create", parents=[common], help="create a token (printed once)")
    new.add_argument("principal", metavar="PRINCIPAL")
    new.add_argument("--description", default="")
    new.add_argument("--expires-in-days", type=float, help="the token stops working after this many days")
    new.add_argument(
        "--token-out", type=pathlib.Path, metavar="FILE", help="write the token to this file (mode 0600), not stdout"
    )
    new.set_defaults(handler=_credential_create)
    revoke = sub.add_parser("revoke", parents=[common], help="revoke a token by its credential name")
    revoke.add_argument("name", metavar="principals/ID/credentials/ID")
    revoke.set_defaults(handler=lambda a: run(a, lambda c: print(c.revoke_credential(a.name).name, "revoked") or 0))

    audit = commands.add_parser("audit", help="export and verify the audit log (admins)")
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    export = sub.add_parser("export", parents=[common], help="write the audit log as JSON lines")
    export.add_argument("--filter", default="", help="an AIP-160 filter (docs/security.md)")
    export.add_argument("--output", "-o", default="-", help="a file to write (default: stdout)")
    export.set_defaults(handler=_audit_export)
    verify = sub.add_parser("verify", parents=[common], help="check the audit log's hash chain")
    verify.set_defaults(handler=_audit_verify)


def _show(principal: Principal, as_json: bool) -> int:
    if as_json:
        print_json(message_dict(principal.proto))
    else:
        flags = " admin" if principal.admin else ""
        print(f"{principal.name}  {principal.kind}{flags}  {principal.display_name}")
    return 0


def _principal_create(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        created = client.create_principal(
            args.principal_id,
            kind=args.kind,
            display_name=args.display_name,
            admin=args.admin,
            certificate_fingerprints=args.certificate_fingerprint,
        )
        return _show(created, args.json)

    return run(args, action)


def _principal_list(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        for principal in client.list_principals():
            _show(principal, args.json)
        return 0

    return run(args, action)


def _principal_delete(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        client.delete_principal(args.principal)
        print(f"deleted principals/{args.principal.removeprefix('principals/')}")
        return 0

    return run(args, action)


def _key_create(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        key = client.create_signing_key(args.principal)
        if args.public_out is not None:
            args.public_out.write_text(key.public_key.hex() + "\n", encoding="ascii")
        return _show_key(key, args.json)

    return run(args, action)


def _key_add(args: argparse.Namespace) -> int:
    text = args.public_key
    if text.startswith("@"):
        try:
            text = pathlib.Path(text[1:]).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as error:
            print(f"error: cannot read {text[1:]}: {error}", file=sys.stderr)
            return 2
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        print("error: PUBLIC_KEY must be 64 lowercase hex digits (a raw Ed25519 public key)", file=sys.stderr)
        return 2

    def action(client: MemosClient) -> int:
        return _show_key(client.register_public_key(args.principal, bytes.fromhex(text)), args.json)

    return run(args, action)


def _show_key(key: PublicKey, as_json: bool) -> int:
    """A principal's key: its key id (the one a license is acquired for), or the whole key as JSON."""
    if as_json:
        print_json(message_dict(key.proto))
    else:
        print(key.key_id)
    return 0


def write_secret(path: pathlib.Path, text: str) -> None:
    """Writes a secret to a new file that only its owner may read (mode 0600 from the start, never wider)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT: narrow it
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)


def _credential_create(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        expires = None
        if args.expires_in_days is not None:
            expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=args.expires_in_days)
        credential = client.create_credential(args.principal, description=args.description, expire_time=expires)
        if args.token_out is not None:
            write_secret(args.token_out, credential.token + "\n")
            print(credential.name)
        elif args.json:
            print_json(message_dict(credential.proto))
        else:
            print(f"{credential.name}\n{credential.token}")
            print("the token is shown only now: store it safely", file=sys.stderr)
        return 0

    return run(args, action)


def _audit_export(args: argparse.Namespace) -> int:
    def write(client: MemosClient, out: TextIO) -> int:
        count = 0
        for event in client.list_audit_events(filter=args.filter, page_size=1000):
            out.write(json.dumps(message_dict(event.proto), sort_keys=True) + "\n")
            count += 1
        print(f"exported {count} audit events", file=sys.stderr)
        return 0

    if args.output == "-":
        return run(args, lambda client: write(client, sys.stdout))
    with open(args.output, "w", encoding="utf-8") as out:
        return run(args, lambda client: write(client, out))


def _audit_verify(args: argparse.Namespace) -> int:
    def action(client: MemosClient) -> int:
        result = client.verify_audit_log()
        if result:
            print(f"audit log verified: {result.events_checked} events, chain intact")
            return 0
        print(f"audit log BROKEN at event {result.first_broken_sequence}: {result.problem}", file=sys.stderr)
        return 1

    return run(args, action)
