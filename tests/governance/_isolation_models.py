"""The isolation matrix's rows for transforms, their operations and GetModel.

TransformCube's cells demote an activation cube of their own (no model work,
so the effect is quick to see); the operation rows read or cancel one
finished operation the owner started, made once per world.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from _isolation_world import PAYLOAD, SPACE, Access, Row, Target, Who, World, assert_effect

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as sch
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub

_S = "/memos.v1.SchedulerService/"
_DIGEST = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
_operations: dict[int, str] = {}


def _activation_cube(w: World, cell: str) -> cube_pb2.MemCube:
    """An activation cube of the cell's own in S (the world's uploaded payload), with its source text."""
    activation = cube_pb2.ActivationPayload(
        blob=cube_pb2.BlobRef(digest=_DIGEST),
        model_fingerprint="gpt2@sha256:" + "0" * 64,
        source_text=f"the memory of {cell}",
    )
    return w.vault.CreateCube(
        v.CreateCubeRequest(parent=SPACE, cube_id=cell, cube=cube_pb2.MemCube(activation=activation)),
        metadata=w.owner,
    )


def _type_of(w: World, name: str) -> int:
    return int(w.vault.GetCube(v.GetCubeRequest(name=name), metadata=w.admin).type)


def _demote(w: World, cell: str) -> Target:
    cube = _activation_cube(w, cell)
    request = sch.TransformCubeRequest(parent=SPACE, names=[cube.name], target_type=cube_pb2.MEMORY_TYPE_PLAINTEXT)

    def effect(allowed: bool) -> None:
        deadline = time.monotonic() + 30
        while allowed and _type_of(w, cube.name) != cube_pb2.MEMORY_TYPE_PLAINTEXT and time.monotonic() < deadline:
            time.sleep(0.05)
        demoted = _type_of(w, cube.name) == cube_pb2.MEMORY_TYPE_PLAINTEXT
        assert_effect(demoted, allowed)

    return Target(request, effect)


def world_operation(w: World) -> str:
    """A finished operation the owner started (a demotion), made on first use."""
    if id(w) not in _operations:
        cube = _activation_cube(w, "operation-source")
        scheduler = SchedulerServiceStub(w.channel)
        started = scheduler.TransformCube(
            sch.TransformCubeRequest(parent=SPACE, names=[cube.name], target_type=cube_pb2.MEMORY_TYPE_PLAINTEXT),
            metadata=w.owner,
        )
        *_, last = scheduler.WatchOperation(sch.WatchOperationRequest(name=started.name), metadata=w.owner)
        assert last.state == sch.Operation.STATE_SUCCEEDED, last
        _operations[id(w)] = started.name
    return _operations[id(w)]


def _is_the_operation(w: World, _who: Who, response: Any) -> None:
    operations = response if isinstance(response, list) else [response]
    assert [op.name for op in operations] == [world_operation(w)]
    assert operations[-1].state == sch.Operation.STATE_SUCCEEDED


def _names_the_model(_w: World, _who: Who, response: sch.ModelInfo) -> None:
    assert response.fingerprint.startswith("gpt2@sha256:")


MODEL_ROWS: list[Row] = [
    Row(_S + "TransformCube", Access.SPACE_WRITE, True, _demote),
    Row(
        _S + "GetOperation",
        Access.SPACE_READ,
        False,
        lambda w, _c: Target(sch.GetOperationRequest(name=world_operation(w))),
        _is_the_operation,
    ),
    Row(
        _S + "WatchOperation",
        Access.SPACE_READ,
        False,
        lambda w, _c: Target(sch.WatchOperationRequest(name=world_operation(w))),
        _is_the_operation,
    ),
    # Cancelling a finished operation changes nothing, but the call is still a mutation, and audited.
    Row(
        _S + "CancelOperation",
        Access.SPACE_WRITE,
        True,
        lambda w, _c: Target(sch.CancelOperationRequest(name=world_operation(w))),
        _is_the_operation,
    ),
    Row(_S + "GetModel", Access.AUTHENTICATED, False, lambda _w, _c: Target(sch.GetModelRequest()), _names_the_model),
]
