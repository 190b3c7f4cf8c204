"""TransformCube through a real server with a tiny model: KV caches, demotion, LoRA training, operations.

The server loads a 2-layer Llama (grouped-query attention) saved from a
config; the tests load the same directory on their side, as a client would,
and check what the server stored against what the model computes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import torch
from memos_test_support import admin_token, authorized_channel, reason_of, start_server
from tiny_models import save_gpt2, save_llama

from memos_grpc._proto.memos.v1 import cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.models.activation import CacheSpec, decode_cache
from memos_grpc.models.fingerprint import model_fingerprint
from memos_grpc.models.host import ModelHost
from memos_grpc.models.kv import forward_with_cache
from memos_grpc.models.parametric import load_adapter, memory_loss, training_examples
from memos_grpc.server.app import MemosServer

Op = s.Operation
ACTIVATION, PARAMETRIC, PLAINTEXT = (
    cube_pb2.MEMORY_TYPE_ACTIVATION,
    cube_pb2.MEMORY_TYPE_PARAMETRIC,
    cube_pb2.MEMORY_TYPE_PLAINTEXT,
)
MEMORY = "alice likes green tea and bob prefers coffee in morning"
QUESTION = "what does alice drink"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def host(model_dir: Path) -> ModelHost:
    """The same model as the server's, loaded on the test's side as a client would."""
    return ModelHost(model_dir)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, model_dir: Path) -> Iterator[MemosServer]:
    running = start_server(tmp_path_factory.mktemp("transform"), embedder, model_dir=str(model_dir))
    yield running
    running.stop(grace=1)


@pytest.fixture
def scheduler(channel: grpc.Channel) -> SchedulerServiceStub:
    return SchedulerServiceStub(channel)


def create(vault: VaultServiceStub, space: str, text: str, **fields: object) -> cube_pb2.MemCube:
    cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text), **fields)
    return vault.CreateCube(v.CreateCubeRequest(parent=space, cube=cube))


def finish(scheduler: SchedulerServiceStub, operation: Op) -> list[Op]:
    """Every state WatchOperation streams until the operation is done."""
    seen = list(scheduler.WatchOperation(s.WatchOperationRequest(name=operation.name), timeout=120))
    assert seen and seen[-1].done, seen
    return seen


def payload(vault: VaultServiceStub, name: str) -> bytes:
    return b"".join(chunk.data for chunk in vault.ReadPayload(v.ReadPayloadRequest(name=name)))


def transform(scheduler: SchedulerServiceStub, space: str, names: list[str], target: int, **fields: object) -> Op:
    request = s.TransformCubeRequest(parent=space, names=names, target_type=target, **fields)  # type: ignore[arg-type]
    return scheduler.TransformCube(request)


def test_get_model_names_the_fingerprint_of_the_model_directory(
    scheduler: SchedulerServiceStub, model_dir: Path
) -> None:
    info = scheduler.GetModel(s.GetModelRequest())
    assert info.fingerprint == model_fingerprint(model_dir)
    assert (info.model_type, info.num_layers, info.num_kv_heads, info.head_dim) == ("llama", 2, 2, 8)
    assert info.dtype == "float32" and info.parameter_count > 0 and info.max_positions == 64
    assert list(info.default_target_modules) == ["q_proj", "v_proj"]


def test_an_activation_cube_gives_the_logits_of_its_text_in_the_prompt(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str, host: ModelHost
) -> None:
    cube = create(vault_stub, space, MEMORY)
    operation = transform(scheduler, space, [cube.name], ACTIVATION)
    assert operation.name.startswith(f"{space}/operations/") and not operation.done
    final = finish(scheduler, operation)[-1]
    assert final.state == Op.STATE_SUCCEEDED and final.cube == cube.name, final

    stored = vault_stub.GetCube(v.GetCubeRequest(name=cube.name))
    memory_ids = host.tokenizer(MEMORY, return_tensors="pt")["input_ids"]
    activation = stored.activation
    assert stored.type == ACTIVATION and stored.version == 2 and stored.provenance_id == cube.provenance_id
    assert stored.storage_mode == cube_pb2.STORAGE_MODE_BLOB
    assert (cube.state, stored.state) == (cube_pb2.LIFECYCLE_STATE_GENERATED, cube_pb2.LIFECYCLE_STATE_ACTIVATED)
    assert activation.model_fingerprint == host.fingerprint and activation.source_text == MEMORY
    assert (activation.num_layers, activation.num_heads, activation.dtype) == (2, 2, "float32")
    assert activation.token_count == memory_ids.shape[1]
    assert list(activation.shape) == [1, 2, memory_ids.shape[1], 8]
    blob = payload(vault_stub, cube.name)
    assert activation.blob.size_bytes == len(blob)
    assert activation.blob.media_type == "application/vnd.memos.activation+safetensors"

    # The memory and the question are tokenized apart, as a client holding only the cache must.
    question_ids = host.tokenizer(QUESTION, return_tensors="pt")["input_ids"]
    cached = forward_with_cache(
        host.model, decode_cache(blob, CacheSpec.for_model(host.model, host.fingerprint)), question_ids
    )
    with torch.no_grad():
        prompted = host.model(input_ids=torch.cat([memory_ids, question_ids], dim=1)).logits
    torch.testing.assert_close(cached[0, -1], prompted[0, -1], rtol=1e-5, atol=1e-5)

    # Still found by its text.
    hits = vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, text="green tea", mode=v.SEARCH_MODE_DENSE))
    assert cube.name in [hit.cube.name for hit in hits.results]


def test_demotion_restores_the_source_text_as_a_new_version(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str
) -> None:
    cube = create(vault_stub, space, "my office is on floor three", tags=["work"])
    finish(scheduler, transform(scheduler, space, [cube.name], ACTIVATION))
    final = finish(scheduler, transform(scheduler, space, [cube.name], PLAINTEXT))[-1]
    assert final.state == Op.STATE_SUCCEEDED, final
    demoted = vault_stub.GetCube(v.GetCubeRequest(name=cube.name))
    assert demoted.type == PLAINTEXT and demoted.plaintext.text == "my office is on floor three"
    assert demoted.storage_mode == cube_pb2.STORAGE_MODE_INLINE
    assert (demoted.version, list(demoted.tags)) == (3, ["work"])
    assert demoted.state == cube_pb2.LIFECYCLE_STATE_ACTIVATED  # demotion changes the type, not the state
    versions = vault_stub.ListCubeVersions(v.ListCubeVersionsRequest(name=cube.name)).versions
    by_number = sorted(versions, key=lambda c: c.version)
    assert [c.type for c in by_number] == [PLAINTEXT, ACTIVATION, PLAINTEXT]
    assert by_number[1].activation.source_text == "my office is on floor three"


def test_training_streams_progress_lowers_the_loss_and_stores_an_adapter_that_reloads(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str, host: ModelHost
) -> None:
    texts = ["alice likes green tea", "bob prefers coffee in morning", "my office is on floor three"]
    sources = [create(vault_stub, space, text, priority=10 * i) for i, text in enumerate(texts)]
    training = s.LoraTraining(steps=12, learning_rate=1e-2, rank=4, seed=3)
    operation = transform(scheduler, space, [c.name for c in sources], PARAMETRIC, cube_id="adapter", training=training)
    assert operation.total_steps == 12
    seen = finish(scheduler, operation)
    final = seen[-1]
    assert final.state == Op.STATE_SUCCEEDED and final.cube == f"{space}/cubes/adapter", final
    # A watch shows the latest state at each change it wakes for: how many of the 12 steps it shows
    # depends on how fast training runs, so only their order and the end are certain here (the library
    # test in tests/models/test_adapter_codec.py checks that every step is reported).
    steps = [op.step for op in seen if op.state == Op.STATE_RUNNING]
    assert steps == sorted(steps) and all(0 <= step <= 12 for step in steps), steps
    assert final.step == final.total_steps == 12
    assert 0 < final.loss < final.initial_loss

    cube = vault_stub.GetCube(v.GetCubeRequest(name=final.cube))
    adapter = cube.parametric
    assert cube.type == PARAMETRIC and cube.source == cube_pb2.SOURCE_FINE_TUNE and cube.priority == 20
    assert adapter.model_fingerprint == host.fingerprint and adapter.rank == 4 and adapter.training_steps == 12
    assert list(adapter.target_modules) == ["q_proj", "v_proj"]
    assert list(adapter.source_cubes) == [c.name for c in sources]
    assert adapter.source_text == "\n\n".join(texts)
    # The sources are untouched.
    assert [vault_stub.GetCube(v.GetCubeRequest(name=c.name)).version for c in sources] == [1, 1, 1]

    attached = load_adapter(host.model, host.fingerprint, payload(vault_stub, cube.name), adapter.adapter_config_json)
    try:
        examples = training_examples(host.tokenizer, texts, 64)
        assert memory_loss(attached, examples) == pytest.approx(final.loss, rel=1e-5)
    finally:
        attached.unload()


def test_a_cancelled_training_run_creates_nothing(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str
) -> None:
    source = create(vault_stub, space, "the cat sat on mat")
    training = s.LoraTraining(steps=2000)
    operation = transform(scheduler, space, [source.name], PARAMETRIC, cube_id="never", training=training)
    deadline = time.monotonic() + 60
    while scheduler.GetOperation(s.GetOperationRequest(name=operation.name)).step < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancelled = scheduler.CancelOperation(s.CancelOperationRequest(name=operation.name))
    assert cancelled.done and cancelled.state == Op.STATE_CANCELLED, cancelled
    assert (
        cancelled.error.reason == "OPERATION_CANCELLED" and cancelled.error.code == grpc.StatusCode.CANCELLED.value[0]
    )
    assert 2 <= cancelled.step < 2000
    with pytest.raises(grpc.RpcError) as caught:
        vault_stub.GetCube(v.GetCubeRequest(name=f"{space}/cubes/never"))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    # Done is done: a later cancel changes nothing, and the end was recorded.
    again = scheduler.CancelOperation(s.CancelOperationRequest(name=operation.name))
    assert again == scheduler.GetOperation(s.GetOperationRequest(name=operation.name)) == cancelled


def test_a_cube_changed_while_its_transform_waits_is_left_as_changed(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str
) -> None:
    blocker = create(vault_stub, space, "the cat sat on mat")
    busy = transform(scheduler, space, [blocker.name], PARAMETRIC, training=s.LoraTraining(steps=2000))
    cube = create(vault_stub, space, "alice likes green tea")
    waiting = transform(scheduler, space, [cube.name], ACTIVATION)  # queued behind the training run
    assert scheduler.GetOperation(s.GetOperationRequest(name=waiting.name)).state == Op.STATE_QUEUED
    # Changed after the request was checked and before the work is committed: the change must not be lost.
    vault_stub.UpdateCube(
        v.UpdateCubeRequest(cube=cube_pb2.MemCube(name=cube.name, tags=["changed"]), update_mask={"paths": ["tags"]})
    )
    scheduler.CancelOperation(s.CancelOperationRequest(name=busy.name))
    final = finish(scheduler, waiting)[-1]
    assert final.state == Op.STATE_FAILED, final
    assert (final.error.reason, final.error.code) == ("CUBE_CHANGED", grpc.StatusCode.ABORTED.value[0])
    stored = vault_stub.GetCube(v.GetCubeRequest(name=cube.name))
    assert (stored.type, list(stored.tags), stored.version) == (PLAINTEXT, ["changed"], 2)


@pytest.mark.parametrize(
    ("names", "target", "fields", "code", "reason"),
    [
        (["a", "b"], ACTIVATION, {}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAMES"),
        ([], ACTIVATION, {}, grpc.StatusCode.INVALID_ARGUMENT, "MISSING_NAMES"),
        (["a", "a"], PARAMETRIC, {}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAMES"),
        (["a"], cube_pb2.MEMORY_TYPE_UNSPECIFIED, {}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ENUM"),
        (["a"], PLAINTEXT, {}, grpc.StatusCode.FAILED_PRECONDITION, "TRANSFORM_UNSUPPORTED"),
        (["missing"], ACTIVATION, {}, grpc.StatusCode.NOT_FOUND, "CUBE_NOT_FOUND"),
        (
            ["a"],
            PARAMETRIC,
            {"training": s.LoraTraining(target_modules=["c_attn"])},
            grpc.StatusCode.INVALID_ARGUMENT,
            "ADAPTER_TARGET_MISMATCH",
        ),
        (
            ["a"],
            PARAMETRIC,
            {"training": s.LoraTraining(steps=10**6)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_TRAINING",
        ),
        (
            ["a"],
            PARAMETRIC,
            {"training": s.LoraTraining(rank=1000)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_TRAINING",
        ),
        (
            ["a"],
            PARAMETRIC,
            {"training": s.LoraTraining(learning_rate=float("nan"))},
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_TRAINING",
        ),
        (["a"], PARAMETRIC, {"cube_id": "a"}, grpc.StatusCode.INVALID_ARGUMENT, "CUBE_ID_TAKEN"),
        (["a"], PARAMETRIC, {"cube_id": "Not An Id"}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME"),
    ],
)
def test_bad_requests_fail_at_once_and_queue_nothing(
    vault_stub: VaultServiceStub,
    scheduler: SchedulerServiceStub,
    space: str,
    names: list[str],
    target: int,
    fields: dict[str, object],
    code: grpc.StatusCode,
    reason: str,
) -> None:
    for cube_id in {"a", "b"} & set(names):
        vault_stub.CreateCube(
            v.CreateCubeRequest(parent=space, cube_id=cube_id, cube=cube_pb2.MemCube(plaintext={"text": "the cat"}))
        )
    with pytest.raises(grpc.RpcError) as caught:
        transform(scheduler, space, [f"{space}/cubes/{n}" for n in names], target, **fields)
    assert (caught.value.code(), reason_of(caught.value)) == (code, reason), caught.value.details()
    for cube_id in {"a", "b"} & set(names):
        assert vault_stub.GetCube(v.GetCubeRequest(name=f"{space}/cubes/{cube_id}")).version == 1


def test_a_frozen_cube_a_cube_of_another_space_and_a_text_too_long_for_the_model_are_refused(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str
) -> None:
    frozen = create(vault_stub, space, "the cat sat on mat")
    vault_stub.FreezeCube(v.FreezeCubeRequest(name=frozen.name))
    long = create(vault_stub, space, "the cat " * 40)  # 80 tokens; the model reads 64
    cases = [
        (space, frozen.name, grpc.StatusCode.FAILED_PRECONDITION, "CUBE_FROZEN"),
        ("spaces/elsewhere", frozen.name, grpc.StatusCode.INVALID_ARGUMENT, "PARENT_MISMATCH"),
        (space, long.name, grpc.StatusCode.INVALID_ARGUMENT, "TEXT_TOO_LONG_FOR_MODEL"),
    ]
    for parent, name, code, reason in cases:
        with pytest.raises(grpc.RpcError) as caught:
            transform(scheduler, parent, [name], ACTIVATION)
        assert (caught.value.code(), reason_of(caught.value)) == (code, reason), caught.value.details()


def test_operation_names_are_checked(scheduler: SchedulerServiceStub, space: str) -> None:
    for name, code, reason in [
        (f"{space}/operations/op0123", grpc.StatusCode.NOT_FOUND, "OPERATION_NOT_FOUND"),
        (f"{space}/cubes/op0123", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME"),
    ]:
        for call in (
            lambda n=name: scheduler.GetOperation(s.GetOperationRequest(name=n)),
            lambda n=name: list(scheduler.WatchOperation(s.WatchOperationRequest(name=n))),
            lambda n=name: scheduler.CancelOperation(s.CancelOperationRequest(name=n)),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert (caught.value.code(), reason_of(caught.value)) == (code, reason)


def test_a_server_without_a_model_says_how_to_configure_one(tmp_path: Path, embedder: Embedder) -> None:
    bare = start_server(tmp_path / "data", embedder)
    try:
        with authorized_channel(bare.address, admin_token(bare)) as channel:
            stub = SchedulerServiceStub(channel)
            for call in (
                lambda: stub.GetModel(s.GetModelRequest()),
                lambda: stub.TransformCube(
                    s.TransformCubeRequest(parent="spaces/x", names=["spaces/x/cubes/y"], target_type=ACTIVATION)
                ),
            ):
                with pytest.raises(grpc.RpcError) as caught:
                    call()
                assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
                assert reason_of(caught.value) == "MODEL_NOT_CONFIGURED" and "model_dir" in caught.value.details()
    finally:
        bare.stop(grace=1)


def test_a_model_directory_with_pickle_weights_stops_the_server(tmp_path: Path, embedder: Embedder) -> None:
    directory = save_gpt2(tmp_path / "gpt2")
    (directory / "pytorch_model.bin").write_bytes(b"\x80\x04not loaded")
    with pytest.raises(Exception) as caught:
        start_server(tmp_path / "data", embedder, model_dir=str(directory))
    assert getattr(caught.value, "reason", "") == "MODEL_PICKLE_REFUSED"


def test_recall_plans_caches_and_adapters_for_their_model_and_text_for_any_other(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str, host: ModelHost
) -> None:
    cached = create(vault_stub, space, "bob prefers coffee in morning")
    finish(scheduler, transform(scheduler, space, [cached.name], ACTIVATION))
    plain = create(vault_stub, space, "bob likes green tea")
    trained = finish(scheduler, transform(scheduler, space, [plain.name], PARAMETRIC, training=s.LoraTraining(steps=2)))
    adapter = trained[-1].cube
    token_count = vault_stub.GetCube(v.GetCubeRequest(name=cached.name)).activation.token_count

    def plan(fingerprint: str, types: tuple[int, ...] = ()) -> dict[str, s.RecallItem]:
        request = s.RecallRequest(
            parent=space,
            query="what does bob drink",
            token_budget=1000,
            model_fingerprint=fingerprint,
            mode=v.SEARCH_MODE_DENSE,
            types=types,
        )
        return {item.cube.name: item for item in scheduler.Recall(request).items}

    mine = plan(host.fingerprint)
    assert set(mine) == {cached.name, plain.name, adapter}
    assert (mine[cached.name].kind, mine[cached.name].tokens) == (s.RecallItem.KIND_ACTIVATION, token_count)
    assert (mine[adapter].kind, mine[adapter].tokens) == (s.RecallItem.KIND_PARAMETRIC, 0)
    assert mine[plain.name].kind == s.RecallItem.KIND_PLAINTEXT and mine[plain.name].tokens > 0

    for other in ("", "llama@sha256:" + "0" * 64):
        theirs = plan(other)
        assert set(theirs) == {cached.name, plain.name}, other  # an adapter of another model is no use
        assert theirs[cached.name].kind == s.RecallItem.KIND_PLAINTEXT and theirs[cached.name].tokens > 0

    assert set(plan(host.fingerprint, (PLAINTEXT,))) == {plain.name}
    assert set(plan(host.fingerprint, (ACTIVATION, PARAMETRIC))) == {cached.name, adapter}


def test_a_graceful_stop_reports_the_running_operation_interrupted_not_cancelled(
    tmp_path: Path, embedder: Embedder, model_dir: Path
) -> None:
    data = tmp_path / "data"
    first = start_server(data, embedder, model_dir=str(model_dir))
    try:
        with authorized_channel(first.address, admin_token(first)) as channel:
            vault, scheduler = VaultServiceStub(channel), SchedulerServiceStub(channel)
            GovernanceServiceStub(channel).CreateSpace(g.CreateSpaceRequest(space_id="stop"))
            cube = create(vault, "spaces/stop", "the cat sat on mat")
            operation = transform(
                scheduler, "spaces/stop", [cube.name], PARAMETRIC, training=s.LoraTraining(steps=2000)
            )
            deadline = time.monotonic() + 60
            while scheduler.GetOperation(s.GetOperationRequest(name=operation.name)).step < 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        first.stop(grace=1)
    second = start_server(data, embedder, model_dir=str(model_dir))
    try:
        with authorized_channel(second.address, admin_token(second)) as channel:
            after = SchedulerServiceStub(channel).GetOperation(s.GetOperationRequest(name=operation.name))
    finally:
        second.stop(grace=1)
    assert after.done and after.state == Op.STATE_FAILED, after
    assert (after.error.reason, after.error.code) == ("OPERATION_INTERRUPTED", grpc.StatusCode.ABORTED.value[0])
    assert 1 <= after.step < 2000


def test_rollback_undoes_an_activation_transform(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str
) -> None:
    cube = create(vault_stub, space, "alice likes green tea")
    finish(scheduler, transform(scheduler, space, [cube.name], ACTIVATION))
    back = vault_stub.RollbackCube(v.RollbackCubeRequest(name=cube.name, version=1))
    assert (back.type, back.plaintext.text, back.version) == (PLAINTEXT, "alice likes green tea", 3)
    assert back.storage_mode == cube_pb2.STORAGE_MODE_INLINE and not back.HasField("activation")
    hits = vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, text="green tea", mode=v.SEARCH_MODE_DENSE))
    assert cube.name in [hit.cube.name for hit in hits.results]


def test_the_same_text_gives_the_same_cache_blob(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str
) -> None:
    """Canonical encoding: equal caches are one content-addressed blob."""
    digests = set()
    for _ in range(2):
        cube = create(vault_stub, space, "bob prefers coffee in morning")
        finish(scheduler, transform(scheduler, space, [cube.name], ACTIVATION))
        digests.add(vault_stub.GetCube(v.GetCubeRequest(name=cube.name)).activation.blob.digest)
    assert len(digests) == 1


def test_a_learning_rate_arrives_as_given(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str
) -> None:
    cube = create(vault_stub, space, "the cat sat on mat")
    operation = transform(
        scheduler, space, [cube.name], PARAMETRIC, training=s.LoraTraining(steps=1, learning_rate=1e-3)
    )
    assert operation.request.training.learning_rate == 1e-3  # a double: no float32 rounding
    finish(scheduler, operation)


def test_a_transforms_blob_may_be_named_by_its_caller_in_its_space_and_by_no_stranger(
    server: MemosServer,
    vault_stub: VaultServiceStub,
    governance_stub: GovernanceServiceStub,
    scheduler: SchedulerServiceStub,
    space: str,
) -> None:
    """The cache a transform makes is the caller's upload into the cube's space, nobody else's (docs/security.md)."""
    cube = create(vault_stub, space, "the vault code is in the blue binder")
    finish(scheduler, transform(scheduler, space, [cube.name], ACTIVATION))
    made = vault_stub.GetCube(v.GetCubeRequest(name=cube.name)).activation
    named = cube_pb2.MemCube(
        activation=cube_pb2.ActivationPayload(blob=made.blob, model_fingerprint=made.model_fingerprint)
    )
    assert (
        vault_stub.CreateCube(v.CreateCubeRequest(parent=space, cube=named)).activation.blob.digest == made.blob.digest
    )

    stranger_id = f"stranger-{uuid.uuid4().hex[:8]}"
    governance_stub.CreatePrincipal(
        g.CreatePrincipalRequest(principal_id=stranger_id, principal=principal_pb2.Principal())
    )
    token = governance_stub.CreateCredential(g.CreateCredentialRequest(parent=f"principals/{stranger_id}")).token
    stranger = authorized_channel(server.address, token)
    GovernanceServiceStub(stranger).CreateSpace(g.CreateSpaceRequest(space_id=stranger_id))
    with pytest.raises(grpc.RpcError) as refused:
        VaultServiceStub(stranger).CreateCube(v.CreateCubeRequest(parent=f"spaces/{stranger_id}", cube=named))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(refused.value) == "BLOB_NOT_FOUND"
