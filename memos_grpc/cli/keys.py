"""``memos-grpc keys``: make and show Ed25519 signing keys, offline (no server involved).

``keys generate`` writes a new private key (PEM, mode 0600, never over an
existing file); ``keys show`` prints the key id and public key of a key file,
or of a server's node key with ``--keys-dir`` or ``--data-dir`` (where the server would look: its
``keys_dir`` setting from the environment, else DIR/keys).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from memos_grpc.cli._connect import print_json
from memos_grpc.errors import MemosError
from memos_grpc.interchange.signers import NODE_KEY_FILE
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.settings import Settings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``keys`` and its subcommands to the ``memos-grpc`` parser."""
    keys = commands.add_parser("keys", help="make and show signing keys (offline)", description="Ed25519 signing keys.")
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")

    generate = sub.add_parser(
        "generate",
        help="write a new private key",
        description="Write a new Ed25519 private key (PEM, mode 0600) and print its key id and public key. "
        "An existing file is never overwritten.",
    )
    generate.add_argument("--out", type=pathlib.Path, required=True, metavar="FILE", help="the key file to create")
    generate.add_argument("--json", action="store_true", help="print JSON instead of text")
    generate.set_defaults(handler=_generate)

    show = sub.add_parser(
        "show",
        help="print the key id and public key of a private key",
        description="Print the key id and base64 public key of a private key file, or of a server's node key: "
        f"KEYS/{NODE_KEY_FILE} with --keys-dir KEYS, or with --data-dir DIR where that server looks for it (the "
        f"keys_dir setting, from MEMOS_KEYS_DIR, else DIR/keys).",
    )
    show.add_argument("file", metavar="FILE", type=pathlib.Path, nargs="?", help="a private key file (PEM)")
    show.add_argument("--data-dir", type=pathlib.Path, metavar="DIR", help="show the node key of this data directory")
    show.add_argument("--keys-dir", type=pathlib.Path, metavar="KEYS", help="show the node key of this key directory")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(handler=_show)


def key_summary(key: SigningKey, path: pathlib.Path) -> dict[str, str]:
    return {"file": str(path), "key_id": key.key_id, "public_key": key.public_key_b64}


def _print(summary: dict[str, str], as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    for label, value in summary.items():
        print(f"{label + ':':<12}{value}")


def _generate(args: argparse.Namespace) -> int:
    path: pathlib.Path = args.out
    key = SigningKey.generate()
    try:
        key.write(path)
    except MemosError as error:
        print(f"error: {error.reason}: {error.message}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    _print(key_summary(key, path), args.json)
    print(f"wrote a new private key to {path} (mode 0600): keep it secret", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    given = [arg for arg in (args.file, args.data_dir, args.keys_dir) if arg is not None]
    if len(given) != 1:
        print("error: give one of FILE, --keys-dir or --data-dir", file=sys.stderr)
        return 2
    path: pathlib.Path
    if args.file is not None:
        path = args.file
    elif args.keys_dir is not None:
        path = args.keys_dir / NODE_KEY_FILE
    else:
        try:
            path = Settings.load(overrides={"data_dir": args.data_dir}).key_dir / NODE_KEY_FILE
        except MemosError as error:
            print(f"error: {error.reason}: {error.message}", file=sys.stderr)
            return 2
    try:
        key = SigningKey.read(path)
    except MemosError as error:
        print(f"error: {error.reason}: {error.message}", file=sys.stderr)
        return 1
    _print(key_summary(key, path), args.json)
    return 0
