"""The ``memos-grpc model`` subcommands against a real in-process server with a tiny Llama."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from memos_client import MemosClient, Operation
from memos_client.models import ModelCalls
from memos_test_support import start_server
from tiny_models import save_llama

from memos_grpc.cli.main import main
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.models.fingerprint import model_fingerprint
from memos_grpc.server.app import MemosServer

MEMORY = "alice likes green tea and bob prefers coffee in morning"


def _run(capsys: pytest.CaptureFixture[str], server: Any, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--server", server.address, "--token-file", str(server.settings.data_dir / "admin.token")])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def model_server(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, model_dir: Path
) -> Iterator[MemosServer]:
    running = start_server(tmp_path_factory.mktemp("cli-model"), embedder, model_dir=str(model_dir))
    yield running
    running.stop(grace=1)


@pytest.fixture
def space(model_server: MemosServer, capsys: pytest.CaptureFixture[str]) -> str:
    space_id = f"cli-{uuid.uuid4().hex[:12]}"
    code, _, err = _run(capsys, model_server, "space", "create", space_id)
    assert code == 0, err
    return space_id


def _add(capsys: pytest.CaptureFixture[str], server: MemosServer, space: str, cube_id: str, text: str) -> str:
    code, _, err = _run(capsys, server, "cube", "add", space, text, "--id", cube_id)
    assert code == 0, err
    return f"spaces/{space}/cubes/{cube_id}"


def _cube(capsys: pytest.CaptureFixture[str], server: MemosServer, name: str) -> dict[str, Any]:
    code, out, err = _run(capsys, server, "cube", "get", name, "--json")
    assert code == 0, err
    cube: dict[str, Any] = json.loads(out)
    return cube


def test_model_info(model_server: MemosServer, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, model_server, "model", "info", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["fingerprint"] == model_fingerprint(model_dir)
    assert (info["model_type"], info["num_layers"], info["num_kv_heads"], info["head_dim"]) == ("llama", 2, 2, 8)
    assert info["default_target_modules"] == ["q_proj", "v_proj"]
    code, out, _ = _run(capsys, model_server, "model", "info")
    assert code == 0 and f"fingerprint:     {model_fingerprint(model_dir)}" in out
    assert "default_targets: q_proj, v_proj" in out


def test_transform_to_activation_and_back(
    model_server: MemosServer, space: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _add(capsys, model_server, space, "tea", MEMORY)
    code, out, err = _run(capsys, model_server, "model", "transform", space, "tea", "--to", "activation")
    assert code == 0, err
    assert out.strip() == name and "1/1" in err
    cube = _cube(capsys, model_server, name)
    assert cube["type"] == "MEMORY_TYPE_ACTIVATION" and cube["activation"]["source_text"] == MEMORY

    # A full name works as well as an id.
    code, out, err = _run(capsys, model_server, "model", "transform", f"spaces/{space}", name, "--to", "plaintext")
    assert code == 0, err
    assert out.strip() == name
    cube = _cube(capsys, model_server, name)
    assert cube["type"] == "MEMORY_TYPE_PLAINTEXT" and cube["plaintext"]["text"] == MEMORY


def test_transform_to_parametric_shows_training_progress(
    model_server: MemosServer, space: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _add(capsys, model_server, space, "a", MEMORY)
    _add(capsys, model_server, space, "b", "the cat sat on mat")
    code, out, err = _run(
        capsys, model_server, "model", "transform", space, "a", "b", "--to", "parametric", "--steps", "3", "--id", "ad"
    )
    assert code == 0, err
    name = f"spaces/{space}/cubes/ad"
    assert out.strip() == name
    assert "3/3" in err and "succeeded, loss " in err
    cube = _cube(capsys, model_server, name)
    assert cube["type"] == "MEMORY_TYPE_PARAMETRIC" and cube["source"] == "SOURCE_FINE_TUNE"


def test_no_wait_then_operation(model_server: MemosServer, space: str, capsys: pytest.CaptureFixture[str]) -> None:
    name = _add(capsys, model_server, space, "tea", MEMORY)
    code, out, err = _run(capsys, model_server, "model", "transform", space, "tea", "--to", "activation", "--no-wait")
    assert code == 0, err
    operation = out.strip()
    assert operation.startswith(f"spaces/{space}/operations/") and "\n" not in operation

    code, out, err = _run(capsys, model_server, "model", "operation", operation, "--watch", "--json")
    assert code == 0, err
    watched = json.loads(out)
    assert watched["name"] == operation and watched["done"] and watched["state"] == "STATE_SUCCEEDED"
    code, out, err = _run(capsys, model_server, "model", "operation", operation, "--json")
    assert code == 0 and json.loads(out) == watched, err
    code, out, _ = _run(capsys, model_server, "model", "operation", operation)
    assert code == 0 and "state:           succeeded" in out and f"cube:            {name}" in out


def test_bad_requests_exit_non_zero(model_server: MemosServer, space: str, capsys: pytest.CaptureFixture[str]) -> None:
    _add(capsys, model_server, space, "a", MEMORY)
    _add(capsys, model_server, space, "b", "the cat sat on mat")
    code, out, err = _run(capsys, model_server, "model", "transform", space, "a", "b", "--to", "activation")
    assert code == 1 and out == "" and err.startswith("error: INVALID_NAMES: ") and "Traceback" not in err
    code, out, err = _run(capsys, model_server, "model", "operation", f"spaces/{space}/operations/nope")
    assert code == 1 and out == "" and err.startswith("error: ") and "Traceback" not in err


def test_without_a_model(server: MemosServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, server, "model", "info")
    assert code == 1 and out == "" and err.startswith("error: MODEL_NOT_CONFIGURED: ") and "Traceback" not in err


def test_ctrl_c_cancels_the_operation(
    model_server: MemosServer, space: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _add(capsys, model_server, space, "tea", MEMORY)
    original = ModelCalls.watch_operation
    seen: list[Operation] = []

    def watch_then_interrupt(self: MemosClient, name: str, *, timeout: float | None = None) -> Iterator[Operation]:
        # Ctrl-C arrives once training is under way: a real SIGINT, taken by Python's own handler.
        for operation in original(self, name, timeout=timeout):
            seen.append(operation)
            yield operation
            if operation.step >= 1:
                signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(MemosClient, "watch_operation", watch_then_interrupt)
    # A shell starts background jobs with SIGINT ignored, and Python then keeps it ignored: install the
    # handler an interactive `memos-grpc` has, so the test does not depend on how it was started.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code, out, err = _run(
            capsys,
            model_server,
            "model",
            "transform",
            space,
            "tea",
            "--to",
            "parametric",
            "--steps",
            "2000",
            "--id",
            "x",
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130 and out == "", err
    operation = seen[-1].name
    assert f"interrupted: asking the server to cancel {operation}" in err and f"{operation} is cancelled" in err
    monkeypatch.undo()
    code, out, _ = _run(capsys, model_server, "model", "operation", operation, "--json")
    final = json.loads(out)
    assert code == 0 and final["state"] == "STATE_CANCELLED" and final["error"]["reason"] == "OPERATION_CANCELLED"
    code, _, err = _run(capsys, model_server, "cube", "get", f"spaces/{space}/cubes/x")
    assert code == 1 and "CUBE_NOT_FOUND" in err
