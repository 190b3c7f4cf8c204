"""The search catalog: an in-memory copy of what hot paths need, keyed by vector label.

A search must not pay a DuckDB query (about a millisecond each from Python)
to turn hnswlib labels back into cubes, nor every call one to find the
caller's role in a space, so the vault keeps, per space, its roles and each
vector-bearing cube's serialized message, expire time and access narrowing. Like the vector indexes it is
derived: it is updated after each commit and before the caller is answered,
and loaded from DuckDB at start-up, so it never disagrees with an
acknowledged write.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc.store.filter import LABEL_KEYS, LABEL_PAIRS, AllOf, AnyOf, Not, Plan, Postings, label_pair
from memos_grpc.store.lexical import LexicalSearch
from memos_grpc.store.vectors import LabelArray


@dataclass(frozen=True)
class CubeAccess:
    """A cube's own narrowing of its space's policy (``MemCube.access``).

    Build it with ``CubeAccess.shared``: the catalog holds one for every vector-bearing cube, and most cubes of a
    space share theirs.
    """

    scope: int
    owner: str
    principals: frozenset[str]
    #: The cube's sensitivity labels, which the space's redaction rules match.
    sensitivity: frozenset[str] = frozenset()
    #: An archived cube is left out of search unless the caller asks for archived ones.
    archived: bool = False
    #: The id of the held license the cube was imported under ("" for none): a license an action may not use
    #: now leaves the cube out of that action's results (vault/licensing.py).
    license: str = ""

    @staticmethod
    def shared(
        scope: int,
        owner: str,
        principals: Iterable[str] = (),
        sensitivity: Iterable[str] = (),
        archived: bool = False,
        license: str = "",
    ) -> CubeAccess:
        """The one ``CubeAccess`` with these values that is alive, made if there is none.

        Each of the catalog's objects is memory (a frozenset is over 200 bytes, empty) and work for Python's
        cyclic garbage collector, whose full collections walk every tracked object while holding the GIL: at
        100,000 cubes, four objects a cube made such a collection pause the server for ~60 ms. Shared, the
        catalog's entries hold a handful of these between them.
        """
        people, labels = frozenset(principals), frozenset(sensitivity)
        key = (scope, owner, people, labels, archived, license)
        found = _SHARED_ACCESS.get(key)
        if found is None:
            found = _SHARED_ACCESS.setdefault(key, CubeAccess(scope, owner, people, labels, archived, license))
        return found


#: The access values alive, by value (``CubeAccess.shared``); one goes when no cube holds it any more.
_SHARED_ACCESS: weakref.WeakValueDictionary[tuple[object, ...], CubeAccess] = weakref.WeakValueDictionary()


#: The tag bytes of ``MemCube.license`` (field 40, length-delimited): only a cube whose bytes hold them is parsed
#: for its license when the catalog is loaded (parsing every cube would slow every start).
_LICENSE_TAG = b"\xc2\x02"


def license_of(cube_pb: bytes) -> str:
    """The held license id of a serialized cube ("" for none)."""
    if _LICENSE_TAG not in cube_pb:
        return ""
    cube = cube_pb2.MemCube.FromString(cube_pb)
    return cube.license.held_license.rpartition("/")[2]


#: The tag bytes of ``MemCube.tags`` (field 19) and ``MemCube.labels`` (field 36): a cube whose bytes hold
#: neither has no postings but its sensitivity labels, and is not parsed.
_TAGS_TAG = b"\x9a\x01"
_LABELS_TAG = b"\xa2\x02"
#: A posting: (field, value) as ``filter.Postings`` names it; value None for "any value".
PostingKey = tuple[str, str | tuple[str, str] | None]


def posting_keys(cube_pb: bytes, access: CubeAccess) -> tuple[PostingKey, ...]:
    """The postings a cube belongs to: its tags, sensitivity labels, label keys and label pairs."""
    keys: list[PostingKey] = [("sensitivity_labels", label) for label in access.sensitivity]
    if access.sensitivity:
        keys.append(("sensitivity_labels", None))
    if _TAGS_TAG in cube_pb or _LABELS_TAG in cube_pb:
        cube = cube_pb2.MemCube.FromString(cube_pb)
        keys.extend(("tags", tag) for tag in set(cube.tags))
        if cube.tags:
            keys.append(("tags", None))
        for key, value in cube.labels.items():
            keys += [(LABEL_KEYS, key), (LABEL_PAIRS, label_pair(key, value))]
        if cube.labels:
            keys.append((LABEL_KEYS, None))
    return tuple(keys)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """What the search catalog keeps of one vector-bearing cube: its serialized MemCube, expiry and access narrowing."""

    cube_pb: bytes
    #: Seconds since the epoch, or None when the cube never expires.
    expires_at: float | None
    access: CubeAccess
    #: The postings the cube is listed in, to take it out of them again.
    postings: tuple[PostingKey, ...] = ()


@dataclass(frozen=True, slots=True)
class CatalogRow:
    """A cube as ``SearchCatalog.put`` takes it: start-up repair reads it from DuckDB, writers from committed rows."""

    #: The cube's vector label, the catalog's key.
    vec_id: int
    #: The serialized MemCube the catalog hands to search.
    cube_pb: bytes
    #: None when the cube never expires.
    expire_time: datetime | None
    access: CubeAccess
    #: The text the lexical index takes: None for a cube without plaintext, or for a change that leaves the
    #: text as it was. The producer has it, so the cube is not parsed again for it.
    text: str | None


class SearchCatalog:
    """The vault's in-memory map from vector label to cube, with each space's roles, redaction rules and postings.

    One per vault (``VaultContext.catalog``), loaded from DuckDB by start-up repair and updated by writers after
    each commit and before they answer. It is derived state, never the record: DuckDB is. Safe to share between
    threads: changes and multi-step reads take its lock.
    """

    def __init__(self) -> None:
        self._spaces: dict[str, dict[int, CatalogEntry]] = {}
        self._roles: dict[str, dict[str, int]] = {}
        self._viewer_rules: dict[str, dict[str, int]] = {}
        #: Labels of archived cubes per space: a search that leaves them out must filter only where they exist.
        self._archived: dict[str, set[int]] = {}
        #: Held license id to the labels of its cubes, per space: a search leaves out only where they exist.
        self._licensed: dict[str, dict[str, set[int]]] = {}
        #: Per space, the labels of the cubes holding each tag, sensitivity label, label key and label pair: a
        #: filter over those fields is resolved here (``matching``) rather than by a DuckDB query per search.
        self._postings: dict[str, dict[PostingKey, set[int]]] = {}
        #: Labels of cubes with an expire time per space: the only ones a filtered search must check for expiry.
        self._expiring: dict[str, set[int]] = {}
        #: Per space, sorted read-only arrays of postings (and, under None, of every label), built when a filter
        #: needs them and dropped on any change to the space: ``matching_array`` then selects a filter's
        #: 10,000 matches with numpy, without copying a set or touching each label from Python.
        self._arrays: dict[str, dict[PostingKey | None, LabelArray]] = {}
        self._lock = threading.Lock()
        #: The lexical index, kept in step with the catalog (set by the vault).
        self.lexical: LexicalSearch | None = None

    def has_space(self, space_id: str) -> bool:
        return space_id in self._spaces

    def role_of(self, space_id: str, principal: str) -> int | None:
        """The principal's role in the space (0 for none), or None when the space does not exist."""
        roles = self._roles.get(space_id)
        return None if roles is None else roles.get(principal, 0)

    def add_space(self, space_id: str, roles: Mapping[str, int], viewer_rules: Mapping[str, int]) -> None:
        """Registers a space with its roles and its redaction rules for viewers (label to action)."""
        with self._lock:
            self._spaces.setdefault(space_id, {})
            self._roles[space_id] = dict(roles)
            self._viewer_rules[space_id] = dict(viewer_rules)

    def set_viewer_rules(self, space_id: str, viewer_rules: Mapping[str, int]) -> None:
        with self._lock:
            if space_id in self._viewer_rules:
                self._viewer_rules[space_id] = dict(viewer_rules)

    def viewer_rules(self, space_id: str) -> dict[str, int]:
        return self._viewer_rules.get(space_id, {})

    def set_roles(self, space_id: str, roles: Mapping[str, int]) -> None:
        with self._lock:
            if space_id in self._roles:
                self._roles[space_id] = dict(roles)

    def forget_principal(self, principal: str) -> None:
        with self._lock:
            for roles in self._roles.values():
                roles.pop(principal, None)

    def drop_space(self, space_id: str) -> None:
        with self._lock:
            self._spaces.pop(space_id, None)
            self._roles.pop(space_id, None)
            self._viewer_rules.pop(space_id, None)
            self._archived.pop(space_id, None)
            self._licensed.pop(space_id, None)
            self._postings.pop(space_id, None)
            self._expiring.pop(space_id, None)
            self._arrays.pop(space_id, None)
        if self.lexical is not None:
            self.lexical.drop_space(space_id)

    def put(self, space_id: str, entries: Iterable[CatalogRow]) -> None:
        # Postings are parsed outside the lock. Each row is taken apart at once so it dies young: start-up puts
        # every cube, and rows kept to the end of a batch survive into older GC generations and cost the collector
        # more (its passes are about half of the time the catalog takes to load).
        rows = [
            (row.vec_id, row.cube_pb, row.expire_time, row.access, row.text, posting_keys(row.cube_pb, row.access))
            for row in entries
        ]
        with self._lock:
            space = self._spaces.setdefault(space_id, {})
            archived = self._archived.setdefault(space_id, set())
            licensed = self._licensed.setdefault(space_id, {})
            postings = self._postings.setdefault(space_id, {})
            expiring = self._expiring.setdefault(space_id, set())
            self._arrays.pop(space_id, None)
            texts: list[tuple[int, str]] = []
            for vec_id, cube_pb, expire_time, access, text, keys in rows:
                expires_at = None if expire_time is None else expire_time.timestamp()
                previous = space.get(vec_id)
                if previous is not None:
                    if previous.access.license:
                        licensed.get(previous.access.license, set()).discard(vec_id)
                    _unpost(postings, previous.postings, vec_id)
                space[vec_id] = CatalogEntry(cube_pb, expires_at, access, keys)
                for key in keys:
                    postings.setdefault(key, set()).add(vec_id)
                if expires_at is None:
                    expiring.discard(vec_id)
                else:
                    expiring.add(vec_id)
                if access.license:
                    licensed.setdefault(access.license, set()).add(vec_id)
                if access.archived:
                    archived.add(vec_id)
                else:
                    archived.discard(vec_id)
                if text is not None:
                    texts.append((vec_id, text))
        if self.lexical is not None:
            for vec_id, text in texts:
                self.lexical.put(space_id, vec_id, text)

    def has_archived(self, space_id: str) -> bool:
        return bool(self._archived.get(space_id))

    def licensed_labels(self, space_id: str, license_ids: Iterable[str]) -> frozenset[int]:
        """The labels of the space's cubes imported under one of these held licenses."""
        licensed = self._licensed.get(space_id, {})
        with self._lock:
            return frozenset(label for license_id in license_ids for label in licensed.get(license_id, ()))

    def licensed_count(self, license_id: str) -> int:
        """The number of live vector-bearing cubes, in every space, imported under the held license."""
        return sum(len(licensed.get(license_id, ())) for licensed in list(self._licensed.values()))

    def remove(self, space_id: str, vec_ids: Iterable[int]) -> None:
        with self._lock:
            space = self._spaces.get(space_id)
            archived = self._archived.get(space_id, set())
            removed = list(vec_ids)
            licensed = self._licensed.get(space_id, {})
            postings = self._postings.get(space_id, {})
            expiring = self._expiring.get(space_id, set())
            self._arrays.pop(space_id, None)
            if space is not None:
                for vec_id in removed:
                    entry = space.pop(vec_id, None)
                    archived.discard(vec_id)
                    expiring.discard(vec_id)
                    if entry is not None:
                        if entry.access.license:
                            licensed.get(entry.access.license, set()).discard(vec_id)
                        _unpost(postings, entry.postings, vec_id)
        if self.lexical is not None:
            self.lexical.remove(removed)

    def live(
        self, space_id: str, vec_ids: Iterable[int], now: float, visible: Callable[[CubeAccess], bool]
    ) -> dict[int, bytes]:
        """The serialized cubes of those labels that exist, have not expired at ``now``, and are visible."""
        space = self._spaces.get(space_id, {})
        found: dict[int, bytes] = {}
        for vec_id in vec_ids:
            entry = space.get(vec_id)
            if entry is not None and (entry.expires_at is None or entry.expires_at > now) and visible(entry.access):
                found[vec_id] = entry.cube_pb
        return found

    def labels(self, space_id: str, now: float, allows: Callable[[CubeAccess], bool]) -> list[int]:
        """The labels of the space's cubes that have not expired at ``now`` and whose access ``allows``."""
        space = self._spaces.get(space_id, {})
        return [
            vec_id
            for vec_id, entry in list(space.items())
            if (entry.expires_at is None or entry.expires_at > now) and allows(entry.access)
        ]

    def size(self, space_id: str) -> int:
        return len(self._spaces.get(space_id, {}))

    def matching(self, space_id: str, plan: Plan) -> set[int]:
        """The labels of the space's cubes a filter's postings plan selects, expired ones included.

        The same cubes as the filter's SQL over the space's vector-bearing rows: each leaf is two-valued, so
        ``Not`` is the complement within the space.
        """
        with self._lock:
            return _evaluate(plan, self._postings.get(space_id, {}), self._spaces.get(space_id, {}))

    def matching_array(self, space_id: str, plan: Plan, now: float) -> LabelArray:
        """The labels ``matching`` selects less those expired at ``now``, as a sorted read-only array.

        For a search with no per-cube narrowing (visibility, archive, licenses): no label is looked at from
        Python but those of cubes with an expire time.
        """
        with self._lock:
            arrays = self._arrays.setdefault(space_id, {})
            postings = self._postings.get(space_id, {})
            space = self._spaces.get(space_id, {})
            found = _evaluate_array(plan, postings, space, arrays)
            expiring = list(self._expiring.get(space_id, ()))
        if not expiring or len(found) == 0:
            return found
        expired = [label for label in expiring if (entry := space.get(label)) is None or not _open(entry, now, None)]
        if not expired:
            return found
        return np.setdiff1d(found, np.asarray(expired, dtype=np.int64), assume_unique=True)

    def admitted(
        self, space_id: str, labels: set[int], now: float, allows: Callable[[CubeAccess], bool] | None
    ) -> set[int]:
        """``labels`` less those expired at ``now`` and, when given, those whose access ``allows`` refuses.

        Without ``allows`` only the space's cubes with an expire time are looked at.
        """
        space = self._spaces.get(space_id, {})
        if allows is not None:
            return {label for label in labels if (entry := space.get(label)) is not None and _open(entry, now, allows)}
        with self._lock:
            expiring = [label for label in self._expiring.get(space_id, ()) if label in labels]
        expired = {label for label in expiring if (entry := space.get(label)) is None or not _open(entry, now, None)}
        return labels - expired if expired else labels


