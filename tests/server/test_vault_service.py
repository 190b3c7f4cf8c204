"""VaultService over a real server: CRUD, paging, update masks, etags, filters, search and payloads."""

from __future__ import annotations

import hashlib
import os

import grpc
import numpy as np
import pytest
from google.protobuf import field_mask_pb2
from memos_test_support import reason_of

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.server.app import MemosServer
from memos_grpc.store.vectors import BULK_ADD


def text_cube(text: str, **fields: object) -> cube_pb2.MemCube:
    return cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text), **fields)  # type: ignore[arg-type]


def unit(seed: int, dimension: int = 384) -> list[float]:
    vector = np.random.default_rng(seed).normal(size=dimension).astype(np.float32)
    return list(vector / np.linalg.norm(vector))


def test_create_get_roundtrip_sets_header_fields(vault_stub: VaultServiceStub, space: str) -> None:
    created = vault_stub.CreateCube(
        v.CreateCubeRequest(
            parent=space,
            cube_id="first",
            cube=text_cube(
                "Alice prefers green tea",
                tags=["drinks"],
                labels={"user": "alice"},
                semantic_type=cube_pb2.SEMANTIC_TYPE_PREFERENCE,
                source=cube_pb2.SOURCE_USER_INPUT,
                priority=7,
                sensitivity_labels=["pii"],
            ),
        )
    )
    assert created.name == f"{space}/cubes/first"
    assert created.type == cube_pb2.MEMORY_TYPE_PLAINTEXT
    assert created.state == cube_pb2.LIFECYCLE_STATE_GENERATED
    assert created.storage_mode == cube_pb2.STORAGE_MODE_INLINE
    assert created.version == 1 and created.etag and created.provenance_id
    assert created.embedding_fingerprint.startswith("all-MiniLM-L6-v2@sha256:")
    assert created.create_time.seconds > 0
    fetched = vault_stub.GetCube(v.GetCubeRequest(name=created.name))
    assert fetched == created


def test_server_generates_ids_and_provenance_is_unique(vault_stub: VaultServiceStub, space: str) -> None:
    a = vault_stub.CreateCube(v.CreateCubeRequest(parent=space, cube=text_cube("one")))
    b = vault_stub.CreateCube(v.CreateCubeRequest(parent=space, cube=text_cube("two")))
    assert a.name != b.name and a.provenance_id != b.provenance_id


