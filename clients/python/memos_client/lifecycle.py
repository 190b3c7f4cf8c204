"""Lifecycle and scheduler calls of the client: versions, rollback, freeze, archive, merge, and Recall.

``LifecycleCalls`` is mixed into ``MemosClient``; it relies on the client's
``_unary`` and its vault and scheduler stubs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from memos_client.drafts import CubeDraft
from memos_client.names import CUBES, cube_name, space_name
from memos_client.types import Cube
from memos_grpc._proto.memos.v1 import scheduler_service_pb2, vault_service_pb2

_v = vault_service_pb2
_s = scheduler_service_pb2
#: Search modes as the client spells them.
SEARCH_MODES = {"dense": _v.SEARCH_MODE_DENSE, "lexical": _v.SEARCH_MODE_LEXICAL, "hybrid": _v.SEARCH_MODE_HYBRID}


def search_mode(mode: str) -> int:
    if mode not in SEARCH_MODES:
        raise ValueError(f"mode must be one of {', '.join(SEARCH_MODES)}, not {mode!r}")
    return SEARCH_MODES[mode]


@dataclass(frozen=True)
class RecallItem:
    """One memory of a recall plan: the cube, its score and the parts of it, and the tokens it takes."""

    cube: Cube
    score: float
    relevance: float
    priority: float
    recency: float
    usage: float
    tokens: int
    kind: str


@dataclass(frozen=True)
class RecallPlan:
    """The memories to put before a model, best first, within the token budget."""

    items: tuple[RecallItem, ...]
    token_budget: int
    tokens_used: int
    tokenizer: str
    candidate_count: int
    over_budget_count: int
    proto: _s.RecallPlan = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_proto(cls, message: _s.RecallPlan) -> RecallPlan:
        items = tuple(
            RecallItem(
                cube=Cube.from_proto(i.cube),
                score=i.score,
                relevance=i.parts.relevance,
                priority=i.parts.priority,
                recency=i.parts.recency,
                usage=i.parts.usage,
                tokens=i.tokens,
                kind=_s.RecallItem.Kind.Name(i.kind).removeprefix("KIND_").lower(),
            )
            for i in message.items
        )
        return cls(
            items,
            message.token_budget,
            message.tokens_used,
            message.tokenizer,
            message.candidate_count,
            message.over_budget_count,
            message,
        )


class LifecycleCalls:
    """A cube's versions and states, and the scheduler's Recall."""

    _vault: Any
    _scheduler: Any

    def _unary(self, method: Any, request: Any) -> Any:  # provided by MemosClient
        raise NotImplementedError

    def list_versions(self, name: str, *, page_size: int = 100) -> Iterator[Cube]:
        """Every version of a cube, newest first (each named ``.../versions/{n}``), fetched page by page."""
        token = ""
        while True:
            request = _v.ListCubeVersionsRequest(name=name, page_size=page_size, page_token=token)
            response = self._unary(self._vault.ListCubeVersions, request)
            yield from (Cube.from_proto(c) for c in response.versions)
            token = response.next_page_token
            if not token:
                return

    def rollback_cube(self, name: str, version: int, *, etag: str = "") -> Cube:
        """Makes version ``version``'s content the cube's next version (history kept)."""
        return Cube.from_proto(
            self._unary(self._vault.RollbackCube, _v.RollbackCubeRequest(name=name, version=version, etag=etag))
        )

    def freeze_cube(self, name: str, *, etag: str = "") -> Cube:
        return Cube.from_proto(self._unary(self._vault.FreezeCube, _v.FreezeCubeRequest(name=name, etag=etag)))

    def unfreeze_cube(self, name: str, *, etag: str = "") -> Cube:
        return Cube.from_proto(self._unary(self._vault.UnfreezeCube, _v.UnfreezeCubeRequest(name=name, etag=etag)))

    def archive_cube(self, name: str, *, etag: str = "") -> Cube:
        return Cube.from_proto(self._unary(self._vault.ArchiveCube, _v.ArchiveCubeRequest(name=name, etag=etag)))

    def merge_cubes(self, space: str, names: Sequence[str], merged: CubeDraft | str) -> Cube:
        """A new cube from ``names`` (cubes of ``space``, ids or full names); they become MERGED.

        ``merged`` is the new cube's draft (its text, and optionally id, vector, tags...) or just its text.
        """
        parent = space_name(space)
        draft = CubeDraft(text=merged) if isinstance(merged, str) else merged
        create = draft.to_request(parent)
        request = _v.MergeCubesRequest(
            parent=parent,
            names=[n if CUBES in n else cube_name(parent, n) for n in names],
            cube_id=create.cube_id,
            cube=create.cube,
        )
        if create.HasField("vector"):
            request.vector.CopyFrom(create.vector)
        return Cube.from_proto(self._unary(self._vault.MergeCubes, request))

    def recall(
        self,
        space: str,
        query: str,
        token_budget: int,
        *,
        filter: str = "",
        max_items: int = 0,
        mode: str = "hybrid",
        model_fingerprint: str = "",
    ) -> RecallPlan:
        """The memories of ``space`` to put before a model for ``query``, within ``token_budget`` tokens.

        With ``model_fingerprint`` (``get_model().fingerprint`` for the server's
        model) activation cubes of that model come as caches (kind "activation")
        and its parametric cubes as adapters (kind "parametric"); any other
        activation cube comes as its source text, and other adapters are left out.
        """
        request = _s.RecallRequest(
            parent=space_name(space),
            query=query,
            token_budget=token_budget,
            filter=filter,
            max_items=max_items,
            mode=search_mode(mode),  # type: ignore[arg-type]
            model_fingerprint=model_fingerprint,
        )
        return RecallPlan.from_proto(self._unary(self._scheduler.Recall, request))
