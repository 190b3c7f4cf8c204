"""The real server as a child process, for tests that kill, signal or restart it.

``ServerProcess`` runs ``python -m memos_grpc.cli.main serve`` on a data
directory and a free 127.0.0.1 port, with the child's stdout and stderr
captured to a log file, and offers what durability and lifecycle tests need:
wait for grpc.health.v1 SERVING, ``kill9()`` (SIGKILL: no shutdown code
runs), ``terminate()`` (SIGTERM and wait: a graceful stop) and the log.

``ServerFactory`` starts servers for one test and stops whatever is still
running at the end. By default a child runs with ``MEMOS_EMBEDDER=none`` and
384-dimensional client-supplied vectors, so it is up in about two seconds;
``real_embedder=True`` loads all-MiniLM-L6-v2 (about ten seconds).
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from memos_test_support import BACKEND_VARIABLE, BearerToken, wait_until
from postgres_support import database_for

from memos_grpc._proto.memos.v1 import governance_service_pb2_grpc, vault_service_pb2_grpc

#: Environment that makes a child start fast: no model to load, clients send vectors.
FAST_ENV = {"MEMOS_EMBEDDER": "none", "MEMOS_VECTOR_DIMENSION": "384"}
#: Channel options that retry a refused connection quickly instead of backing off for seconds.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]
_LOG_TAIL_CHARS = 6000
_counter = itertools.count(1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(extra: Mapping[str, str] | None = None, *, real_embedder: bool = False) -> dict[str, str]:
    """The environment of a child server: this one minus MEMOS_* settings, offline, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    if not real_embedder:
        env.update(FAST_ENV)
    env.update(extra or {})
    return env


class ServerProcess:
    """One run of the server in a child process; restart by making another on the same data dir."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        real_embedder: bool = False,
        port: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = child_env(env, real_embedder=real_embedder)
        if os.environ.get(BACKEND_VARIABLE) == "postgres" and "MEMOS_POSTGRES_URL" not in self.env:
            # The same database for every run on this data directory, as a restart expects.
            self.env["MEMOS_POSTGRES_URL"] = database_for(data_dir)
        self._channels: list[grpc.Channel] = []
        self.process: subprocess.Popen[bytes] | None = None

    # -- starting --------------------------------------------------------------

    def spawn(self) -> ServerProcess:
        """Starts the child and returns at once (the port opens a little later)."""
        command = [
            sys.executable,
            "-m",
            "memos_grpc.cli.main",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            self.address,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.log_path.parent,
            )
        return self

    def wait_port_open(self, timeout: float = 60.0) -> None:
        """Returns as soon as the port accepts TCP connections."""

        def accepting() -> bool:
            self._check_alive("waiting for its port to open")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        self._wait(accepting, timeout, "the port to accept connections", interval=0.01)

    def wait_serving(self, timeout: float = 60.0) -> None:
        """Returns once grpc.health.v1 reports SERVING for the whole server."""
        self.wait_port_open(timeout)
        with self.channel() as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def serving() -> bool:
                self._check_alive("waiting for SERVING")
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                except grpc.RpcError:
                    return False
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

            self._wait(serving, timeout, "health SERVING", interval=0.05)

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str, interval: float) -> None:
        try:
            wait_until(predicate, timeout, what, interval)
        except AssertionError as exc:
            self.kill9()
            raise AssertionError(f"server at {self.address}: {exc}\n{self.log_tail()}") from None

    def _check_alive(self, doing: str) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ServerExitedError(
                f"server at {self.address} exited with {self.process.returncode} while {doing}\n{self.log_tail()}"
            )

    # -- clients ---------------------------------------------------------------

    def channel(self) -> grpc.Channel:
        """A new channel to the server as its bootstrap admin, closed by ``close()`` at the latest."""
        opened = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        self._channels.append(opened)
        token_file = self.data_dir / "admin.token"
        if token_file.exists():
            return grpc.intercept_channel(opened, BearerToken(token_file.read_text().strip()))
        return opened

    def vault(self, channel: grpc.Channel | None = None) -> vault_service_pb2_grpc.VaultServiceStub:
        return vault_service_pb2_grpc.VaultServiceStub(channel or self.channel())  # type: ignore[no-untyped-call]

    def governance(self, channel: grpc.Channel | None = None) -> governance_service_pb2_grpc.GovernanceServiceStub:
        return governance_service_pb2_grpc.GovernanceServiceStub(  # type: ignore[no-untyped-call]
            channel or self.channel()
        )

    # -- stopping --------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server was never spawned"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """SIGKILL: the process dies at once, running no shutdown code at all."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then waits for the exit; returns the exit code (kills it if it hangs)."""
        assert self.process is not None, "the server was never spawned"
        if self.alive():
            self.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None, "the server was never spawned"
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(
                f"server at {self.address} did not exit within {timeout:.0f}s\n{self.log_tail()}"
            ) from None

    def close(self) -> None:
        """Kills the child if it still runs, and closes every channel."""
        for opened in self._channels:
            opened.close()
        self._channels.clear()
        self.kill9()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- the log ---------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self) -> str:
        text = self.log_text()
        if len(text) > _LOG_TAIL_CHARS:
            text = "[...]\n" + text[-_LOG_TAIL_CHARS:]
        return f"--- server log ({self.log_path}) ---\n{text}--- end of server log ---"

    def wait_for_log(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Waits until a line of the log matches the regular expression ``pattern``."""
        compiled = re.compile(pattern)
        return wait_until(lambda: compiled.search(self.log_text()), timeout, f"log line /{pattern}/")


class ServerExitedError(AssertionError):
    """The child exited while the test was waiting for it."""


class ServerFactory:
    """Starts servers for one test, each with its own log file; stops the survivors at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[ServerProcess] = []

    def spawn(
        self, data_dir: Path | None = None, env: Mapping[str, str] | None = None, *, real_embedder: bool = False
    ) -> ServerProcess:
        """Starts a child without waiting for it."""
        data_dir = data_dir or self.tmp_path / "data"
        log_path = self.tmp_path / f"server-{next(_counter)}.log"
        server = ServerProcess(data_dir, log_path, env, real_embedder=real_embedder)
        self.started.append(server)
        return server.spawn()

    def start(
        self,
        data_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        *,
        real_embedder: bool = False,
        timeout: float = 60.0,
    ) -> ServerProcess:
        """Starts a child and waits for SERVING; retries on another port if its port was taken meanwhile."""
        for _attempt in range(3):
            server = self.spawn(data_dir, env, real_embedder=real_embedder)
            try:
                server.wait_serving(timeout)
                return server
            except ServerExitedError:
                log = server.log_text()
                if "LISTEN_FAILED" not in log and "Failed to bind" not in log:
                    raise
        raise AssertionError(f"no free port found for the server\n{server.log_tail()}")

    def close(self) -> None:
        for server in self.started:
            server.close()
