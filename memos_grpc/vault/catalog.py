"""The search catalog: an in-memory copy of what hot paths need, keyed by vector label.

A search must not pay a DuckDB query (about a millisecond each from Python)
to turn hnswlib labels back into cubes, nor every call one to find a space's
owner, so the vault keeps, per space, its owner and each vector-bearing
cube's serialized message and expire time. Like the vector indexes it is
derived: it is updated after each commit and before the caller is answered,
and loaded from DuckDB at start-up, so it never disagrees with an
acknowledged write.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CatalogEntry:
    cube_pb: bytes
    #: Seconds since the epoch, or None when the cube never expires.
    expires_at: float | None


class SearchCatalog:
    def __init__(self) -> None:
        self._spaces: dict[str, dict[int, CatalogEntry]] = {}
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()

    def has_space(self, space_id: str) -> bool:
        return space_id in self._spaces

    def owner_of(self, space_id: str) -> str | None:
        """The owning principal's name, "" for none, or None when the space does not exist."""
        return self._owners.get(space_id)

    def add_space(self, space_id: str, owner: str) -> None:
        with self._lock:
            self._spaces.setdefault(space_id, {})
            self._owners[space_id] = owner

    def drop_space(self, space_id: str) -> None:
        with self._lock:
            self._spaces.pop(space_id, None)
            self._owners.pop(space_id, None)

    def put(self, space_id: str, entries: Iterable[tuple[int, bytes, datetime | None]]) -> None:
        with self._lock:
            space = self._spaces.setdefault(space_id, {})
            for vec_id, cube_pb, expire_time in entries:
                space[vec_id] = CatalogEntry(cube_pb, None if expire_time is None else expire_time.timestamp())

    def remove(self, space_id: str, vec_ids: Iterable[int]) -> None:
        with self._lock:
            space = self._spaces.get(space_id)
            if space is not None:
                for vec_id in vec_ids:
                    space.pop(vec_id, None)

    def live(self, space_id: str, vec_ids: Iterable[int], now: float) -> dict[int, bytes]:
        """The serialized cubes of those labels that exist and have not expired at ``now``."""
        space = self._spaces.get(space_id, {})
        found: dict[int, bytes] = {}
        for vec_id in vec_ids:
            entry = space.get(vec_id)
            if entry is not None and (entry.expires_at is None or entry.expires_at > now):
                found[vec_id] = entry.cube_pb
        return found

    def size(self, space_id: str) -> int:
        return len(self._spaces.get(space_id, {}))