def _open(entry: CatalogEntry, now: float, allows: Callable[[CubeAccess], bool] | None) -> bool:
    return (entry.expires_at is None or entry.expires_at > now) and (allows is None or allows(entry.access))


def _unpost(postings: dict[PostingKey, set[int]], keys: tuple[PostingKey, ...], vec_id: int) -> None:
    for key in keys:
        posted = postings.get(key)
        if posted is not None:
            posted.discard(vec_id)
            if not posted:
                del postings[key]


def _evaluate(plan: Plan, postings: dict[PostingKey, set[int]], space: dict[int, CatalogEntry]) -> set[int]:
    """A plan as set operations; each result is a new set the caller may keep."""
    if isinstance(plan, Postings):
        return set(postings.get((plan.field, plan.key), ()))
    if isinstance(plan, Not):
        return space.keys() - _evaluate(plan.operand, postings, space)
    if isinstance(plan, AnyOf):
        found: set[int] = set()
        for operand in plan.operands:
            found |= _evaluate(operand, postings, space)
        return found
    if not plan.operands:
        return set(space)
    # The narrowest operand first: each intersection is then at most its size.
    parts = sorted(plan.operands, key=lambda operand: _estimate(operand, postings, len(space)))
    result = _evaluate(parts[0], postings, space)
    for operand in parts[1:]:
        if not result:
            break
        result &= _evaluate(operand, postings, space)
    return result


