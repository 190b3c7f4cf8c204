"""Activation and parametric cubes made by a real model travel in signed bundles and still load after import.

Also: every blob format the project reads parses with a loader that cannot
run code, and no module of the server or the client can unpickle.
"""

from __future__ import annotations

import ast
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from _bundles import activation_cube, blob_entry, bundle, cube_entry, node_key
from memos_test_support import admin_token, authorized_channel, reason_of, start_server
from safetensors.numpy import load as load_numpy
from tiny_models import save_gpt2

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.models.activation import CacheSpec, decode_cache
from memos_grpc.models.host import ModelHost
from memos_grpc.models.kv import forward_with_cache
from memos_grpc.models.parametric import load_adapter
from memos_grpc.server.app import MemosServer

ROOT = Path(__file__).resolve().parents[2]
MEMORY = "alice likes green tea"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_gpt2(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, model_dir: Path) -> Iterator[MemosServer]:
    running = start_server(tmp_path_factory.mktemp("exchange"), embedder, model_dir=str(model_dir))
    yield running
    running.stop(grace=1)


class Stubs:
    def __init__(self, channel: grpc.Channel) -> None:
        self.vault = VaultServiceStub(channel)
        self.governance = GovernanceServiceStub(channel)
        self.interchange = InterchangeServiceStub(channel)
        self.scheduler = SchedulerServiceStub(channel)

    def space(self) -> str:
        space_id = "s" + uuid.uuid4().hex[:12]
        return self.governance.CreateSpace(g.CreateSpaceRequest(space_id=space_id, space=space_pb2.Space())).name

    def transform(self, parent: str, names: list[str], target: int, **fields: object) -> str:
        request = s.TransformCubeRequest(parent=parent, names=names, target_type=target, **fields)  # type: ignore[arg-type]
        operation = self.scheduler.TransformCube(request)
        *_, last = self.scheduler.WatchOperation(s.WatchOperationRequest(name=operation.name), timeout=120)
        assert last.state == s.Operation.STATE_SUCCEEDED, last
        return last.cube

    def payload(self, name: str) -> bytes:
        return b"".join(chunk.data for chunk in self.vault.ReadPayload(v.ReadPayloadRequest(name=name)))


@pytest.fixture(scope="module")
def stubs(server: MemosServer) -> Iterator[Stubs]:
    with authorized_channel(server.address, admin_token(server)) as channel:
        yield Stubs(channel)


@pytest.fixture(scope="module")
def host(model_dir: Path) -> ModelHost:
    return ModelHost(model_dir)


@pytest.fixture(scope="module")
def exchanged(stubs: Stubs) -> tuple[str, dict[str, cube_pb2.MemCube]]:
    """A space holding an activation and a parametric cube, exported as a bundle and imported into another."""
    source = stubs.space()
    texts = [MEMORY, "bob prefers coffee in morning"]
    made = [
        stubs.vault.CreateCube(v.CreateCubeRequest(parent=source, cube=cube_pb2.MemCube(plaintext={"text": t})))
        for t in texts
    ]
    stubs.transform(source, [made[0].name], cube_pb2.MEMORY_TYPE_ACTIVATION)
    stubs.transform(
        source,
        [c.name for c in made],
        cube_pb2.MEMORY_TYPE_PARAMETRIC,
        cube_id="adapter",
        training=s.LoraTraining(steps=4, learning_rate=1e-2, rank=2),
    )
    bundle = b"".join(r.chunk for r in stubs.interchange.ExportBundle(i.ExportBundleRequest(parent=source)))
    target = stubs.space()
    requests = [i.ImportBundleRequest(parent=target)]
    requests += [i.ImportBundleRequest(chunk=bundle[o : o + 65536]) for o in range(0, len(bundle), 65536)]
    response = stubs.interchange.ImportBundle(iter(requests))
    assert response.created_count == 3, response
    imported = {c.type: c for c in stubs.vault.ListCubes(v.ListCubesRequest(parent=target)).cubes}
    originals = {c.type: c for c in stubs.vault.ListCubes(v.ListCubesRequest(parent=source)).cubes}
    assert (
        imported[cube_pb2.MEMORY_TYPE_ACTIVATION].provenance_id
        == originals[cube_pb2.MEMORY_TYPE_ACTIVATION].provenance_id
    )
    return target, imported