def test_batch_create_is_all_or_nothing(vault_stub: VaultServiceStub, space: str) -> None:
    vault_stub.CreateCube(v.CreateCubeRequest(parent=space, cube_id="taken", cube=text_cube("x")))
    batch = v.BatchCreateCubesRequest(
        parent=space,
        requests=[
            v.CreateCubeRequest(cube_id="fresh", cube=text_cube("y")),
            v.CreateCubeRequest(cube_id="taken", cube=text_cube("z")),
        ],
    )
    with pytest.raises(grpc.RpcError) as caught:
        vault_stub.BatchCreateCubes(batch)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as missing:
        vault_stub.GetCube(v.GetCubeRequest(name=f"{space}/cubes/fresh"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("spoiler", ["bad id", "taken"])
def test_a_refused_bulk_batch_leaves_none_of_its_vectors_indexed(
    server: MemosServer, vault_stub: VaultServiceStub, space: str, spoiler: str
) -> None:
    """A batch whose every cube brings a vector is indexed while its cubes are built and committed
    (``Cubes._preindex``); refused at either step, its vectors leave the index again."""
    vault_stub.CreateCube(v.CreateCubeRequest(parent=space, cube_id="taken", cube=text_cube("x")))
    vectors = [unit(1000 + i) for i in range(BULK_ADD)]
    requests = [
        v.CreateCubeRequest(cube_id=f"bulk-{i}", cube=text_cube(f"bulk {i}"), vector=v.Vector(values=vector))
        for i, vector in enumerate(vectors)
    ]
    requests[-1].cube_id = "Not An Id!" if spoiler == "bad id" else "taken"
    with pytest.raises(grpc.RpcError) as caught:
        vault_stub.BatchCreateCubes(v.BatchCreateCubesRequest(parent=space, requests=requests))
    expected = grpc.StatusCode.INVALID_ARGUMENT if spoiler == "bad id" else grpc.StatusCode.ALREADY_EXISTS
    assert caught.value.code() == expected
    index = server.slot.get().context.store.indexes.get(space.removeprefix("spaces/"))
    for vector in vectors:
        found = index.search(np.asarray(vector, dtype=np.float32), 1)
        assert not found or found[0][1] < 0.999, "a vector of the refused batch is still in the index"


def test_list_pages_through_every_cube_once(vault_stub: VaultServiceStub, space: str) -> None:
    requests = [v.CreateCubeRequest(cube_id=f"c{i:03d}", cube=text_cube(f"memory {i}")) for i in range(23)]
    vault_stub.BatchCreateCubes(v.BatchCreateCubesRequest(parent=space, requests=requests))
    names, token, pages = [], "", 0
    while True:
        page = vault_stub.ListCubes(v.ListCubesRequest(parent=space, page_size=5, page_token=token))
        names += [c.name for c in page.cubes]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 5
    assert names == [f"{space}/cubes/c{i:03d}" for i in range(23)]


def test_list_filter_and_token_bound_to_filter(vault_stub: VaultServiceStub, space: str) -> None:
    requests = [
        v.CreateCubeRequest(cube_id=f"c{i}", cube=text_cube(f"m{i}", tags=["even"] if i % 2 == 0 else ["odd"]))
        for i in range(6)
    ]
    vault_stub.BatchCreateCubes(v.BatchCreateCubesRequest(parent=space, requests=requests))
    page = vault_stub.ListCubes(v.ListCubesRequest(parent=space, filter='tags:"even"', page_size=2))
    assert [c.name.rsplit("/", 1)[1] for c in page.cubes] == ["c0", "c2"]
    with pytest.raises(grpc.RpcError) as caught:
        vault_stub.ListCubes(v.ListCubesRequest(parent=space, filter='tags:"odd"', page_token=page.next_page_token))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == "INVALID_PAGE_TOKEN"


def test_update_applies_only_masked_fields_and_rotates_etag(vault_stub: VaultServiceStub, space: str) -> None:
    created = vault_stub.CreateCube(
        v.CreateCubeRequest(parent=space, cube_id="u", cube=text_cube("old text", tags=["a"], priority=1))
    )
    change = cube_pb2.MemCube(name=created.name, etag=created.etag, tags=["b", "c"], priority=50)
    change.plaintext.text = "ignored, not in the mask"
    updated = vault_stub.UpdateCube(
        v.UpdateCubeRequest(cube=change, update_mask=field_mask_pb2.FieldMask(paths=["tags"]))
    )
    assert list(updated.tags) == ["b", "c"]
    assert updated.priority == 1 and updated.plaintext.text == "old text"
    assert updated.version == 2 and updated.etag != created.etag
    assert updated.provenance_id == created.provenance_id


def test_update_text_reembeds_so_search_follows(vault_stub: VaultServiceStub, space: str) -> None:
    vault_stub.CreateCube(v.CreateCubeRequest(parent=space, cube_id="pet", cube=text_cube("I own a golden retriever")))
    vault_stub.CreateCube(v.CreateCubeRequest(parent=space, cube_id="car", cube=text_cube("My car is a red Volvo")))
    change = cube_pb2.MemCube(name=f"{space}/cubes/pet")
    change.plaintext.text = "The quarterly budget review is on Monday"
    vault_stub.UpdateCube(
        v.UpdateCubeRequest(cube=change, update_mask=field_mask_pb2.FieldMask(paths=["plaintext.text"]))
    )
    hits = vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, text="finance meeting schedule", top_k=1))
    assert hits.results[0].cube.name == f"{space}/cubes/pet"
    dogs = vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, text="dog", top_k=2))
    assert all("retriever" not in r.cube.plaintext.text for r in dogs.results)


def test_search_by_text_ranks_the_relevant_memory_first(vault_stub: VaultServiceStub, space: str) -> None:
    texts = ["My cat is called Tom", "The meeting moved to Friday", "I am allergic to peanuts"]
    vault_stub.BatchCreateCubes(
        v.BatchCreateCubesRequest(
            parent=space,
            requests=[v.CreateCubeRequest(cube_id=f"t{i}", cube=text_cube(t)) for i, t in enumerate(texts)],
        )
    )
    results = vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, text="what pet do I have?", top_k=3)).results
    assert results[0].cube.plaintext.text == "My cat is called Tom"
    assert results[0].score > results[1].score >= results[2].score


def test_search_by_client_vector(vault_stub: VaultServiceStub, space: str) -> None:
    requests = [
        v.CreateCubeRequest(cube_id=f"v{i}", cube=text_cube(f"vector {i}"), vector=v.Vector(values=unit(i)))
        for i in range(50)
    ]
    created = vault_stub.BatchCreateCubes(v.BatchCreateCubesRequest(parent=space, requests=requests))
    assert created.cubes[0].embedding_fingerprint == "client"
    top = vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, vector=v.Vector(values=unit(17)), top_k=1))
    assert top.results[0].cube.name == f"{space}/cubes/v17"
    assert top.results[0].score == pytest.approx(1.0, abs=1e-4)


def test_selective_filter_finds_every_match(vault_stub: VaultServiceStub, space: str) -> None:
    """Post-filtering a short top-k would find none of the rare cubes; the vault must find all."""
    requests = [
        v.CreateCubeRequest(
            cube_id=f"v{i}",
            cube=text_cube(f"v{i}", labels={"kind": "rare" if i % 100 == 0 else "common"}),
            vector=v.Vector(values=unit(i)),
        )
        for i in range(1000)
    ]
    for start in range(0, len(requests), 250):
        vault_stub.BatchCreateCubes(v.BatchCreateCubesRequest(parent=space, requests=requests[start : start + 250]))
    query = v.Vector(values=unit(5))  # close to a common cube, far from every rare one
    found = vault_stub.SearchCubes(
        v.SearchCubesRequest(parent=space, vector=query, top_k=20, filter='labels.kind = "rare"')
    ).results
    assert sorted(r.cube.name for r in found) == sorted(f"{space}/cubes/v{i}" for i in range(0, 1000, 100))
    assert [r.score for r in found] == sorted((r.score for r in found), reverse=True)