def _evaluate_array(
    plan: Plan,
    postings: dict[PostingKey, set[int]],
    space: dict[int, CatalogEntry],
    arrays: dict[PostingKey | None, LabelArray],
) -> LabelArray:
    """A plan as operations on sorted arrays; ``arrays`` caches each posting's (and the space's) array."""
    if isinstance(plan, Postings):
        return _array(arrays, (plan.field, plan.key), postings.get((plan.field, plan.key), ()))
    if isinstance(plan, Not):
        every = _array(arrays, None, space.keys())
        return np.setdiff1d(every, _evaluate_array(plan.operand, postings, space, arrays), assume_unique=True)
    if isinstance(plan, AnyOf):
        parts = [_evaluate_array(operand, postings, space, arrays) for operand in plan.operands]
        return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
    if not plan.operands:
        return _array(arrays, None, space.keys())
    ordered = sorted(plan.operands, key=lambda operand: _estimate(operand, postings, len(space)))
    result = _evaluate_array(ordered[0], postings, space, arrays)
    for operand in ordered[1:]:
        if len(result) == 0:
            break
        result = np.intersect1d(result, _evaluate_array(operand, postings, space, arrays), assume_unique=True)
    return result


def _array(arrays: dict[PostingKey | None, LabelArray], key: PostingKey | None, labels: Iterable[int]) -> LabelArray:
    """The cached sorted array of ``labels`` under ``key``, built on first use; read-only, as it is shared."""
    found = arrays.get(key)
    if found is None:
        found = np.sort(np.fromiter(labels, dtype=np.int64))
        found.flags.writeable = False
        arrays[key] = found
    return found


