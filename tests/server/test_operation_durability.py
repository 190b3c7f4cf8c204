"""Operations across kill -9: what was queued or running is reported interrupted, and nothing half-done lands.

The server runs as a child process with a tiny GPT-2 (``model_dir``) and no
embedder (clients send vectors); it is killed mid-training and started again
on the same data directory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from _process import ServerFactory
from tiny_models import save_gpt2

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub

SPACE = "spaces/ops"
Op = s.Operation


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path)
    yield factory
    factory.close()


def test_operations_cut_short_by_kill9_are_failed_at_restart_and_commit_nothing(
    servers: ServerFactory, tmp_path: Path
) -> None:
    env = {"MEMOS_MODEL_DIR": str(save_gpt2(tmp_path / "gpt2"))}
    first = servers.start(env=env)
    first.governance().CreateSpace(g.CreateSpaceRequest(space_id="ops"), timeout=10)
    vector = v.Vector(values=[1.0] + [0.0] * 383)
    cube = first.vault().CreateCube(
        v.CreateCubeRequest(
            parent=SPACE, cube=cube_pb2.MemCube(plaintext={"text": "alice likes green tea"}), vector=vector
        ),
        timeout=10,
    )
    scheduler = SchedulerServiceStub(first.channel())
    training = s.LoraTraining(steps=2000)
    running = scheduler.TransformCube(
        s.TransformCubeRequest(
            parent=SPACE,
            names=[cube.name],
            target_type=cube_pb2.MEMORY_TYPE_PARAMETRIC,
            cube_id="a1",
            training=training,
        ),
        timeout=10,
    )
    queued = scheduler.TransformCube(
        s.TransformCubeRequest(parent=SPACE, names=[cube.name], target_type=cube_pb2.MEMORY_TYPE_ACTIVATION),
        timeout=10,
    )
    deadline = time.monotonic() + 60
    while scheduler.GetOperation(s.GetOperationRequest(name=running.name), timeout=10).step < 1:
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.05)
    assert scheduler.GetOperation(s.GetOperationRequest(name=queued.name), timeout=10).state == Op.STATE_QUEUED
    first.kill9()

    second = servers.start(first.data_dir, env=env)
    scheduler = SchedulerServiceStub(second.channel())
    for started in (running, queued):
        after = scheduler.GetOperation(s.GetOperationRequest(name=started.name), timeout=10)
        assert after.done and after.state == Op.STATE_FAILED, after
        assert after.error.reason == "OPERATION_INTERRUPTED" and after.error.code == grpc.StatusCode.ABORTED.value[0]
        assert after.request == started.request and after.HasField("end_time")
    vault = second.vault()
    assert vault.GetCube(v.GetCubeRequest(name=cube.name), timeout=10).type == cube_pb2.MEMORY_TYPE_PLAINTEXT
    with pytest.raises(grpc.RpcError) as caught:
        vault.GetCube(v.GetCubeRequest(name=f"{SPACE}/cubes/a1"), timeout=10)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert "operation(s) were cut short when their server stopped" in second.log_text()
