"""A cube created on a memos-activation blob is checked against the blob's header and described by it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from memos_test_support import reason_of
from tiny_models import save_gpt2

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.models.host import ComputedCache, ModelHost


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> ComputedCache:
    host = ModelHost(save_gpt2(tmp_path_factory.mktemp("gpt2")))
    return host.compute_cache("alice likes green tea")


def upload(vault: VaultServiceStub, space: str, data: bytes) -> cube_pb2.BlobRef:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    requests = [v.WritePayloadRequest(parent=space, expected_digest=digest), v.WritePayloadRequest(data=data)]
    return vault.WritePayload(iter(requests)).blob


def create(vault: VaultServiceStub, space: str, payload: cube_pb2.ActivationPayload) -> cube_pb2.MemCube:
    return vault.CreateCube(v.CreateCubeRequest(parent=space, cube=cube_pb2.MemCube(activation=payload)))


def test_the_blob_describes_the_cube(vault_stub: VaultServiceStub, space: str, cache: ComputedCache) -> None:
    blob = upload(vault_stub, space, cache.blob)
    cube = create(vault_stub, space, cube_pb2.ActivationPayload(blob=blob, model_fingerprint=cache.header.fingerprint))
    activation = cube.activation
    assert (activation.dtype, activation.num_layers, activation.num_heads) == ("float32", 2, 2)
    assert activation.token_count == 4 and list(activation.shape) == [1, 2, 4, 16]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"model_fingerprint": "gpt2@sha256:" + "0" * 64}, "ACTIVATION_MALFORMED"),
        ({"token_count": 5}, "ACTIVATION_SHAPE_MISMATCH"),
        ({"num_layers": 3}, "ACTIVATION_SHAPE_MISMATCH"),
        ({"shape": [1, 2, 4, 8]}, "ACTIVATION_SHAPE_MISMATCH"),
        ({"dtype": "bfloat16"}, "ACTIVATION_DTYPE_MISMATCH"),
    ],
)
def test_a_payload_that_contradicts_its_blob_is_refused(
    vault_stub: VaultServiceStub, space: str, cache: ComputedCache, fields: dict[str, object], reason: str
) -> None:
    blob = upload(vault_stub, space, cache.blob)
    payload = cube_pb2.ActivationPayload(blob=blob, model_fingerprint=cache.header.fingerprint)
    for name, value in fields.items():
        if name == "shape":
            payload.shape[:] = value  # type: ignore[assignment]
        else:
            setattr(payload, name, value)
    with pytest.raises(grpc.RpcError) as caught:
        create(vault_stub, space, payload)
    assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert not list(vault_stub.ListCubes(v.ListCubesRequest(parent=space)).cubes)


def test_a_truncated_cache_is_refused_and_other_blobs_stay_opaque(
    vault_stub: VaultServiceStub, space: str, cache: ComputedCache, tmp_path: Path
) -> None:
    truncated = upload(vault_stub, space, cache.blob[:-10])
    with pytest.raises(grpc.RpcError) as caught:
        create(
            vault_stub, space, cube_pb2.ActivationPayload(blob=truncated, model_fingerprint=cache.header.fingerprint)
        )
    assert reason_of(caught.value) == "ACTIVATION_MALFORMED" and "truncated" in caught.value.details()

    opaque = upload(vault_stub, space, b"\x00 some other cache format \xff" * 10)
    cube = create(vault_stub, space, cube_pb2.ActivationPayload(blob=opaque, model_fingerprint="other@sha256:1"))
    assert cube.activation.token_count == 0 and cube.activation.blob.digest == opaque.digest


#: Run in a fresh interpreter: describes the cache at argv[1] and reports what the description loaded.
DESCRIBE_IN_A_FRESH_PROCESS = """
import json, sys
from pathlib import Path
from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.vault.blob_headers import describe_activation
payload = cube_pb2.ActivationPayload(model_fingerprint=sys.argv[2])
describe_activation(payload, Path(sys.argv[1]))
heavy = [name for name in ("torch", "transformers", "safetensors") if name in sys.modules]
print(json.dumps({"token_count": payload.token_count, "shape": list(payload.shape), "loaded": heavy}))
"""


def test_describing_a_cache_loads_neither_torch_nor_transformers(cache: ComputedCache, tmp_path: Path) -> None:
    """The first activation cube a server stores does not wait for the model libraries to import."""
    blob = tmp_path / "cache.safetensors"
    blob.write_bytes(cache.blob)
    child = subprocess.run(
        [sys.executable, "-c", DESCRIBE_IN_A_FRESH_PROCESS, str(blob), cache.header.fingerprint],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    described = json.loads(child.stdout)
    assert (described["token_count"], described["shape"]) == (4, [1, 2, 4, 16])
    assert described["loaded"] == []