def test_an_imported_kv_cache_gives_the_logits_of_its_text_in_the_prompt(
    stubs: Stubs, host: ModelHost, exchanged: tuple[str, dict[str, cube_pb2.MemCube]]
) -> None:
    _, imported = exchanged
    cube = imported[cube_pb2.MEMORY_TYPE_ACTIVATION]
    assert cube.activation.model_fingerprint == host.fingerprint and cube.activation.source_text == MEMORY
    cache = decode_cache(stubs.payload(cube.name), CacheSpec.for_model(host.model, host.fingerprint))
    memory = host.tokenizer(MEMORY, return_tensors="pt")["input_ids"]
    question = host.tokenizer("what does alice drink", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        prompted = host.model(input_ids=torch.cat([memory, question], dim=1)).logits
    torch.testing.assert_close(forward_with_cache(host.model, cache, question)[0, -1], prompted[0, -1])


def test_an_imported_adapter_attaches_and_changes_the_model(
    stubs: Stubs, host: ModelHost, exchanged: tuple[str, dict[str, cube_pb2.MemCube]]
) -> None:
    _, imported = exchanged
    cube = imported[cube_pb2.MEMORY_TYPE_PARAMETRIC]
    assert cube.parametric.model_fingerprint == host.fingerprint and cube.parametric.training_steps == 4
    ids = host.tokenizer(MEMORY, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base = host.model(input_ids=ids).logits
    attached = load_adapter(host.model, host.fingerprint, stubs.payload(cube.name), cube.parametric.adapter_config_json)
    try:
        with torch.no_grad():
            adapted = attached(input_ids=ids).logits
    finally:
        attached.unload()
    assert not torch.allclose(base, adapted)


def test_recall_in_the_importing_space_plans_the_imported_cache(
    stubs: Stubs, host: ModelHost, exchanged: tuple[str, dict[str, cube_pb2.MemCube]]
) -> None:
    target, imported = exchanged
    plan = stubs.scheduler.Recall(
        s.RecallRequest(
            parent=target,
            query="green tea",
            token_budget=100,
            model_fingerprint=host.fingerprint,
            mode=v.SEARCH_MODE_DENSE,
        )
    )
    kinds = {item.cube.name: item.kind for item in plan.items}
    assert kinds[imported[cube_pb2.MEMORY_TYPE_ACTIVATION].name] == s.RecallItem.KIND_ACTIVATION
    assert kinds[imported[cube_pb2.MEMORY_TYPE_PARAMETRIC].name] == s.RecallItem.KIND_PARAMETRIC


def test_every_blob_format_parses_with_a_loader_that_cannot_run_code(
    stubs: Stubs, model_dir: Path, exchanged: tuple[str, dict[str, cube_pb2.MemCube]]
) -> None:
    """safetensors' parser reads a JSON header and raw little-endian buffers: nothing in the bytes is executed."""
    _, imported = exchanged
    formats = {}
    for cube in imported.values():
        if cube.type == cube_pb2.MEMORY_TYPE_PLAINTEXT:
            continue
        blob = stubs.payload(cube.name)
        tensors = load_numpy(blob)
        assert tensors and all(isinstance(t, np.ndarray) and t.dtype == np.float32 for t in tensors.values())
        header = blob[8 : 8 + int.from_bytes(blob[:8], "little")]
        formats[cube.type] = header
    assert b'"format":"memos-activation"' in formats[cube_pb2.MEMORY_TYPE_ACTIVATION]
    assert b'"format":"memos-adapter"' in formats[cube_pb2.MEMORY_TYPE_PARAMETRIC]
    # The model's own weights, which the server fingerprints and loads.
    weights = sorted(model_dir.glob("*.safetensors"))
    assert weights and all(load_numpy(path.read_bytes()) for path in weights)


_UNPICKLING_CALLS = {"load", "loads", "Unpickler"}


def test_no_module_of_the_server_or_the_client_can_unpickle() -> None:
    """No import of pickle-like modules, no torch.load / numpy allow_pickle, no remote code in from_pretrained."""
    offenders = []
    for path in sorted([*ROOT.glob("memos_grpc/**/*.py"), *ROOT.glob("clients/python/memos_client/**/*.py")]):
        if "_proto" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                offenders += [
                    f"{where} imports {m}"
                    for m in modules
                    if m.split(".")[0] in {"pickle", "dill", "joblib", "cloudpickle", "shelve", "marshal"}
                ]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                if isinstance(owner, ast.Name) and owner.id == "torch" and node.func.attr in _UNPICKLING_CALLS:
                    offenders.append(f"{where} calls torch.{node.func.attr}")
            risky = {"allow_pickle", "trust_remote_code", "weights_only"}
            if (
                isinstance(node, ast.keyword)
                and node.arg in risky
                and (
                    not (isinstance(node.value, ast.Constant) and node.value.value is False)
                    or node.arg == "weights_only"
                )
            ):
                offenders.append(f"{where} passes {node.arg}")
    assert offenders == []


def test_an_import_whose_cache_payload_contradicts_its_blob_imports_nothing(
    stubs: Stubs, server: MemosServer, host: ModelHost
) -> None:
    computed = host.compute_cache(MEMORY)
    cube = activation_cube(computed.blob)
    cube.activation.model_fingerprint = host.fingerprint
    cube.activation.token_count = computed.header.token_count + 1  # the blob holds one token fewer
    signed = bundle(node_key(server), [cube_entry(cube), blob_entry(computed.blob)])
    target = stubs.space()
    requests = [i.ImportBundleRequest(parent=target), i.ImportBundleRequest(chunk=signed)]
    with pytest.raises(grpc.RpcError) as caught:
        stubs.interchange.ImportBundle(iter(requests))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == "ACTIVATION_SHAPE_MISMATCH", caught.value.details()
    assert not list(stubs.vault.ListCubes(v.ListCubesRequest(parent=target)).cubes)

    for described in ("token_count", "shape", "num_layers", "num_heads", "dtype"):
        cube.activation.ClearField(described)  # unset: filled from the blob
    signed = bundle(node_key(server), [cube_entry(cube), blob_entry(computed.blob)])
    requests = [i.ImportBundleRequest(parent=target), i.ImportBundleRequest(chunk=signed)]
    assert stubs.interchange.ImportBundle(iter(requests)).created_count == 1
    (imported,) = stubs.vault.ListCubes(v.ListCubesRequest(parent=target)).cubes
    assert imported.activation.token_count == computed.header.token_count
    assert list(imported.activation.shape) == list(computed.header.shape)
