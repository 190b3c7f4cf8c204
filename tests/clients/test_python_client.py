"""The Python client (memos_client) against a real in-process server, plus its pure conversions."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import socket
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from memos_client import (
    AbortedError,
    AlreadyExistsError,
    BlobRef,
    Cube,
    CubeDraft,
    FailedPreconditionError,
    InvalidArgumentError,
    LifecycleState,
    MemoryType,
    MemosClient,
    NotFoundError,
    SemanticType,
    Source,
    UnauthenticatedError,
    UnavailableError,
    cube_name,
    space_name,
)
from memos_test_support import admin_token

from memos_grpc._proto.memos.v1 import cube_pb2


def _new_id(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


@pytest.fixture
def client(server: Any) -> Iterator[MemosClient]:
    with MemosClient(server.address, token=admin_token(server), timeout=120.0) as memos:
        yield memos


@pytest.fixture
def space(client: MemosClient) -> str:
    space_id = _new_id("space-")
    client.create_space(space_id, display_name="client test")
    return space_id


def _safetensors(num_bytes: int) -> bytes:
    """A valid safetensors file holding one float32 tensor of about ``num_bytes`` bytes."""
    count = num_bytes // 4 // 8 * 8
    tensor = np.random.default_rng(7).standard_normal(count, dtype=np.float32)
    header = {
        "base_model.model.q_proj.lora_A.weight": {
            "dtype": "F32",
            "shape": [8, count // 8],
            "data_offsets": [0, count * 4],
        }
    }
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + tensor.tobytes()


# -- Pure conversions (no server) ----------------------------------------------


def test_enums_parse_strings_and_map_to_proto() -> None:
    assert SemanticType.parse("fact") is SemanticType.FACT
    assert SemanticType.parse("task-prompt") is SemanticType.TASK_PROMPT
    assert SemanticType.parse("SEMANTIC_TYPE_EVENT") is SemanticType.EVENT
    assert SemanticType.FACT.to_proto() == cube_pb2.SEMANTIC_TYPE_FACT
    assert Source.from_proto(cube_pb2.SOURCE_IMPORT) is Source.IMPORT
    assert LifecycleState.from_proto(999) is LifecycleState.UNSPECIFIED
    assert MemoryType.PLAINTEXT.value == "plaintext" and isinstance(MemoryType.PLAINTEXT, str)
    with pytest.raises(ValueError, match="unknown SemanticType"):
        SemanticType.parse("gossip")


def test_cube_from_proto_converts_every_field() -> None:
    message = cube_pb2.MemCube(
        name="spaces/alpha/cubes/c1",
        type=cube_pb2.MEMORY_TYPE_PARAMETRIC,
        parametric=cube_pb2.ParametricPayload(
            blob=cube_pb2.BlobRef(digest="sha256:ab", size_bytes=3, media_type="application/x")
        ),
        tags=["a", "b"],
        labels={"k": "v"},
        semantic_type=cube_pb2.SEMANTIC_TYPE_SKILL,
        source=cube_pb2.SOURCE_FINE_TUNE,
        state=cube_pb2.LIFECYCLE_STATE_ACTIVATED,
        priority=7,
        version=3,
        etag="e3",
    )
    message.create_time.FromDatetime(dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    cube = Cube.from_proto(message)
    assert (cube.space, cube.cube_id, cube.type) == ("spaces/alpha", "c1", MemoryType.PARAMETRIC)
    assert cube.text is None
    assert cube.blob == BlobRef.from_proto(message.parametric.blob)
    assert cube.blob is not None and cube.blob.size_bytes == 3
    assert cube.tags == ("a", "b") and cube.labels == {"k": "v"}
    assert (cube.semantic_type, cube.source, cube.state) == (
        SemanticType.SKILL,
        Source.FINE_TUNE,
        LifecycleState.ACTIVATED,
    )
    assert cube.create_time == dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert cube.create_time.tzinfo is not None
    assert cube.update_time is None and cube.expire_time is None
    assert cube.proto is message
    hash(cube)  # frozen and hashable despite the dict and protobuf fields


def test_names_and_drafts() -> None:
    assert space_name("x") == space_name("spaces/x") == "spaces/x"
    assert cube_name("x", "y") == "spaces/x/cubes/y"
    draft = CubeDraft.from_mapping({"text": "hi", "id": "c1", "semantic_type": "fact", "vector": [1, 2]})
    request = draft.to_request("spaces/x")
    assert request.cube_id == "c1" and request.cube.plaintext.text == "hi"
    assert request.cube.semantic_type == cube_pb2.SEMANTIC_TYPE_FACT
    assert list(request.vector.values) == [1.0, 2.0]
    with pytest.raises(ValueError, match="unknown cube field"):
        CubeDraft.from_mapping({"text": "hi", "tgas": ["typo"]})


def test_unreachable_server_raises_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with MemosClient(f"127.0.0.1:{port}", timeout=10.0) as memos, pytest.raises(UnavailableError) as info:
        memos.get_space("nowhere")
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


# -- Against the server ---------------------------------------------------------


def test_spaces_create_get_list_delete(client: MemosClient) -> None:
    ids = sorted(_new_id("list-") for _ in range(3))
    created = [client.create_space(i, description="d", labels={"team": "x"}) for i in ids]
    assert created[0].name == f"spaces/{ids[0]}" and created[0].space_id == ids[0]
    assert created[0].labels == {"team": "x"} and created[0].etag
    assert created[0].vector_dimension > 0
    got = client.get_space(f"spaces/{ids[1]}")
    assert got.name == created[1].name and got.description == "d"
    listed = [s.name for s in client.list_spaces(page_size=2)]
    assert all(s.name in listed for s in created)
    assert listed == sorted(listed)
    with pytest.raises(AlreadyExistsError):
        client.create_space(ids[0])
    client.create_cube(ids[2], "keeps the space busy")
    with pytest.raises(FailedPreconditionError) as busy:
        client.delete_space(ids[2])
    assert busy.value.reason == "SPACE_NOT_EMPTY"
    client.delete_space(ids[2], force=True)
    with pytest.raises(NotFoundError):
        client.get_space(ids[2])


def test_create_and_get_cube(client: MemosClient, space: str) -> None:
    expire = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=30)
    cube = client.create_cube(
        space,
        "The user's favourite colour is green.",
        cube_id="colour",
        tags=("profile",),
        labels={"lang": "en"},
        semantic_type="preference",
        source=Source.USER_INPUT,
        priority=40,
        expire_time=expire,
        model="test-model",
    )
    assert cube.name == f"spaces/{space}/cubes/colour" and cube.space == f"spaces/{space}"
    assert cube.type is MemoryType.PLAINTEXT and cube.text == "The user's favourite colour is green."
    assert cube.tags == ("profile",) and cube.labels == {"lang": "en"}
    assert cube.semantic_type is SemanticType.PREFERENCE and cube.source is Source.USER_INPUT
    assert cube.priority == 40 and cube.version == 1 and cube.etag and cube.provenance_id
    assert cube.expire_time == expire and cube.model == "test-model"
    assert cube.create_time is not None and cube.create_time.tzinfo is not None
    got = client.get_cube(cube.name)
    assert (got.name, got.etag, got.text) == (cube.name, cube.etag, cube.text)
    dry = client.create_cube(space, "not stored", cube_id="dry", validate_only=True)
    assert dry.text == "not stored"
    with pytest.raises(NotFoundError):
        client.get_cube(cube_name(space, "dry"))


def test_list_cubes_follows_pages(client: MemosClient, space: str) -> None:
    created = client.batch_create_cubes(space, [{"text": f"memory {i}", "id": f"m{i:02d}"} for i in range(7)])
    listed = list(client.list_cubes(space, page_size=3))
    assert [c.cube_id for c in listed] == [f"m{i:02d}" for i in range(7)]
    assert {c.name for c in created} == {c.name for c in listed}


def test_update_with_etag_and_stale_etag(client: MemosClient, space: str) -> None:
    cube = client.create_cube(space, "first text", cube_id="edit", tags=("a",))
    updated = client.update_cube(
        cube.name, etag=cube.etag, text="second text", tags=["b", "c"], priority=9, semantic_type="fact"
    )
    assert updated.text == "second text" and updated.tags == ("b", "c") and updated.priority == 9
    assert updated.semantic_type is SemanticType.FACT
    assert updated.version == cube.version + 1 and updated.etag != cube.etag
    with pytest.raises(AbortedError) as info:
        client.update_cube(cube.name, etag=cube.etag, priority=1)
    assert info.value.reason == "ETAG_MISMATCH"
    assert info.value.code == grpc.StatusCode.ABORTED
    assert client.get_cube(cube.name).priority == 9
    with pytest.raises(ValueError, match="nothing to update"):
        client.update_cube(cube.name)


def test_delete_cube_and_not_found_reason(client: MemosClient, space: str) -> None:
    cube = client.create_cube(space, "short-lived", cube_id="gone")
    with pytest.raises(AbortedError):
        client.delete_cube(cube.name, etag="stale-etag")
    client.delete_cube(cube.name, etag=cube.etag)
    with pytest.raises(NotFoundError) as info:
        client.get_cube(cube.name)
    error = info.value
    assert error.code == grpc.StatusCode.NOT_FOUND and error.reason == "CUBE_NOT_FOUND" and error.message
    assert str(error).startswith(f"{error.reason}: ")


def test_search_by_text(client: MemosClient, space: str) -> None:
    client.batch_create_cubes(
        space,
        [
            CubeDraft(text="The cat sleeps on the warm windowsill all afternoon.", cube_id="cat"),
            CubeDraft(text="Quarterly revenue grew by twelve percent.", cube_id="revenue"),
            CubeDraft(text="Boil the pasta for nine minutes in salted water.", cube_id="pasta"),
        ],
    )
    results = client.search(space, "Where does my kitten like to nap?", top_k=3)
    assert results[0].cube.cube_id == "cat"
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(ValueError):
        client.search(space)
    with pytest.raises(ValueError):
        client.search(space, "both", vector=[1.0])


def test_search_by_vector(client: MemosClient) -> None:
    space = client.create_space(_new_id("vec-"))
    dim = space.vector_dimension

    def unit(i: int) -> list[float]:
        vector = [0.0] * dim
        vector[i] = 1.0
        return vector

    for i in range(3):
        client.create_cube(space.name, f"axis {i}", cube_id=f"axis{i}", vector=unit(i))
    results = client.search(space.name, vector=unit(1), top_k=2)
    assert results[0].cube.cube_id == "axis1"
    assert results[0].score == pytest.approx(1.0, abs=1e-4)


def test_batch_create_with_progress(client: MemosClient, space: str, capsys: pytest.CaptureFixture[str]) -> None:
    items: list[CubeDraft | dict[str, Any]] = [
        CubeDraft(text=f"draft {i}", cube_id=f"d{i:02d}", tags=("batch",)) for i in range(12)
    ]
    items += [{"text": f"mapping {i}", "cube_id": f"p{i:02d}", "semantic_type": "event"} for i in range(13)]
    cubes = client.batch_create_cubes(space, items, batch_size=10, progress=True)
    assert [c.cube_id for c in cubes] == [f"d{i:02d}" for i in range(12)] + [f"p{i:02d}" for i in range(13)]
    assert cubes[-1].semantic_type is SemanticType.EVENT and cubes[0].tags == ("batch",)
    assert "25/25" in capsys.readouterr().err
    assert len(list(client.list_cubes(space))) == 25


def test_write_and_read_payload_round_trip(client: MemosClient, space: str) -> None:
    data = _safetensors(3 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob = client.write_payload(space, io.BytesIO(data), media_type="application/vnd.safetensors")
    assert blob.digest == digest and blob.size_bytes == len(data)
    chunks = [data[:1000], data[1000:]]
    again = client.write_payload(space, chunks, expected_digest=digest, chunk_size=1 << 18)
    assert again.digest == digest
    cube = client.create_cube(
        space,
        cube_id="adapter",
        payload=cube_pb2.ParametricPayload(
            blob=blob.proto,
            model_fingerprint="sha256:" + "0" * 64,
            dtype="float32",
            shape=[8, (len(data) - 200) // 32],
            rank=8,
            target_modules=["q_proj"],
            adapter_config_json='{"r": 8}',
        ),
    )
    assert cube.type is MemoryType.PARAMETRIC and cube.blob is not None and cube.blob.digest == digest
    assert client.read_payload_bytes(cube.name) == data
    assert b"".join(client.read_payload(cube.name, offset=10, limit=100)) == data[10:110]


def test_stream_errors_are_converted(client: MemosClient, space: str) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.read_payload_bytes(cube_name(space, "missing"))
    assert missing.value.reason == "CUBE_NOT_FOUND"
    bad = "sha256:" + "0" * 64
    with pytest.raises(InvalidArgumentError) as mismatch:
        client.write_payload(space, iter([b"some ", b"bytes"]), expected_digest=bad)
    assert mismatch.value.reason == "PAYLOAD_DIGEST_MISMATCH"


def test_token_is_required_and_checked(server: Any) -> None:
    with MemosClient(server.address, token=admin_token(server)) as memos:
        assert memos.create_space(_new_id("tok-")).name.startswith("spaces/tok-")
    with MemosClient(server.address, token="mgt_k0000000000000000_" + "A" * 43) as memos:
        with pytest.raises(UnauthenticatedError) as refused:
            memos.create_space(_new_id("tok-"))
        assert refused.value.reason == "INVALID_TOKEN"
