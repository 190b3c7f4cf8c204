"""Entry point of the ``memos-grpc`` command: builds the parser from each subcommand module."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from memos_grpc import __version__
from memos_grpc.cli import bundle, cube, governance, health, keys, market, migrate, model, serve, space, trust


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memos-grpc",
        description="LLM memory as a governed resource: a MemCube vault over gRPC.",
    )
    parser.add_argument("--version", action="version", version=f"memos-grpc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, health, space, cube, governance, keys, trust, bundle, model, market, migrate):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
