"""The server's lifecycle, over real child processes: health, reflection, SIGTERM, limits, CLI errors.

- The port opens before the vault: health says NOT_SERVING (and vault calls
  fail UNAVAILABLE) while the embedder loads, then SERVING.
- Server reflection lists the services and serves their descriptors.
- SIGTERM drains in-flight calls, refuses new ones, saves the vector
  indexes and exits 0.
- The gRPC message size limit is a setting.
- ``memos-grpc serve`` with a bad setting exits non-zero with a clear message.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from _process import ServerFactory, ServerProcess, child_env, wait_until
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from memos_test_support import BACKEND_VARIABLE, reason_of

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v

SPACE_ID = "life"
PARENT = f"spaces/{SPACE_ID}"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: What a call that the server refuses while shutting down fails with (CANCELLED when it
#: lands on a connection grpc-core is closing, UNAVAILABLE once the listener is gone).
REFUSED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path)
    yield factory
    factory.close()


def vector(seed: int) -> list[float]:
    values = np.random.default_rng(seed).normal(size=384).astype(np.float32)
    return (values / np.linalg.norm(values)).tolist()  # type: ignore[no-any-return]


def cube_request(cube_id: str, text: str | None = None) -> v.CreateCubeRequest:
    return v.CreateCubeRequest(
        parent=PARENT,
        cube_id=cube_id,
        cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text or f"memory {cube_id}")),
        vector=v.Vector(values=vector(zlib.crc32(cube_id.encode()))),
    )


# -- health ----------------------------------------------------------------------------


def test_health_is_not_serving_until_the_vault_is_open(servers: ServerFactory) -> None:
    """With the real embedder (seconds to load) the port is up long before the vault."""
    server = servers.spawn(real_embedder=True)
    server.wait_port_open(timeout=60)
    channel = server.channel()
    health = health_pb2_grpc.HealthStub(channel)

    watched: list[int] = []
    watch = health.Watch(health_pb2.HealthCheckRequest(service="memos.v1.VaultService"), timeout=90)

    def follow() -> None:
        try:
            for reply in watch:
                watched.append(reply.status)
                if reply.status == SERVING:
                    return
        except grpc.RpcError:
            pass

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()

    checked: list[int | str] = []
    vault_call_while_loading: grpc.RpcError | None = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            status: int | str = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        except grpc.RpcError as exc:
            status = exc.code().name
        if not checked or checked[-1] != status:
            checked.append(status)
        if status == SERVING:
            break
        if status == NOT_SERVING and vault_call_while_loading is None:
            try:
                server.governance(channel).ListSpaces(g.ListSpacesRequest(), timeout=5)
            except grpc.RpcError as exc:
                vault_call_while_loading = exc
        time.sleep(0.02)
    assert checked and checked[-1] == SERVING, f"never SERVING: {checked}\n{server.log_tail()}"
    # A check may time out while the model loads; the statuses themselves must go one way only.
    statuses = [status for status in checked if isinstance(status, int)]
    assert statuses == [NOT_SERVING, SERVING], f"health went {checked}"
    assert vault_call_while_loading is not None, "a vault call before the vault opened succeeded"
    assert vault_call_while_loading.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(vault_call_while_loading) == "VAULT_NOT_OPEN"

    follower.join(timeout=10)
    watch.cancel()
    assert watched == [NOT_SERVING, SERVING], f"Health.Watch saw {watched}"
    log = server.log_text()
    assert log.index("NOT_SERVING until the vault is open") < log.index("vault open at") < log.index("serving on")
    # The admin token exists only once the vault is open: a new channel carries it.
    assert server.governance(server.channel()).ListSpaces(g.ListSpacesRequest(), timeout=10) is not None
    assert server.terminate() == 0


# -- reflection ------------------------------------------------------------------------


def test_server_reflection_lists_services_and_serves_descriptors(servers: ServerFactory) -> None:
    server = servers.start()
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel())
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="memos.v1.VaultService"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="memos.v1.NoSuchService"),
    ]
    listed, found, missing = stub.ServerReflectionInfo(iter(requests), timeout=10)

    services = {s.name for s in listed.list_services_response.service}
    expected = {"memos.v1.VaultService", "memos.v1.GovernanceService", "grpc.health.v1.Health"}
    assert expected <= services, services

    files = {
        proto.name: proto
        for proto in (
            descriptor_pb2.FileDescriptorProto.FromString(blob)
            for blob in found.file_descriptor_response.file_descriptor_proto
        )
    }
    vault_file = files["memos/v1/vault_service.proto"]
    assert vault_file.package == "memos.v1"
    (service,) = [s for s in vault_file.service if s.name == "VaultService"]
    methods = {m.name for m in service.method}
    assert {"CreateCube", "BatchCreateCubes", "SearchCubes", "WritePayload", "ReadPayload"} <= methods
    assert "memos/v1/cube.proto" in vault_file.dependency

    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


# -- graceful shutdown -----------------------------------------------------------------


def test_sigterm_drains_in_flight_calls_then_saves_and_exits_zero(servers: ServerFactory) -> None:
    server = servers.start(env={"MEMOS_INDEX_FLUSH_SECONDS": "3600"})
    server.governance().CreateSpace(g.CreateSpaceRequest(space_id=SPACE_ID), timeout=10)
    stub = server.vault()
    created = stub.BatchCreateCubes(
        v.BatchCreateCubesRequest(parent=PARENT, requests=[cube_request(f"cube-{n}") for n in range(50)]),
        timeout=30,
    ).cubes
    index_path = server.data_dir / "index" / f"{SPACE_ID}.hnsw"
    assert not index_path.exists(), "background index flushing is off: nothing should be saved yet"

    chunk, chunks = 32 * 1024, 10
    payload = os.urandom(chunk * chunks)
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    release = threading.Event()

    def held_upload() -> Iterator[v.WritePayloadRequest]:
        """Two chunks, then the rest only once the test has seen the drain refuse new calls."""
        yield v.WritePayloadRequest(parent=PARENT, expected_digest=digest, data=payload[:chunk])
        yield v.WritePayloadRequest(data=payload[chunk : 2 * chunk])
        release.wait(30)
        for n in range(2, chunks):
            yield v.WritePayloadRequest(data=payload[n * chunk : (n + 1) * chunk])

    upload = stub.WritePayload.future(held_upload(), timeout=60)
    temp_dir = server.data_dir / "blobs" / "tmp"
    wait_until(  # the server is writing the upload: it is in flight when SIGTERM comes
        lambda: any(p.stat().st_size >= chunk for p in temp_dir.glob("*")), timeout=10, what="the upload's temp file"
    )
    server.send_signal(signal.SIGTERM)
    server.wait_for_log("shutting down: draining", timeout=10)

    def refused() -> grpc.StatusCode | None:
        try:
            server.governance().CreateSpace(g.CreateSpaceRequest(space_id="after-sigterm"), timeout=2)
        except grpc.RpcError as exc:
            return exc.code()
        raise AssertionError("a new call after SIGTERM was served")

    try:
        code = wait_until(refused, timeout=5, what="new calls to be refused")
        assert code in REFUSED, code
        assert not upload.done(), "the drain cut the upload short"
    finally:
        release.set()

    blob = upload.result(timeout=30).blob
    assert (blob.digest, blob.size_bytes) == (digest, len(payload))
    assert server.wait_exit(timeout=30) == 0, server.log_tail()
    log = server.log_text()
    for line in ("received SIGTERM", "vault closed; indexes saved", "shutdown complete"):
        assert line in log, f"{line!r} missing\n{server.log_tail()}"
    # On PostgreSQL the database's rows are the vector index: no file to save, nothing for the repair to check.
    derived_index = os.environ.get(BACKEND_VARIABLE) != "postgres"
    assert index_path.exists() or not derived_index, "the vector index was not saved at shutdown"

    restarted = servers.start(server.data_dir, env={"MEMOS_INDEX_FLUSH_SECONDS": "3600"})
    if derived_index:
        match = restarted.wait_for_log(r"checked against DuckDB: \d+ spaces, (\d+) vectors, (\d+) added, (\d+) removed")
        assert match.groups() == ("50", "0", "0"), "the index saved at shutdown was incomplete"
    else:
        restarted.wait_for_log(r"vectors are searched in PostgreSQL \(pgvector\): 1 spaces")
    stub = restarted.vault()
    for cube in created:
        assert stub.GetCube(v.GetCubeRequest(name=cube.name), timeout=10).etag == cube.etag
    hits = stub.SearchCubes(
        v.SearchCubesRequest(parent=PARENT, vector=v.Vector(values=vector(zlib.crc32(b"cube-7"))), top_k=1),
        timeout=10,
    ).results
    assert hits[0].cube.name == f"{PARENT}/cubes/cube-7" and hits[0].score > 0.999
    attached = stub.CreateCube(
        v.CreateCubeRequest(
            parent=PARENT,
            cube_id="kv",
            cube=cube_pb2.MemCube(
                activation=cube_pb2.ActivationPayload(blob=cube_pb2.BlobRef(digest=digest), model_fingerprint="m")
            ),
        ),
        timeout=10,
    )
    assert attached.activation.blob.size_bytes == len(payload)
    with pytest.raises(grpc.RpcError) as absent:
        restarted.governance().GetSpace(g.GetSpaceRequest(name="spaces/after-sigterm"), timeout=10)
    assert absent.value.code() == grpc.StatusCode.NOT_FOUND, "a call refused during shutdown was executed"


# -- message size limits ---------------------------------------------------------------


def test_receive_message_size_limit_is_a_setting(servers: ServerFactory) -> None:
    server = servers.start(env={"MEMOS_MAX_RECEIVE_MESSAGE_BYTES": "65536"})
    server.governance().CreateSpace(g.CreateSpaceRequest(space_id=SPACE_ID), timeout=10)
    stub = server.vault()

    with pytest.raises(grpc.RpcError) as too_big:
        stub.CreateCube(cube_request("too-big", "x" * 100_000), timeout=10)
    assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, too_big.value
    with pytest.raises(grpc.RpcError) as chunk_too_big:
        stub.WritePayload(iter([v.WritePayloadRequest(parent=PARENT, data=os.urandom(100_000))]), timeout=10)
    assert chunk_too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, chunk_too_big.value

    health = health_pb2_grpc.HealthStub(server.channel())
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == SERVING
    assert stub.CreateCube(cube_request("just-fits", "y" * 60_000), timeout=10).name.endswith("/just-fits")
    assert stub.CreateCube(cube_request("small"), timeout=10).name.endswith("/small")
    with pytest.raises(grpc.RpcError) as absent:
        stub.GetCube(v.GetCubeRequest(name=f"{PARENT}/cubes/too-big"), timeout=10)
    assert absent.value.code() == grpc.StatusCode.NOT_FOUND
    assert server.alive()


# -- the CLI ---------------------------------------------------------------------------


def serve_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("memos-grpc")
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "memos_grpc.cli.main"]
    return [*launcher, "serve", *args]


BAD_SETTINGS = {
    "workers-not-a-number": ({"MEMOS_WORKERS": "abc"}, "", "workers"),
    "workers-zero": ({"MEMOS_WORKERS": "0"}, "", "workers must be positive"),
    "unknown-embedder": ({"MEMOS_EMBEDDER": "word2vec"}, "", "embedder"),
    "unknown-config-key": ({}, "workers = 4\nbogus_knob = 1\n", "unknown setting(s): bogus_knob"),
    "config-not-toml": ({}, "workers = = 4\n", "cannot read config file"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_serve_with_a_bad_setting_exits_nonzero_with_a_clear_message(tmp_path: Path, case: str) -> None:
    env, config, expected = BAD_SETTINGS[case]
    data_dir = tmp_path / "data"
    args = ["--data-dir", str(data_dir), "--listen", "127.0.0.1:0"]
    if config:
        config_file = tmp_path / "memos.toml"
        config_file.write_text(config)
        args += ["--config", str(config_file)]
    done = subprocess.run(
        serve_command(*args), env=child_env(env), capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode != 0, done
    assert expected in done.stderr, done.stderr
    assert "INVALID_CONFIG" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert not data_dir.exists(), "a bad setting must be caught before anything is written"


def test_serve_on_a_port_in_use_exits_nonzero_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        done = subprocess.run(
            serve_command("--data-dir", str(tmp_path / "data"), "--listen", address),
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert done.returncode != 0, done
    assert address in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, f"a traceback instead of a clear message:\n{done.stderr}"


def test_server_process_helper_reports_a_child_that_dies(servers: ServerFactory) -> None:
    """A child that exits while being waited for fails the wait at once, with its log."""
    server: ServerProcess = servers.spawn(env={"MEMOS_WORKERS": "abc"})
    with pytest.raises(AssertionError, match=r"(?s)exited with 2 .*INVALID_CONFIG"):
        server.wait_serving(timeout=30)
