"""``memos-grpc health``: is the server up, and (``--wait``) wait until it is, for scripts that start one."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from memos_client import MemosClient, MemosError

from memos_grpc.cli._connect import common_options


def register(commands: Any) -> None:
    health = commands.add_parser(
        "health",
        parents=[common_options()],
        help="say whether the server is serving (no token needed)",
        description="Asks grpc.health.v1 whether the server is SERVING (its vault open). With --wait, waits until "
        "it is, following the server's own status changes; exits 1 if it is not serving (in time).",
    )
    health.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait up to this long")
    health.set_defaults(handler=_health)


def _health(args: argparse.Namespace) -> int:
    with MemosClient(args.server, timeout=args.timeout) as client:
        try:
            client.wait_until_serving(args.wait if args.wait > 0 else min(args.timeout, 5.0))
        except MemosError as error:
            print(f"{args.server}: not serving ({error.reason or error.code.name}: {error.message})", file=sys.stderr)
            return 1
    print(f"{args.server}: serving")
    return 0
