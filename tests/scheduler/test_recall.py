"""SchedulerService.Recall through a real server: ranking parts, budget fitting with a real tokenizer, usage."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator

import grpc
import pytest
from memos_test_support import reason_of, start_server

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.scheduler.tokens import TokenCounter
from memos_grpc.server.app import MemosServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[MemosServer]:
    """A server whose batches are written only when a test says so (``settle``), never by the clock.

    On a loaded machine a background flush could land between two calls and change what a test sees.
    """
    running = start_server(
        tmp_path_factory.mktemp("recall"), embedder, usage_flush_seconds=3600, lexical_refresh_seconds=3600
    )
    yield running
    running.stop(grace=1)


@pytest.fixture
def scheduler(channel: grpc.Channel) -> SchedulerServiceStub:
    return SchedulerServiceStub(channel)


def create(vault: VaultServiceStub, space: str, text: str, context: str = "", **fields: object) -> cube_pb2.MemCube:
    plaintext = cube_pb2.PlaintextPayload(text=text, context=context)
    return vault.CreateCube(v.CreateCubeRequest(parent=space, cube=cube_pb2.MemCube(plaintext=plaintext, **fields)))


def settle(server: MemosServer) -> None:
    """Makes new cubes lexically searchable and writes pending usage now (both are batched)."""
    vault = server.slot.get()
    assert vault.context.catalog.lexical is not None
    vault.context.catalog.lexical.refresh()
    vault.usage.flush()


def test_the_plan_fits_the_budget_best_first_counted_with_a_real_tokenizer(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str, server: MemosServer
) -> None:
    long = create(vault_stub, space, "the garden party is on saturday " + "with music and food " * 30)
    short = create(vault_stub, space, "the garden party starts at noon")
    other = create(vault_stub, space, "the car needs new tyres")
    settle(server)
    counter = TokenCounter()
    sizes = dict(zip((long.name, short.name), counter.count([long.plaintext.text, short.plaintext.text]), strict=True))
    plan = scheduler.Recall(s.RecallRequest(parent=space, query="when is the garden party", token_budget=50))
    assert sizes[long.name] > 50 >= sizes[short.name]
    chosen = [item.cube.name for item in plan.items]
    assert short.name in chosen and long.name not in chosen  # the long one overflows; a smaller one still fits
    assert plan.over_budget_count >= 1 and plan.tokens_used == sum(i.tokens for i in plan.items) <= 50
    assert [i.tokens for i in plan.items if i.cube.name == short.name] == [sizes[short.name]]
    assert plan.tokenizer.endswith("tokenizer.json") and plan.candidate_count >= 2
    scores = [i.score for i in plan.items]
    assert scores == sorted(scores, reverse=True)
    roomy = scheduler.Recall(s.RecallRequest(parent=space, query="when is the garden party", token_budget=10_000))
    assert {long.name, short.name} <= {i.cube.name for i in roomy.items}
    assert roomy.items[0].cube.name in (long.name, short.name) and roomy.items[-1].cube.name == other.name
    assert (
        len(scheduler.Recall(s.RecallRequest(parent=space, query="garden", token_budget=10_000, max_items=1)).items)
        == 1
    )


def test_score_parts_are_explained_and_weighted(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str, server: MemosServer
) -> None:
    low = create(vault_stub, space, "the dentist appointment is on monday", priority=0)
    high = create(vault_stub, space, "the dentist appointment is on monday morning", priority=100)
    settle(server)
    plan = scheduler.Recall(s.RecallRequest(parent=space, query="dentist appointment", token_budget=1000))
    parts = {i.cube.name: i.parts for i in plan.items}
    assert (parts[low.name].priority, parts[high.name].priority) == (0.0, 1.0)
    settings = server.settings
    for item in plan.items:
        p = item.parts
        assert all(0.0 <= x <= 1.0 for x in (p.relevance, p.priority, p.recency, p.usage))
        assert p.recency > 0.99  # made a moment ago
        weighted = (
            settings.recall_weight_relevance * p.relevance
            + settings.recall_weight_priority * p.priority
            + settings.recall_weight_recency * p.recency
            + settings.recall_weight_usage * p.usage
        )
        assert math.isclose(item.score, weighted, rel_tol=1e-5)
    assert max(p.relevance for p in parts.values()) == pytest.approx(1.0)
    assert plan.items[0].cube.name == high.name


def test_use_is_recorded_in_batches_not_per_call(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str, server: MemosServer
) -> None:
    cube = create(vault_stub, space, "the wifi password is on the fridge")
    settle(server)
    server.slot.get().usage.flush()
    for _ in range(3):
        plan = scheduler.Recall(s.RecallRequest(parent=space, query="wifi password", token_budget=100))
        assert [i.cube.name for i in plan.items] == [cube.name]
    # Nothing written yet: uses are counted in memory until the next flush.
    assert vault_stub.GetCube(v.GetCubeRequest(name=cube.name)).usage_count == 0
    assert server.slot.get().usage.flush() == 1  # one cube touched, in one transaction
    after = vault_stub.GetCube(v.GetCubeRequest(name=cube.name))
    assert after.usage_count == 3 and after.last_use_time.seconds > 0 and after.version == cube.version
    again = scheduler.Recall(s.RecallRequest(parent=space, query="wifi password", token_budget=100))
    assert again.items[0].cube.usage_count == 3


def test_archived_cubes_are_not_recalled(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str, server: MemosServer
) -> None:
    kept = create(vault_stub, space, "the spare key is under the mat")
    shelved = create(vault_stub, space, "the spare key used to be in the shed")
    vault_stub.ArchiveCube(v.ArchiveCubeRequest(name=shelved.name))
    settle(server)
    plan = scheduler.Recall(s.RecallRequest(parent=space, query="where is the spare key", token_budget=1000))
    assert [i.cube.name for i in plan.items] == [kept.name]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"query": "x", "token_budget": 0}, "INVALID_BUDGET"),
        ({"query": " ", "token_budget": 10}, "EMPTY_TEXT"),
        ({"query": "x", "token_budget": 10, "types": [cube_pb2.MEMORY_TYPE_UNSPECIFIED]}, "INVALID_ENUM"),
        ({"query": "x", "token_budget": 10, "max_items": -1}, "INVALID_MAX_ITEMS"),
        ({"query": "x", "token_budget": 10, "filter": "nope ="}, "INVALID_FILTER"),
    ],
    ids=["zero-budget", "blank-query", "unspecified-type", "negative-max-items", "bad-filter"],
)
def test_bad_recall_requests_are_refused(
    scheduler: SchedulerServiceStub, space: str, fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        scheduler.Recall(s.RecallRequest(parent=space, **fields))  # type: ignore[arg-type]
    assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.INVALID_ARGUMENT, reason)


def test_search_context_helps_find_a_memory_but_costs_no_tokens(
    vault_stub: VaultServiceStub, scheduler: SchedulerServiceStub, space: str, server: MemosServer
) -> None:
    context = "sam: did the plumber ever come about the leaking boiler? " * 20  # far over the budget below
    framed = create(vault_stub, space, "he fixed it on tuesday", context=context)
    create(vault_stub, space, "the bakery on the corner sells rye bread")
    settle(server)
    plan = scheduler.Recall(s.RecallRequest(parent=space, query="when was the boiler fixed", token_budget=20))
    assert plan.items[0].cube.name == framed.name  # found through its context
    assert plan.items[0].tokens == TokenCounter().count(["he fixed it on tuesday"])[0] <= 20


def test_a_flush_writes_every_space_s_uses_at_once_and_skips_deleted_cubes(
    vault_stub: VaultServiceStub, governance_stub: GovernanceServiceStub, space: str, server: MemosServer
) -> None:
    other = governance_stub.CreateSpace(g.CreateSpaceRequest(space_id="s" + uuid.uuid4().hex[:12])).name
    here = [create(vault_stub, space, f"note number {n} about the garden") for n in range(3)]
    there = create(vault_stub, other, "a note about the garage")
    vault_stub.DeleteCube(v.DeleteCubeRequest(name=here[2].name))
    usage = server.slot.get().usage
    usage.flush()
    now = server.slot.get().context.clock()
    ids = [c.name.rsplit("/", 1)[1] for c in here]
    usage.record(space.split("/")[1], ids, now)
    usage.record(space.split("/")[1], ids[:1], now)
    usage.record(other.split("/")[1], [there.name.rsplit("/", 1)[1]], now)
    assert usage.flush() == 3  # two cubes here (the deleted one skipped), one there
    counts = [vault_stub.GetCube(v.GetCubeRequest(name=c.name)).usage_count for c in (*here[:2], there)]
    assert counts == [2, 1, 1]
    # The counts reach search results too (the catalog), while the lexical index still finds the cubes.
    settle(server)
    hits = vault_stub.SearchCubes(v.SearchCubesRequest(parent=space, text="garden", mode=v.SEARCH_MODE_LEXICAL))
    assert {h.cube.name: h.cube.usage_count for h in hits.results} == {here[0].name: 2, here[1].name: 1}
