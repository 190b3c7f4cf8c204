"""Recall: rank a space's memories for a query and fit the best into a token budget (a recall plan).

Candidates come from the vault's search (hybrid by default, the caller's
visibility applied, archived cubes and cubes redacted for the caller left
out: ranked on their hidden text they would confirm guesses about it). Each gets parts
in [0, 1] — relevance, priority, recency, usage — and a weighted score; the
plan takes them best first while they fit the budget, skipping any that
would overflow it. The use of every chosen cube is recorded, in batches.

How a cube reaches the model depends on the model the caller names: an
activation cube of that model is a KV cache to load (its tokens count, as
the cache fills the context), a parametric cube of that model an adapter to
attach (no tokens). For any other model an activation cube falls back to
its source text and a parametric cube is left out.
"""

from __future__ import annotations

import math

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2, scheduler_service_pb2, vault_service_pb2
from memos_grpc.governance.caller import Caller
from memos_grpc.scheduler.tokens import TokenCounter
from memos_grpc.scheduler.usage import UsageRecorder
from memos_grpc.store.names import parse_cube_name, parse_space_name
from memos_grpc.store.rows import memory_text, to_datetime
from memos_grpc.store.visibility import held_license_id
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.licensing import RECALL
from memos_grpc.vault.search import Hit, Search, SearchQuery
from memos_grpc.vault.validation import check_text, invalid

Item = scheduler_service_pb2.RecallItem
_SECONDS_PER_DAY = 86_400.0
#: Fewest candidates whose tokens are counted at once.
_COUNT_SLICE = 16
_ALL_TYPES = {cube_pb2.MEMORY_TYPE_PLAINTEXT, cube_pb2.MEMORY_TYPE_ACTIVATION, cube_pb2.MEMORY_TYPE_PARAMETRIC}


