"""The Python client's lifecycle, search-mode and Recall calls against a real server."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from memos_client import FailedPreconditionError, MemosClient, NotFoundError
from memos_test_support import admin_token

from memos_grpc.server.app import MemosServer


@pytest.fixture
def client(server: Any) -> Iterator[MemosClient]:
    with MemosClient(server.address, token=admin_token(server), timeout=120.0) as memos:
        yield memos


@pytest.fixture
def space(client: MemosClient) -> str:
    space_id = "space-" + uuid.uuid4().hex[:10]
    client.create_space(space_id)
    return space_id


def refresh_lexical(server: MemosServer) -> None:
    lexical = server.slot.get().context.catalog.lexical
    assert lexical is not None
    lexical.refresh()


def test_versions_rollback_and_states(client: MemosClient, space: str) -> None:
    cube = client.create_cube(space, "the boat is moored at pier 4")
    client.update_cube(cube.name, text="the boat moved to pier 9")
    assert [c.version for c in client.list_versions(cube.name, page_size=1)] == [2, 1]
    back = client.rollback_cube(cube.name, 1)
    assert (back.version, back.text) == (3, "the boat is moored at pier 4")
    frozen = client.freeze_cube(cube.name)
    assert frozen.state.name == "FROZEN"
    with pytest.raises(FailedPreconditionError) as caught:
        client.archive_cube(cube.name)
    assert caught.value.reason == "CUBE_FROZEN"
    assert client.unfreeze_cube(cube.name).state.name == "GENERATED"
    assert client.archive_cube(cube.name).state.name == "ARCHIVED"


def test_merge_search_modes_and_recall(client: MemosClient, space: str, server: MemosServer) -> None:
    a = client.create_cube(space, "dana's cat is called biscuit")
    b = client.create_cube(space, "biscuit the cat is ginger")
    merged = client.merge_cubes(space, [a.cube_id, b.name], "dana has a ginger cat called biscuit")
    assert merged.proto.merged_from == [a.name, b.name]
    assert client.get_cube(a.name).state.name == "MERGED"
    refresh_lexical(server)
    for mode in ("dense", "lexical", "hybrid"):
        assert client.search(space, "biscuit", mode=mode, top_k=3)[0].cube.name in (a.name, b.name, merged.name)
    with pytest.raises(ValueError):
        client.search(space, "biscuit", mode="fuzzy")
    plan = client.recall(space, "what is dana's cat called", token_budget=40)
    assert plan.items and plan.tokens_used <= 40 and plan.tokens_used == sum(i.tokens for i in plan.items)
    assert plan.items[0].kind == "plaintext" and 0.0 <= plan.items[0].relevance <= 1.0


def test_an_expired_cube_is_told_from_a_deleted_one_and_listed_as_a_tombstone(client: MemosClient, space: str) -> None:
    expire = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)  # already past: expired at once
    cube = client.create_cube(space, "the ferry left at dawn", expire_time=expire)
    assert cube.expire_time_setter == "principals/admin"
    kept = client.create_cube(space, "the lighthouse stays lit")
    with pytest.raises(NotFoundError) as caught:
        client.get_cube(cube.name)
    assert caught.value.reason == "CUBE_EXPIRED"
    assert [c.name for c in client.list_cubes(space)] == [kept.name]
    listed = {c.name: c for c in client.list_cubes(space, show_expired=True)}
    assert set(listed) == {cube.name, kept.name}
    stone = listed[cube.name]
    assert (stone.state.name, stone.text, stone.provenance_id) == ("EXPIRED", None, cube.provenance_id)
    assert stone.expire_time == expire and stone.purge_time == expire + dt.timedelta(days=30)
    assert listed[kept.name].purge_time is None