def test_deleted_cube_is_never_found_again(vault_stub: VaultServiceStub, space: str) -> None:
    created = vault_stub.CreateCube(
        v.CreateCubeRequest(
            parent=space,
            cube_id="gone",
            cube=text_cube("secret launch code"),
            vector=v.Vector(values=unit(1)),
        )
    )
    vault_stub.CreateCube(
        v.CreateCubeRequest(parent=space, cube_id="stays", cube=text_cube("x"), vector=v.Vector(values=unit(2)))
    )
    vault_stub.DeleteCube(v.DeleteCubeRequest(name=created.name, etag=created.etag))
    for request in (
        v.SearchCubesRequest(parent=space, vector=v.Vector(values=unit(1)), top_k=10),
        v.SearchCubesRequest(parent=space, vector=v.Vector(values=unit(1)), top_k=10, filter="priority >= 0"),
    ):
        names = [r.cube.name for r in vault_stub.SearchCubes(request).results]
        assert created.name not in names and names == [f"{space}/cubes/stays"]
    listed = vault_stub.ListCubes(v.ListCubesRequest(parent=space)).cubes
    assert [c.name for c in listed] == [f"{space}/cubes/stays"]
    with pytest.raises(grpc.RpcError) as caught:
        vault_stub.GetCube(v.GetCubeRequest(name=created.name))
    assert reason_of(caught.value) == "CUBE_NOT_FOUND"


def test_expired_cube_vanishes_from_get_list_and_search(vault_stub: VaultServiceStub, space: str) -> None:
    expired = text_cube("past memory")
    expired.expire_time.FromSeconds(1)  # 1970: already past
    vault_stub.CreateCube(
        v.CreateCubeRequest(parent=space, cube_id="old", cube=expired, vector=v.Vector(values=unit(3)))
    )
    with pytest.raises(grpc.RpcError) as caught:
        vault_stub.GetCube(v.GetCubeRequest(name=f"{space}/cubes/old"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert not vault_stub.ListCubes(v.ListCubesRequest(parent=space)).cubes
    assert not vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, vector=v.Vector(values=unit(3)))).results


def _upload(stub: VaultServiceStub, space: str, data: bytes, expected: str = "") -> cube_pb2.BlobRef:
    def chunks() -> object:
        yield v.WritePayloadRequest(
            parent=space,
            expected_digest=expected,
            expected_size=len(data),
            media_type="application/vnd.safetensors",
        )
        for start in range(0, len(data), 1 << 20):
            yield v.WritePayloadRequest(data=data[start : start + (1 << 20)])

    return stub.WritePayload(chunks()).blob  # type: ignore[arg-type]


def test_payload_write_then_read_back_through_a_cube(vault_stub: VaultServiceStub, space: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob = _upload(vault_stub, space, data, digest)
    assert blob.digest == digest and blob.size_bytes == len(data)
    cube = cube_pb2.MemCube(
        activation=cube_pb2.ActivationPayload(
            blob=cube_pb2.BlobRef(digest=digest),
            model_fingerprint="tiny-gpt2@sha256:00",
            dtype="float32",
            shape=[1, 2, 8, 4],
            num_layers=2,
            num_heads=2,
            token_count=8,
        )
    )
    created = vault_stub.CreateCube(v.CreateCubeRequest(parent=space, cube_id="kv", cube=cube))
    assert created.type == cube_pb2.MEMORY_TYPE_ACTIVATION
    assert created.storage_mode == cube_pb2.STORAGE_MODE_BLOB
    assert created.activation.blob.size_bytes == len(data)
    assert created.activation.blob.media_type == "application/vnd.safetensors"
    read = b"".join(c.data for c in vault_stub.ReadPayload(v.ReadPayloadRequest(name=created.name)))
    assert read == data
    part = b"".join(
        c.data for c in vault_stub.ReadPayload(v.ReadPayloadRequest(name=created.name, read_offset=100, read_limit=50))
    )
    assert part == data[100:150]


def test_blob_cube_needs_an_uploaded_blob(vault_stub: VaultServiceStub, space: str) -> None:
    cube = cube_pb2.MemCube(
        parametric=cube_pb2.ParametricPayload(
            blob=cube_pb2.BlobRef(digest="sha256:" + "0" * 64), model_fingerprint="base@sha256:00"
        )
    )
    with pytest.raises(grpc.RpcError) as caught:
        vault_stub.CreateCube(v.CreateCubeRequest(parent=space, cube=cube))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "BLOB_NOT_FOUND"
