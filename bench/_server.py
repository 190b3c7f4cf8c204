"""What every benchmark here shares: a memos-grpc server started as a child process, and how to call it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


class Target(NamedTuple):
    """Where the server listens, and the call metadata it needs (the admin's bearer token, if any)."""

    address: str
    metadata: tuple[tuple[str, str], ...]


def start_server(
    data_dir: Path, dim: int, log_path: Path, embedder: str = "none", env: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Target]:
    """Starts the server and waits for SERVING; calls authenticate as the bootstrap admin if it wrote a token.

    ``embedder`` is the server's MEMOS_EMBEDDER: "none" (clients send ``dim``-d vectors) or the packaged
    "all-MiniLM-L6-v2" (the server embeds plaintext itself). ``env`` adds variables (``MEMOS_*`` settings) to
    the environment the server inherits.
    """
    with socket.socket() as sock:  # a free port
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    env = (
        os.environ
        | {"MEMOS_EMBEDDER": embedder, "MEMOS_VECTOR_DIMENSION": str(dim), "HF_HUB_OFFLINE": "1"}
        | dict(env or {})
    )
    command = [sys.executable, "-m", "memos_grpc.cli.main", "serve", "--data-dir", str(data_dir), "--listen", address]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    token = data_dir / "admin.token"
                    auth = (("authorization", f"Bearer {token.read_text().strip()}"),) if token.exists() else ()
                    return proc, Target(address, auth)
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server not SERVING within 120s:\n{log_path.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> float:
    """Stops the server with SIGTERM, as an operator would; returns the seconds until it exited."""
    stopping = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)  # on timeout the caller's handler kills it
    return time.perf_counter() - stopping
