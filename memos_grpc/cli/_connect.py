"""What the client subcommands (``space``, ``cube``) share: connection options, output, errors.

``common_options`` is the parent parser of every leaf subcommand; ``run`` opens
a ``MemosClient`` and turns its errors into one ``error:`` line and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from memos_client import DEFAULT_TARGET, MemosClient, MemosError, UnavailableError

ENV_SERVER = "MEMOS_SERVER"
ENV_TOKEN = "MEMOS_TOKEN"

Handler = Callable[[argparse.Namespace], int]


def common_options() -> argparse.ArgumentParser:
    """A parent parser with the connection options and ``--json``, for every leaf subcommand."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--server",
        default=os.environ.get(ENV_SERVER) or DEFAULT_TARGET,
        metavar="HOST:PORT",
        help=f"the server to talk to (default: ${ENV_SERVER}, else {DEFAULT_TARGET})",
    )
    group.add_argument(
        "--token",
        default=os.environ.get(ENV_TOKEN) or None,
        help=f"bearer token sent with every call (default: ${ENV_TOKEN})",
    )
    group.add_argument("--token-file", type=pathlib.Path, metavar="PATH", help="read the bearer token from this file")
    group.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="per-call timeout (default: 30)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def parse_label(text: str) -> tuple[str, str]:
    """An argparse type for ``key=value``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def labels_of(pairs: list[tuple[str, str]] | None) -> dict[str, str]:
    """The labels given as repeated ``--label key=value`` options."""
    return dict(pairs or [])


def _token(args: argparse.Namespace) -> str | None:
    token_file: pathlib.Path | None = args.token_file
    if token_file is not None:
        return token_file.read_text(encoding="utf-8").strip() or None
    token: str | None = args.token
    return token


def run(args: argparse.Namespace, action: Callable[[MemosClient], int]) -> int:
    """Runs ``action`` with a client built from ``args``; errors become one stderr line and exit code 1."""
    server: str = args.server
    try:
        with MemosClient(server, token=_token(args), timeout=args.timeout) as client:
            return action(client)
    except UnavailableError as error:
        if error.reason:
            _fail(f"{error.reason}: {error.message}")
        else:
            _fail(f"UNAVAILABLE: the server at {server} is unreachable ({error.message})")
    except MemosError as error:
        _fail(f"{error.reason or error.code.name}: {error.message}")
    except (OSError, ValueError) as error:
        _fail(str(error))
    return 1


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def message_dict(message: Message) -> dict[str, Any]:
    """A protobuf message as a JSON-ready dict (proto field names, as in filters and input files)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def print_json(value: Any) -> None:
    """Prints ``value`` as indented JSON on stdout."""
    print(json.dumps(value, indent=2, ensure_ascii=False))


def preview(text: str, width: int = 80) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
