"""``memos-grpc serve``: run the server on a data directory."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from memos_grpc.errors import MemosError
from memos_grpc.settings import Settings


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the memos-grpc server. Settings come from --config, MEMOS_* variables and these flags "
        "(flags win); every setting is listed in docs/configuration.md.",
    )
    parser.add_argument("--data-dir", type=Path, help="data directory (default: ./data)")
    parser.add_argument("--listen", help="HOST:PORT to listen on (default: 127.0.0.1:50051)")
    parser.add_argument("--config", type=Path, help="a TOML file of settings")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Before torch loads OpenMP: its threads otherwise spin while they wait for each other, and on a
    # machine whose cores are shared every embedding step then stalls for whole scheduler slices
    # (p95 of a search 0.5 s instead of 60 ms; docs/performance.md). An operator's setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        settings = Settings.load(
            config_file=args.config,
            overrides={"data_dir": args.data_dir, "listen": args.listen, "log_level": args.log_level},
        )
    except MemosError as exc:
        print(f"error: {exc.reason}: {exc.message}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from memos_grpc.server.app import MemosServer  # heavy imports only when serving

    try:
        server = MemosServer(settings)
        server.start()
    except MemosError as exc:
        logging.getLogger("memos_grpc").error("cannot start: %s: %s", exc.reason, exc.message)
        return 1
    server.wait_for_termination()
    return 0