class Scheduler:
    """MemScheduler's Recall: turns a query and a token budget into a recall plan of a space's best-fitting memories.

    Reads through ``Search`` with the caller's visibility, scores and packs candidates, then hands the chosen
    cubes' uses to the ``UsageRecorder``; it writes nothing itself. Thread-safe; one per vault. Raises
    INVALID_ARGUMENT for a bad budget, limit or type list.
    """

    def __init__(self, context: VaultContext, search: Search, usage: UsageRecorder, tokens: TokenCounter) -> None:
        self._context = context
        self._search = search
        self._usage = usage
        self._tokens = tokens

    def recall(self, request: scheduler_service_pb2.RecallRequest, viewer: Caller) -> scheduler_service_pb2.RecallPlan:
        settings = self._context.settings
        space_id = parse_space_name(request.parent, "parent")
        check_text(request.query, settings, "query")
        if request.token_budget <= 0:
            raise invalid("token_budget must be a positive number of tokens", reasons.INVALID_BUDGET)
        if request.max_items < 0:
            raise invalid("max_items must not be negative", reasons.INVALID_MAX_ITEMS)
        wanted = set(request.types) or _ALL_TYPES
        if not wanted <= _ALL_TYPES:
            raise invalid("types names an unknown or unspecified memory type", reasons.INVALID_ENUM)
        search = SearchQuery(
            space_id=space_id,
            text=request.query,
            filter=request.filter,
            top_k=settings.recall_max_candidates,
            mode=request.mode or vault_service_pb2.SEARCH_MODE_HYBRID,
        )
        hits = [h for h in self._search.search(search, viewer, RECALL, count=False) if h.cube.type in wanted]
        kinds = [_kind(h.cube, request.model_fingerprint) for h in hits]
        items = self._ranked([h for h, kind in zip(hits, kinds, strict=True) if kind], [k for k in kinds if k])
        plan = scheduler_service_pb2.RecallPlan(
            token_budget=request.token_budget, tokenizer=self._tokens.name, candidate_count=len(items)
        )
        limit = request.max_items or len(items)
        # Tokens are counted in rank order, a slice at a time, only until the plan is full: counting all
        # 100 candidates for a plan of 10 took longer than the search that found them.
        step = max(limit, _COUNT_SLICE)
        for start in range(0, len(items), step):
            if len(plan.items) >= limit:
                break
            chunk = items[start : start + step]
            for item, tokens in zip(chunk, self._tokens_of(chunk), strict=True):
                if len(plan.items) >= limit:
                    break
                if plan.tokens_used + tokens > request.token_budget:
                    plan.over_budget_count += 1
                    continue  # a smaller memory further down may still fit
                item.tokens = tokens
                plan.tokens_used += tokens
                plan.items.append(item)
        self._count_licensed(plan, viewer)
        chosen = [parse_cube_name(item.cube.name)[1] for item in plan.items]
        self._usage.record(space_id, chosen, self._context.clock())
        return plan

    def _count_licensed(self, plan: scheduler_service_pb2.RecallPlan, viewer: Caller) -> None:
        """Counts one recall of each held license the plan uses; drops the items of a license refused just now."""
        licenses = {held_license_id(item.cube) for item in plan.items} - {""}
        if not licenses:
            return
        refused = self._context.licenses.use(RECALL, licenses, viewer.principal)
        if not refused:
            return
        kept = [item for item in plan.items if held_license_id(item.cube) not in refused]
        plan.tokens_used -= sum(item.tokens for item in plan.items if held_license_id(item.cube) in refused)
        del plan.items[:]
        plan.items.extend(kept)

    def _tokens_of(self, items: list[Item]) -> list[int]:
        """What each item takes from the budget: its text's tokens, a cache's own count, nothing for an adapter."""
        texts = [memory_text(i.cube) for i in items if i.kind == Item.KIND_PLAINTEXT]
        counted = iter(self._tokens.count(texts) if texts else [])
        tokens = []
        for item in items:
            if item.kind == Item.KIND_PLAINTEXT:
                tokens.append(next(counted))
            elif item.kind == Item.KIND_ACTIVATION:
                tokens.append(int(item.cube.activation.token_count))
            else:
                tokens.append(0)
        return tokens

    def _ranked(self, hits: list[Hit], kinds: list[Item.Kind]) -> list[scheduler_service_pb2.RecallItem]:
        """Candidates with their parts and weighted score, best first."""
        settings = self._context.settings
        now = self._context.clock()
        best = max((h.score for h in hits), default=0.0)
        most_used = max((h.cube.usage_count for h in hits), default=0)
        half_life = settings.recall_half_life_days * _SECONDS_PER_DAY
        weights = (
            settings.recall_weight_relevance,
            settings.recall_weight_priority,
            settings.recall_weight_recency,
            settings.recall_weight_usage,
        )
        items: list[scheduler_service_pb2.RecallItem] = []
        for hit, kind in zip(hits, kinds, strict=True):
            cube = hit.cube
            last = to_datetime(cube.last_use_time) or to_datetime(cube.update_time) or now
            age = max(0.0, (now - last).total_seconds())
            parts = scheduler_service_pb2.ScoreParts(
                relevance=max(0.0, hit.score / best) if best > 0 else 0.0,
                priority=min(max(cube.priority, 0), 100) / 100.0,
                recency=math.exp(-math.log(2) * age / half_life),
                usage=math.log1p(cube.usage_count) / math.log1p(most_used) if most_used else 0.0,
            )
            score = sum(
                w * p
                for w, p in zip(weights, (parts.relevance, parts.priority, parts.recency, parts.usage), strict=True)
            )
            items.append(Item(cube=cube, kind=kind, score=score, parts=parts))
        items.sort(key=lambda item: -item.score)
        return items


def _kind(cube: cube_pb2.MemCube, model_fingerprint: str) -> Item.Kind:
    """How the cube reaches the caller's model (KIND_UNSPECIFIED: it cannot, and is left out)."""
    if cube.type == cube_pb2.MEMORY_TYPE_ACTIVATION:
        if model_fingerprint and cube.activation.model_fingerprint == model_fingerprint:
            return Item.KIND_ACTIVATION
        return Item.KIND_PLAINTEXT if cube.activation.source_text else Item.KIND_UNSPECIFIED
    if cube.type == cube_pb2.MEMORY_TYPE_PARAMETRIC:
        if model_fingerprint and cube.parametric.model_fingerprint == model_fingerprint:
            return Item.KIND_PARAMETRIC
        return Item.KIND_UNSPECIFIED
    return Item.KIND_PLAINTEXT
