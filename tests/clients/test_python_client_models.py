"""The Python client's model calls against a real server with a tiny model: GetModel, transforms, operations, recall.

The server loads a 2-layer Llama saved from a config (nothing is downloaded);
transforms run one at a time on it, so every test waits for its own to end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from memos_client import CancelledError, InvalidArgumentError, MemoryType, MemosClient, MemosError, ModelInfo, Operation
from memos_test_support import admin_token, start_server
from tiny_models import save_llama

from memos_grpc.embedding.embedder import Embedder
from memos_grpc.models.fingerprint import model_fingerprint
from memos_grpc.server.app import MemosServer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, model_dir: Path) -> Iterator[MemosServer]:
    running = start_server(tmp_path_factory.mktemp("client-models"), embedder, model_dir=str(model_dir))
    yield running
    running.stop(grace=1)


@pytest.fixture
def client(server: MemosServer) -> Iterator[MemosClient]:
    with MemosClient(server.address, token=admin_token(server), timeout=120.0, stream_timeout=120.0) as memos:
        yield memos


@pytest.fixture
def space(client: MemosClient) -> str:
    space_id = "space-" + uuid.uuid4().hex[:10]
    client.create_space(space_id)
    return space_id


def test_get_model_gives_the_fingerprint_of_the_model_directory(client: MemosClient, model_dir: Path) -> None:
    info = client.get_model()
    assert isinstance(info, ModelInfo)
    assert info.fingerprint == model_fingerprint(model_dir)
    assert (info.model_type, info.num_layers, info.num_kv_heads, info.head_dim) == ("llama", 2, 2, 8)
    assert info.dtype == "float32" and info.parameter_count > 0 and info.max_positions == 64
    assert info.default_target_modules == ("q_proj", "v_proj")


def test_activation_and_back_to_plaintext(client: MemosClient, space: str) -> None:
    cube = client.create_cube(space, "alice likes green tea", tags=["drinks"])
    started = client.transform_cube(cube.name, "activation")
    assert isinstance(started, Operation) and started.name.startswith(f"spaces/{space}/operations/")

    final = client.wait_operation(started.name)
    assert (final.state, final.done, final.cube, final.error_code) == ("succeeded", True, cube.name, None)
    assert final.end_time is not None and final.create_time is not None and final.creator
    cached = client.get_cube(cube.name)
    assert cached.type is MemoryType.ACTIVATION and cached.text is None
    assert cached.source_text == "alice likes green tea" and cached.source_cubes == ()
    assert cached.blob is not None and cached.blob.size_bytes > 0 and cached.version == 2

    # An id in an explicit parent, and the upper-case enum name, are taken as well.
    demoted = client.transform_cube(cube.cube_id, "PLAINTEXT", parent=space, wait=True, timeout=120)
    assert demoted.state == "succeeded" and demoted.cube == cube.name
    back = client.get_cube(cube.name)
    assert back.type is MemoryType.PLAINTEXT and back.text == "alice likes green tea"
    assert (back.source_text, back.blob, back.tags, back.version) == (None, None, ("drinks",), 3)


def test_training_streams_increasing_steps_and_ends_succeeded(client: MemosClient, space: str) -> None:
    texts = ["bob prefers coffee in morning", "my office is on floor three"]
    sources = [client.create_cube(space, text) for text in texts]
    started = client.transform_cube(
        [c.name for c in sources], MemoryType.PARAMETRIC, cube_id="adapter", steps=5, rank=2, seed=1
    )
    assert started.total_steps == 5 and not started.done
    seen = list(client.watch_operation(started.name))
    final = seen[-1]
    assert (final.state, final.done, final.step, final.cube) == ("succeeded", True, 5, f"spaces/{space}/cubes/adapter")
    assert all(not op.done for op in seen[:-1])
    steps = [op.step for op in seen]
    assert steps == sorted(steps), steps
    assert final.initial_loss > 0 and final.loss > 0

    adapter = client.get_cube(final.cube)
    assert adapter.type is MemoryType.PARAMETRIC and adapter.source_cubes == tuple(c.name for c in sources)
    assert adapter.source_text == "\n\n".join(texts) and adapter.proto.parametric.rank == 2
    # Waiting on an operation already done returns it at once.
    assert client.wait_operation(started.name) == final


def test_a_cancelled_run_says_so_and_waiting_on_it_raises(client: MemosClient, space: str) -> None:
    source = client.create_cube(space, "the cat sat on mat")
    started = client.transform_cube(source.name, "parametric", cube_id="never", steps=2000)
    try:
        deadline = time.monotonic() + 60
        while client.get_operation(started.name).step < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        cancelled = client.cancel_operation(started.name)
    assert (cancelled.state, cancelled.done, cancelled.cube) == ("cancelled", True, "")
    assert cancelled.error_code is grpc.StatusCode.CANCELLED and cancelled.error_reason == "OPERATION_CANCELLED"
    assert 1 <= cancelled.step < 2000 and cancelled.total_steps == 2000
    with pytest.raises(CancelledError) as caught:
        client.wait_operation(started.name)
    assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.CANCELLED, "OPERATION_CANCELLED")
    assert client.get_operation(started.name) == cancelled


def test_bad_requests_raise_the_clients_errors(client: MemosClient, space: str) -> None:
    a = client.create_cube(space, "the cat", cube_id="a")
    b = client.create_cube(space, "the mat", cube_id="b")
    with pytest.raises(InvalidArgumentError) as caught:
        client.transform_cube([a.name, b.name], "activation")
    assert caught.value.reason == "INVALID_NAMES"
    with pytest.raises(ValueError):
        client.transform_cube(a.name, "episodic")
    with pytest.raises(ValueError):
        client.transform_cube("a", "activation")  # a bare id needs its parent
    with pytest.raises(MemosError) as missing:
        client.get_operation(f"spaces/{space}/operations/op0123")
    assert missing.value.reason == "OPERATION_NOT_FOUND"


def test_recall_gives_the_cache_to_its_model_and_the_text_to_any_other(client: MemosClient, space: str) -> None:
    cube = client.create_cube(space, "bob prefers coffee in morning")
    client.transform_cube(cube.name, "activation", wait=True)
    fingerprint = client.get_model().fingerprint

    def kind_of(**fields: str) -> str:
        plan = client.recall(space, "what does bob drink", token_budget=1000, mode="dense", **fields)
        kinds = {item.cube.name: item.kind for item in plan.items}
        return kinds[cube.name]

    assert kind_of(model_fingerprint=fingerprint) == "activation"
    assert kind_of() == "plaintext"