def _estimate(plan: Plan, postings: dict[PostingKey, set[int]], size: int) -> int:
    """An upper bound of how many labels a plan selects, to order an intersection."""
    if isinstance(plan, Postings):
        return len(postings.get((plan.field, plan.key), ()))
    if isinstance(plan, AllOf):
        return min((_estimate(operand, postings, size) for operand in plan.operands), default=size)
    if isinstance(plan, AnyOf):
        return min(size, sum(_estimate(operand, postings, size) for operand in plan.operands))
    return size


def viewer_rules(space: space_pb2.Space) -> dict[str, int]:
    """A space's redaction rules for viewers: sensitivity label to action (withhold beats redact)."""
    return redaction_rules(space, space_pb2.RedactionRule.AUDIENCE_VIEWERS)


def redaction_rules(space: space_pb2.Space, audience: int) -> dict[str, int]:
    """A space's redaction rules for one audience: sensitivity label to action (withhold beats redact)."""
    rules: dict[str, int] = {}
    for rule in space.redaction_rules:
        if rule.audience == audience:
            current = rules.get(rule.sensitivity_label, 0)
            rules[rule.sensitivity_label] = max(current, int(rule.action), key=_severity)
    return rules


def _severity(action: int) -> int:
    if action == space_pb2.RedactionRule.ACTION_WITHHOLD:
        return 2
    return 1 if action == space_pb2.RedactionRule.ACTION_REDACT_TEXT else 0
