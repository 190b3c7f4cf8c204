"""Dense search over a space: hnswlib for the nearest neighbours, the search catalog for filters.

A filter is resolved first: over tags, sensitivity labels and labels from the
search catalog's postings, in memory; over other fields by a DuckDB query.
When it matches few cubes (at most ``exact_search_max_candidates``) their
vectors are scored exactly, so a selective filter never starves the result;
so are up to eight times as many when a search under the same filter kept
their vectors as one block; otherwise an unfiltered hnswlib search deep enough for the matches' density
near the query is filtered afterwards, and when none are near, or too few
are found, they are scored exactly or, past eight times that bound, searched
by hnswlib under the filter with a raised ef (``Search._dense``). Labels
become cubes through the search catalog, which the writer keeps in step with DuckDB, so a cube that is
deleted or expired is never returned even if an index still holds it. A
cube redacted for the caller is never a candidate, in any mode: it has no
text the caller may see to be ranked on (docs/security.md). A dense search
holds a filter's matches as a sorted numpy array of labels: with no per-cube
narrowing they come from the postings without a Python step per match, and
only the few cubes returned are parsed and checked again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2, vault_service_pb2
from memos_grpc.embedding.embedder import FloatArray
from memos_grpc.errors import NotFoundError
from memos_grpc.governance.caller import Caller
from memos_grpc.store.catalog import CubeAccess
from memos_grpc.store.filter import CompiledFilter, compile_filter
from memos_grpc.store.names import parse_space_name, space_name
from memos_grpc.store.vectors import LabelArray, SpaceVectors
from memos_grpc.store.visibility import CubeVisibility, held_license_id
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.licensing import SEARCH
from memos_grpc.vault.validation import check_text, check_vector, invalid

_MODES = frozenset(vault_service_pb2.SearchMode.values()) - {vault_service_pb2.SEARCH_MODE_UNSPECIFIED}
#: The fewest candidates each ranking contributes to a fusion, however small top_k is.
_MIN_FUSION_DEPTH = 50
#: Neighbours of the probe that estimates how densely a filter's matches lie around the query.
_PROBE = 64
#: How many times ``k`` matches an unfiltered search under a filter is deep enough to expect: a margin for
#: matches that cluster away from the query, and for the graph's misses.
_OVERSAMPLING = 4
#: The deepest unfiltered search under a filter; a sparser filter goes straight to the exact or filtered search.
_MAX_UNFILTERED_DEPTH = 2048
#: Matches a search scores exactly when a deep unfiltered search found too few of them, as a multiple of
#: ``exact_search_max_candidates``; beyond, hnswlib's filtered search answers.
_EXACT_FALLBACK_FACTOR = 8
#: The highest ef of a filtered hnswlib search.
_MAX_FILTERED_EF = 1024


@dataclass(frozen=True)
class SearchQuery:
    """What a search asks, in the domain's terms: a space, a text or a vector, a filter, how many and how.

    ``from_request`` reads and checks SearchCubes' message; Recall builds one directly.
    """

    space_id: str
    text: str = ""
    #: The query's vector as given; None to embed ``text`` (dense and hybrid modes).
    vector: tuple[float, ...] | None = None
    filter: str = ""
    #: Results wanted; 0 for the server's default (``default_top_k``), at most ``max_top_k``.
    top_k: int = 0
    mode: vault_service_pb2.SearchMode = vault_service_pb2.SEARCH_MODE_DENSE
    include_archived: bool = False

    @classmethod
    def from_request(cls, request: vault_service_pb2.SearchCubesRequest) -> SearchQuery:
        """The query a SearchCubesRequest asks (INVALID_ARGUMENT for a message no search can answer)."""
        space_id = parse_space_name(request.parent, "parent")
        if request.top_k < 0:
            raise invalid(f"top_k must not be negative (got {request.top_k})", reasons.INVALID_TOP_K)
        mode = request.mode or vault_service_pb2.SEARCH_MODE_DENSE
        if mode not in _MODES:
            raise invalid(f"mode {request.mode} is not a known SearchMode", reasons.INVALID_ENUM)
        which = request.WhichOneof("query")
        if mode != vault_service_pb2.SEARCH_MODE_DENSE and which != "text":
            raise invalid("lexical and hybrid search need a text query", reasons.TEXT_QUERY_REQUIRED)
        if which is None:
            raise invalid("set a query: text or vector", reasons.MISSING_QUERY)
        return cls(
            space_id=space_id,
            text=request.text,
            vector=tuple(request.vector.values) if which == "vector" else None,
            filter=request.filter,
            top_k=request.top_k,
            mode=mode,
            include_archived=request.include_archived,
        )


@dataclass(frozen=True)
class Hit:
    """One search result: the cube as the caller may see it, and its score (higher is better, on the mode's scale)."""

    cube: cube_pb2.MemCube
    score: float


class Search:
    """SearchCubes over one space: the cubes the caller may see that best match a query, dense, lexical or hybrid.

    Reads only (hnswlib and lexical indexes, the search catalog, DuckDB for filters the catalog cannot resolve),
    apart from counting held-license uses; safe from any number of RPC threads. Recall builds on it.
    """

    def __init__(self, context: VaultContext) -> None:
        self._context = context

    def query_vector(self, query: SearchQuery) -> FloatArray:
        """The query's vector as given (checked against the space's dimension), or its text embedded."""
        if query.vector is not None:
            return check_vector(query.vector, self._context.dimension, "vector")
        check_text(query.text, self._context.settings, "text")
        vector: FloatArray = self._context.embedder.embed([query.text])[0]
        return vector

    def search(self, query: SearchQuery, viewer: Caller, action: str = SEARCH, count: bool = True) -> list[Hit]:
        """The nearest cubes ``viewer`` may see and ``action`` may use, best first.

        Cubes of a held license that ``action`` may not use now are left out before ranking; with ``count``, one
        use of each license whose cubes are returned is counted (a license refused at that moment, its limit just
        reached by a concurrent call, has its cubes dropped from the answer). Recall counts only what it returns.
        """
        hits = self._search(query, viewer, action)
        if not count:
            return hits
        return self.count_uses(hits, action, viewer)

    def count_uses(self, hits: list[Hit], action: str, viewer: Caller) -> list[Hit]:
        """Counts one ``action`` use of each held license among ``hits``; drops the hits of any refused."""
        licenses = {held_license_id(h.cube) for h in hits} - {""}
        if not licenses:
            return hits
        refused = self._context.licenses.use(action, licenses, viewer.principal)
        return [h for h in hits if held_license_id(h.cube) not in refused] if refused else hits

    def _search(self, request: SearchQuery, viewer: Caller, action: str) -> list[Hit]:
        settings = self._context.settings
        space_id = request.space_id
        if request.top_k < 0:
            raise invalid(f"top_k must not be negative (got {request.top_k})", reasons.INVALID_TOP_K)
        top_k = min(request.top_k or settings.default_top_k, settings.max_top_k)
        compiled = compile_filter(request.filter, max_length=settings.max_filter_length)
        mode = request.mode
        if mode not in _MODES:
            raise invalid(f"mode {mode} is not a known SearchMode", reasons.INVALID_ENUM)
        if mode != vault_service_pb2.SEARCH_MODE_DENSE and request.vector is not None:
            raise invalid("lexical and hybrid search need a text query", reasons.TEXT_QUERY_REQUIRED)
        query = self.query_vector(request) if mode != vault_service_pb2.SEARCH_MODE_LEXICAL else None
        if query is None:
            check_text(request.text, settings, "text")
        now = self._context.clock()
        if not self._context.catalog.has_space(space_id):
            raise NotFoundError(f"space {space_name(space_id)} does not exist", reason=reasons.SPACE_NOT_FOUND)
        index = self._context.indexes.get(space_id)
        visibility = CubeVisibility(viewer, self._context.catalog, space_id)
        # Ranked on what the caller may see or not at all: a cube redacted for it is left out (docs/security.md).
        allows: Callable[[CubeAccess], bool] = visibility.ranks
        if not request.include_archived:
            allows = _unarchived(visibility.ranks)
        blocked = self._context.licenses.blocked(action)
        # The labels of cubes whose license ``action`` may not use now: left out before ranking.
        excluded = self._context.catalog.licensed_labels(space_id, blocked) if blocked else frozenset()
        if excluded:
            allows = _licensed(allows, blocked)
        # The labels a filter or a narrowing leaves to rank, sorted; None for every label of the space.
        candidates: LabelArray | None = None
        if request.filter.strip():
            # Cubes this viewer may not rank, archived ones and excluded licenses need a look at each match.
            narrowed = (
                visibility.narrows
                or bool(excluded)
                or (not request.include_archived and self._context.catalog.has_archived(space_id))
            )
            if compiled.plan is not None and not narrowed:
                candidates = self._context.catalog.matching_array(space_id, compiled.plan, now.timestamp())
            elif compiled.plan is not None:
                matched = self._context.catalog.matching(space_id, compiled.plan)
                candidates = _sorted(self._context.catalog.admitted(space_id, matched, now.timestamp(), allows))
            else:
                found = self._sql_candidates(space_id, compiled, visibility, request.include_archived, now)
                candidates = _sorted(found - excluded)
        elif visibility.narrows or (not request.include_archived and self._context.catalog.has_archived(space_id)):
            # Cubes this viewer may not see or rank (or archived ones) must not take places in its top k, nor set
            # the best score the others are scaled by.
            candidates = _sorted(self._context.catalog.labels(space_id, now.timestamp(), allows))
        # With no other narrowing the excluded labels are filtered out inside the index search itself (hnswlib's
        # filter, BM25's result list), rather than by listing every other label of the space as a candidate.
        if mode != vault_service_pb2.SEARCH_MODE_DENSE:
            allowed = None if candidates is None else set(candidates.tolist())
            return self._ranked(request.text, query, index, space_id, allowed, top_k, visibility, allows, excluded)
        assert query is not None
        scored = self._dense(index, query, space_id, candidates, top_k, excluded)
        hits = self._hits(space_id, scored, now.timestamp(), visibility, allows)
        if len(hits) < len(scored) and candidates is None:
            # Some neighbours had expired: ask the index for more, once, wide enough to cover them.
            wider = self._dense(index, query, space_id, None, top_k * 4, excluded)
            hits = self._hits(space_id, wider, now.timestamp(), visibility, allows, top_k)
        return hits

    def _sql_candidates(
        self,
        space_id: str,
        compiled: CompiledFilter,
        visibility: CubeVisibility,
        include_archived: bool,
        now: datetime,
    ) -> set[int]:
        """The labels a filter over fields without postings selects, by a DuckDB query."""
        return self._context.cube_store.matching_labels(space_id, compiled, visibility, now, archived=include_archived)

    def _dense(
        self,
        index: SpaceVectors,
        query: FloatArray,
        space_id: str,
        candidates: LabelArray | set[int] | None,
        k: int,
        excluded: frozenset[int] = frozenset(),
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest labels (among ``candidates``, when given; never ``excluded`` ones) and their cosine.

        Among candidates, by their share of the space: few are scored exactly, and so are up to eight times as
        many whose rows a search under the same posting kept as one block (``SpaceIndex.scores_from_block``);
        more are taken from an
        unfiltered search deep enough to hold ``k`` of them several times over, by their density among the
        query's nearest 64 or their share of the space, whichever is higher (hnswlib's own filter calls back into
        Python for every node it visits, and at a given ef finds fewer of a small share); when none lie among the
        nearest 64, or the deep search holds fewer than ``k``, up to eight times the exact bound are scored
        exactly, and beyond that hnswlib searches under the filter with ef raised by the share. A backend that
        filters natively (PostgreSQL) gets the deep search by the share alone, then its own filtered plan.
        """
        # The catalog counts live vectors; the index also counts deleted ones.
        size = self._context.catalog.size(space_id)
        if candidates is None:
            if excluded:
                return index.search(query, min(k, size - len(excluded)), lambda label: label not in excluded)
            return index.search(query, min(k, size))
        if isinstance(candidates, set):
            candidates = _sorted(candidates)
        exact_bound = self._context.settings.exact_search_max_candidates
        if len(candidates) <= exact_bound:
            return index.nearest_of(query, candidates, k)
        k = min(k, len(candidates))
        share = len(candidates) / max(size, len(candidates))
        if index.filters_natively:
            # The database's own plan for many labels (scoring them all, or walking the graph under them) costs
            # several unfiltered searches; one unfiltered search deep enough for their share answers first when it
            # holds k of them. A probe would cost a round trip of its own.
            kept = _kept_from_deep(index, query, candidates, k, share)
            return kept if kept is not None else index.nearest_of(query, candidates, k)
        if len(candidates) <= exact_bound * _EXACT_FALLBACK_FACTOR and index.scores_from_block(candidates):
            # Scored before and kept as one block: exact, and cheaper than the probe and deep search below.
            return index.nearest_of(query, candidates, k)
        # A probe at the index's own ef tells whether matches lie near the query at all, and how densely: a filter
        # that follows the content (a project's label) has none near most queries, and a deep search would be
        # wasted; near the query its matches may be far denser than their share of the space.
        probe = index.search(query, min(_PROBE, size))
        near = float(_among(probe, candidates).mean()) if probe else 0.0
        if near > 0:
            kept = _kept_from_deep(index, query, candidates, k, max(share, near))
            if kept is not None:
                return kept
        if len(candidates) <= exact_bound * _EXACT_FALLBACK_FACTOR:
            # Matches away from the query (a filter that follows the content, such as a project's label): hnswlib's
            # filtered search needs an ef near 1024 to reach them reliably, slower than scoring them all.
            return index.nearest_of(query, candidates, k)
        # hnswlib searches with ef = max(ef, k): asking for ``ef`` neighbours raises it for this call alone.
        ef = min(max(self._context.settings.hnsw_ef_search, k) * math.ceil(1 / math.sqrt(share)), _MAX_FILTERED_EF)
        # hnswlib calls the filter for every node it visits: a set answers faster than the array.
        allowed = set(candidates.tolist())
        return index.search(query, min(max(ef, k), len(candidates)), allowed.__contains__)[:k]

    def _ranked(
        self,
        text: str,
        query: FloatArray | None,
        index: SpaceVectors,
        space_id: str,
        candidates: set[int] | None,
        top_k: int,
        visibility: CubeVisibility,
        allows: Callable[[CubeAccess], bool],
        excluded: frozenset[int] = frozenset(),
    ) -> list[Hit]:
        """Lexical (``query`` None) or hybrid search: BM25, fused with the dense ranking by scaled scores."""
        catalog = self._context.catalog
        assert catalog.lexical is not None
        width = max(top_k * 4, _MIN_FUSION_DEPTH)
        # Under a filter or a visibility narrowing every match may be needed to fill the top k.
        limit = width if candidates is None else max(width, catalog.size(space_id))
        # Excluded labels would take places of the first ``width``: ask for that many more.
        lexical = catalog.lexical.search(space_id, text, limit + len(excluded))
        if candidates is not None:
            lexical = [(label, score) for label, score in lexical if label in candidates]
        elif excluded:
            lexical = [(label, score) for label, score in lexical if label not in excluded]
        now = self._context.clock().timestamp()
        if query is None:
            hits = self._hits(space_id, lexical, now, visibility, allows, top_k)
            # Raw BM25 scores have no fixed range; scaled to the best hit they read like the other modes' and
            # feed Recall's relevance part directly.
            best = max((h.score for h in hits), default=0.0)
            return [Hit(h.cube, h.score / best if best > 0 else 0.0) for h in hits]
        dense = self._dense(index, query, space_id, candidates, width, excluded)
        order = fuse(dense, lexical[:width], self._context.settings.hybrid_dense_weight)
        return self._hits(space_id, order, now, visibility, allows, top_k)

    def _hits(
        self,
        space_id: str,
        scored: list[tuple[int, float]],
        now: float,
        visibility: CubeVisibility,
        allows: Callable[[CubeAccess], bool],
        limit: int | None = None,
    ) -> list[Hit]:
        """Scored labels to cubes, dropping any deleted or expired since the index saw them, or not allowed.

        At most ``limit`` hits: a fused list holds several times more labels than are asked for, and
        parsing a cube costs more than everything else done per label.
        """
        live = self._context.catalog.live(space_id, (label for label, _ in scored), now, allows)
        hits: list[Hit] = []
        for label, score in scored:
            if label in live:
                hits.append(Hit(visibility.shown(cube_pb2.MemCube.FromString(live[label])), score))
                if len(hits) == limit:
                    break
        return hits


Scored = list[tuple[int, float]]


def fuse(dense: Scored, lexical: Scored, dense_weight: float) -> Scored:
    """Hybrid ranking: a weighted sum of each list's scores divided by the list's best, best first.

    Scores rather than ranks (reciprocal rank fusion) are fused because how far ahead a hit is
    matters: on LoCoMo (docs/retrieval.md) this beats reciprocal rank fusion by several points of
    R@5. Dividing by the best, rather than stretching a list between its worst and best, keeps two
    near-equal hits near-equal when a space has only a few cubes. A negative cosine counts as 0, and
    so does a cube missing from one list.
    """
    fused: dict[int, float] = {}
    for ranking, weight in ((dense, dense_weight), (lexical, 1.0 - dense_weight)):
        best = max((score for _, score in ranking), default=0.0)
        if best <= 0:
            continue
        for label, score in ranking:
            fused[label] = fused.get(label, 0.0) + weight * max(score, 0.0) / best
    return sorted(fused.items(), key=lambda item: -item[1])


def _sorted(labels: Iterable[int]) -> LabelArray:
    """Labels as the sorted array a dense search takes."""
    return np.sort(np.fromiter(labels, dtype=np.int64))


def _kept_from_deep(
    index: SpaceVectors, query: FloatArray, candidates: LabelArray, k: int, density: float
) -> list[tuple[int, float]] | None:
    """The ``k`` nearest candidates from an unfiltered search deep enough to hold ``k`` of them several times
    over at ``density``, or None when that depth is too deep or the search holds fewer than ``k``."""
    depth = max(math.ceil(k / density * _OVERSAMPLING), 2 * _PROBE)
    if depth > _MAX_UNFILTERED_DEPTH:
        return None
    deep = index.search(query, depth)
    kept = [hit for hit, match in zip(deep, _among(deep, candidates), strict=True) if match]
    return kept[:k] if len(kept) >= k else None


def _among(scored: Scored, candidates: LabelArray) -> npt.NDArray[np.bool_]:
    """Which of the scored labels are among the sorted ``candidates``."""
    labels = np.fromiter((label for label, _ in scored), dtype=np.int64, count=len(scored))
    if len(candidates) == 0:
        return np.zeros(len(labels), dtype=np.bool_)
    at = np.minimum(np.searchsorted(candidates, labels), len(candidates) - 1)
    found: npt.NDArray[np.bool_] = candidates[at] == labels
    return found


def _unarchived(allows: Callable[[CubeAccess], bool]) -> Callable[[CubeAccess], bool]:
    return lambda access: not access.archived and allows(access)


def _licensed(allows: Callable[[CubeAccess], bool], blocked: frozenset[str]) -> Callable[[CubeAccess], bool]:
    return lambda access: access.license not in blocked and allows(access)
