"""Dense, lexical (BM25) and hybrid search through a real server, and the lexical index's life."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import field_mask_pb2
from memos_test_support import admin_token, authorized_channel, reason_of, start_server

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.server.app import MemosServer
from memos_grpc.settings import Settings
from memos_grpc.vault.context import utc_now
from memos_grpc.vault.search import fuse

DENSE, LEXICAL, HYBRID = v.SEARCH_MODE_DENSE, v.SEARCH_MODE_LEXICAL, v.SEARCH_MODE_HYBRID
FILLER = [
    "the weekly sync moved to thursday afternoon",
    "remember to water the office plants",
    "the quarterly report is due next friday",
    "lunch options near the office include a noodle bar",
    "the team prefers short written updates",
    "the printer on the second floor jams often",
]


def refresh(server: MemosServer) -> None:
    """Commits the lexical index now, instead of within lexical_refresh_seconds."""
    lexical = server.slot.get().context.catalog.lexical
    assert lexical is not None
    lexical.refresh()


def names(vault: VaultServiceStub, space: str, text: str, mode: int, **fields: object) -> list[str]:
    request = v.SearchCubesRequest(parent=space, text=text, top_k=5, mode=mode, **fields)  # type: ignore[arg-type]
    return [hit.cube.name for hit in vault.SearchCubes(request).results]


def create(vault: VaultServiceStub, space: str, text: str, vector: list[float] | None = None, **fields: object) -> str:
    cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text), **fields)
    request = v.CreateCubeRequest(parent=space, cube=cube, vector=None if vector is None else v.Vector(values=vector))
    return vault.CreateCube(request).name


def test_lexical_and_hybrid_find_a_rare_word_dense_search_misses(
    vault_stub: VaultServiceStub, space: str, server: MemosServer, embedder: Embedder
) -> None:
    for text in FILLER:
        create(vault_stub, space, text)
    query = "zorblattic"
    # The rare word's cube gets the vector farthest from the query's: dense search cannot find it.
    away = (-embedder.embed([query])[0]).astype(np.float32).tolist()
    target = create(vault_stub, space, "the invoice for the zorblattic valve repair is paid", away)
    refresh(server)
    assert target not in names(vault_stub, space, query, DENSE)
    assert names(vault_stub, space, query, LEXICAL) == [target]
    lexical = vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, text="office", top_k=5, mode=LEXICAL)).results
    assert lexical[0].score == 1.0 and all(0.0 < hit.score <= 1.0 for hit in lexical)  # scaled: no global BM25
    assert target in names(vault_stub, space, query, HYBRID)
    # Stemming: the English tokenizer matches word forms.
    assert (
        names(vault_stub, space, "water plant", LEXICAL)[0] == names(vault_stub, space, "watering plants", LEXICAL)[0]
    )


def test_lexical_search_honours_filters_archive_and_bad_requests(
    vault_stub: VaultServiceStub, space: str, server: MemosServer
) -> None:
    low = create(vault_stub, space, "quokka sightings on the island", priority=10)
    high = create(vault_stub, space, "quokka photos from the trip", priority=90)
    refresh(server)
    assert set(names(vault_stub, space, "quokka", LEXICAL)) == {low, high}
    assert names(vault_stub, space, "quokka", LEXICAL, filter="priority > 50") == [high]
    vault_stub.ArchiveCube(v.ArchiveCubeRequest(name=low))
    refresh(server)
    assert names(vault_stub, space, "quokka", HYBRID) == [high]
    assert set(names(vault_stub, space, "quokka", LEXICAL, include_archived=True)) == {low, high}
    with pytest.raises(grpc.RpcError) as caught:
        vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, vector=v.Vector(values=[1.0] * 384), mode=LEXICAL))
    assert reason_of(caught.value) == "TEXT_QUERY_REQUIRED"
    with pytest.raises(grpc.RpcError) as unknown:
        vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, text="quokka", mode=9))  # type: ignore[arg-type]
    assert reason_of(unknown.value) == "INVALID_ENUM"


def test_a_deleted_or_expired_cube_never_comes_back_through_the_lexical_index(
    vault_stub: VaultServiceStub, space: str, server: MemosServer
) -> None:
    doomed = create(vault_stub, space, "the axolotl tank needs cleaning")
    refresh(server)
    assert names(vault_stub, space, "axolotl", LEXICAL) == [doomed]
    vault_stub.DeleteCube(v.DeleteCubeRequest(name=doomed))
    assert names(vault_stub, space, "axolotl", LEXICAL) == []  # before the index's own refresh
    assert names(vault_stub, space, "axolotl", HYBRID) == []
    refresh(server)
    assert names(vault_stub, space, "axolotl", LEXICAL) == []
    soon = cube_pb2.MemCube()
    soon.expire_time.FromNanoseconds(time.time_ns() + 60_000_000_000)
    fleeting = create(vault_stub, space, "the narwhal exhibit closes soon", expire_time=soon.expire_time)
    refresh(server)
    assert names(vault_stub, space, "narwhal", LEXICAL) == [fleeting]
    # Past its expire time by the vault's clock, moved on instead of waited for.
    assert server.vault is not None
    context = server.vault.context
    later = utc_now() + timedelta(seconds=61)
    context.clock = lambda: later
    try:
        assert names(vault_stub, space, "narwhal", LEXICAL) == []
    finally:
        context.clock = utc_now


def test_a_new_cube_is_found_within_the_refresh_interval(vault_stub: VaultServiceStub, space: str) -> None:
    name = create(vault_stub, space, "the okapi is a relative of the giraffe")
    deadline = time.monotonic() + 5.0  # lexical_refresh_seconds is 0.5; the machine may be busy
    while names(vault_stub, space, "okapi", LEXICAL) != [name]:
        assert time.monotonic() < deadline, "not found lexically within 5 s"
        time.sleep(0.1)


def test_the_lexical_index_is_rebuilt_from_duckdb_at_start_up(tmp_path: Path, embedder: Embedder) -> None:
    restartable = tmp_path / "data"
    first = start_server(restartable, embedder)
    channel = authorized_channel(first.address, admin_token(first))
    space = GovernanceServiceStub(channel).CreateSpace(g.CreateSpaceRequest(space_id="s" + uuid.uuid4().hex[:8])).name
    name = create(VaultServiceStub(channel), space, "the capybara enclosure opens in may")
    channel.close()
    first.stop(grace=1)
    again = start_server(restartable, embedder)
    channel = authorized_channel(again.address, admin_token(again))
    try:
        refresh(again)
        assert names(VaultServiceStub(channel), space, "capybara", LEXICAL) == [name]
    finally:
        channel.close()
        again.stop(grace=1)


def test_search_context_is_found_lexically_but_not_embedded(
    vault_stub: VaultServiceStub, space: str, server: MemosServer
) -> None:
    for text in FILLER:
        create(vault_stub, space, text)
    said = "i finally booked the flights"
    bare = create(vault_stub, space, said)
    question = "anna: when do you leave for lisbon?"
    cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=said, context=question))
    framed = vault_stub.CreateCube(v.CreateCubeRequest(parent=space, cube=cube)).name
    refresh(server)
    # Only the context mentions lisbon: lexical and hybrid search find the turn by it.
    assert names(vault_stub, space, "lisbon", LEXICAL) == [framed]
    assert names(vault_stub, space, "trip to lisbon", HYBRID)[0] == framed
    # The vector is the text's alone: both cubes score the same against any query.
    dense = vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, text="lisbon flights", top_k=10)).results
    scores = {hit.cube.name: hit.score for hit in dense}
    assert scores[framed] == pytest.approx(scores[bare], abs=1e-6)
    # Changing the context re-indexes the cube lexically, without a new vector.
    before = vault_stub.GetCube(v.GetCubeRequest(name=framed))
    mask = field_mask_pb2.FieldMask(paths=["plaintext.context"])
    update = cube_pb2.MemCube(name=framed, plaintext=cube_pb2.PlaintextPayload(context="anna: and porto?"))
    after = vault_stub.UpdateCube(v.UpdateCubeRequest(cube=update, update_mask=mask))
    assert (after.plaintext.text, after.plaintext.context, after.version) == (said, "anna: and porto?", 2)
    refresh(server)
    assert names(vault_stub, space, "lisbon", LEXICAL) == []
    assert names(vault_stub, space, "porto", LEXICAL) == [framed]
    rescored = vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, text="lisbon flights", top_k=10)).results
    assert {hit.cube.name: hit.score for hit in rescored}[framed] == pytest.approx(scores[framed], abs=1e-6)
    assert after.embedding_fingerprint == before.embedding_fingerprint


def test_bad_search_context_is_refused_and_changes_nothing(vault_stub: VaultServiceStub, space: str) -> None:
    huge = "word " * 20_000  # over max_text_bytes (64 KiB)
    cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="short", context=huge))
    with pytest.raises(grpc.RpcError) as created:
        vault_stub.CreateCube(v.CreateCubeRequest(parent=space, cube=cube))
    assert (created.value.code(), reason_of(created.value)) == (grpc.StatusCode.INVALID_ARGUMENT, "TEXT_TOO_LONG")
    assert "cube.plaintext.context" in (created.value.details() or "")
    name = create(vault_stub, space, "short")
    mask = field_mask_pb2.FieldMask(paths=["plaintext.context"])
    update = cube_pb2.MemCube(name=name, plaintext=cube_pb2.PlaintextPayload(context=huge))
    with pytest.raises(grpc.RpcError) as updated:
        vault_stub.UpdateCube(v.UpdateCubeRequest(cube=update, update_mask=mask))
    assert reason_of(updated.value) == "TEXT_TOO_LONG"
    assert vault_stub.GetCube(v.GetCubeRequest(name=name)).version == 1
    assert [c.name for c in vault_stub.ListCubes(v.ListCubesRequest(parent=space)).cubes] == [name]


def test_fusion_weighs_scaled_scores() -> None:
    dense = [(1, 0.8), (2, 0.4), (3, -0.2)]  # each list divided by its best; a negative cosine counts as 0
    lexical = [(3, 8.0), (4, 4.0)]
    assert fuse(dense, lexical, 1.0)[:2] == [(1, 1.0), (2, 0.5)]
    assert [label for label, _ in fuse(dense, lexical, 0.0)[:2]] == [3, 4]
    balanced = dict(fuse(dense, lexical, 0.5))
    assert balanced == pytest.approx({1: 0.5, 2: 0.25, 3: 0.5, 4: 0.25})
    # Two near-equal hits stay near-equal, however few the candidates.
    assert dict(fuse([(1, 0.61), (2, 0.60)], [], 1.0))[2] == pytest.approx(0.60 / 0.61)
    # How far ahead a hit is counts, not only its rank: a clear lexical winner beats a close dense one.
    close = [(1, 0.80), (2, 0.79), (3, 0.10)]
    assert fuse(close, [(2, 9.0), (1, 1.0)], 0.5)[0][0] == 2
    assert fuse([], [], 0.5) == [] and fuse([(5, 0.3)], [], 0.5) == [(5, 0.5)] and fuse([(6, -0.1)], [], 0.5) == []


def test_hybrid_dense_weight_is_checked() -> None:
    for bad in (-0.1, 1.5):
        with pytest.raises(InvalidArgumentError) as caught:
            Settings.from_mapping({"hybrid_dense_weight": bad})
        assert caught.value.reason == "INVALID_CONFIG" and "hybrid_dense_weight" in str(caught.value)
