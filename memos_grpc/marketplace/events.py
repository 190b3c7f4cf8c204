"""Subscribe: the marketplace's publish, yank and revoke entries as a stream of events, in log order.

A follower reads the log from an index on, but only as far as the latest published checkpoint covers it, and
waits on the node (``MarketplaceNode.wait_change``) for the next one. Each entry becomes an event with the
release as it is now; the request's criteria (types, tags, listings, a semantic query) must all match. Grants are
never events: who licensed what is not broadcast. The semantics are in docs/marketplace.md ("Subscribe").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as market_pb2
from memos_grpc.errors import FailedPreconditionError, InvalidArgumentError
from memos_grpc.marketplace import entries
from memos_grpc.marketplace.entries import EntryError
from memos_grpc.marketplace.listings import listing_text
from memos_grpc.marketplace.node import MarketplaceNode
from memos_grpc.store import market_licenses, market_listings, market_releases
from memos_grpc.store.database import Connection
from memos_grpc.vault.context import VaultContext

Event = market_pb2.MarketplaceEvent
EventType = market_pb2.EventType
_TYPES: Final = {
    "publish": EventType.EVENT_TYPE_PUBLISH,
    "yank": EventType.EVENT_TYPE_YANK,
    "revoke": EventType.EVENT_TYPE_REVOKE,
}
MAX_CRITERIA: Final = 64
MAX_QUERY_CHARS: Final = 10_000
DEFAULT_MIN_SCORE: Final = 0.5
#: Entries read from the log at a time while catching up.
_BATCH: Final = 256
#: The longest a follower sleeps between looks at whether its client is still there (a departing client also
#: wakes it at once, through the RPC's done callback).
_IDLE_SECONDS: Final = 5.0
_LISTING_NAME: Final = re.compile(r"listings/([a-z][a-z0-9-]{0,62})")


def _invalid(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, reason=reasons.INVALID_SUBSCRIPTION)


@dataclass(frozen=True)
class Criteria:
    """What a subscriber asked for; an empty set matches every event."""

    types: frozenset[int]
    tags: frozenset[str]
    listing_ids: frozenset[str]
    query: str
    min_score: float
    start_index: int | None

    @property
    def needs_release(self) -> bool:
        return bool(self.tags or self.listing_ids or self.query)


def criteria_of(request: market_pb2.SubscribeRequest, has_embedder: bool) -> Criteria:
    """The request's criteria, checked; INVALID_SUBSCRIPTION, INVALID_ENUM, INVALID_NAME or, for a query on a
    server without an embedder, FAILED_PRECONDITION SUBSCRIPTION_QUERY_UNSUPPORTED."""
    known = set(_TYPES.values())
    types: set[int] = set()
    for value in request.types:
        if value == EventType.EVENT_TYPE_UNSPECIFIED:
            types = set()  # unspecified leaves the types unrestricted
            break
        if value not in known:
            raise InvalidArgumentError(f"types holds {value}, which is no EventType", reason=reasons.INVALID_ENUM)
        types.add(value)
    if len(request.tags) > MAX_CRITERIA or len(request.listings) > MAX_CRITERIA:
        raise _invalid(f"at most {MAX_CRITERIA} tags and {MAX_CRITERIA} listings")
    listing_ids = set()
    for name in request.listings:
        match = _LISTING_NAME.fullmatch(name)
        if match is None:
            raise InvalidArgumentError(
                f"listings holds {name[:120]!r}, which is not a listing name listings/{{listing}}",
                reason=reasons.INVALID_NAME,
            )
        listing_ids.add(match.group(1))
    if len(request.query) > MAX_QUERY_CHARS:
        raise _invalid(f"query is {len(request.query)} characters; at most {MAX_QUERY_CHARS}")
    query = request.query.strip()
    if request.min_score and not query:
        raise _invalid("min_score applies to a query: set query, or leave min_score 0")
    if not 0.0 <= request.min_score <= 1.0:  # NaN fails this too
        raise _invalid(f"min_score {request.min_score} is outside [0, 1]")
    if request.HasField("start_index") and not 0 <= request.start_index <= entries.MAX_LOG_INDEX:
        raise _invalid(f"start_index {request.start_index} is outside 0..{entries.MAX_LOG_INDEX}")
    if query and not has_embedder:
        raise FailedPreconditionError(
            "this server has no embedder (embedder = none), so it cannot score listings against a query: "
            "subscribe by tags or listings instead",
            reason=reasons.SUBSCRIPTION_QUERY_UNSUPPORTED,
        )
    return Criteria(
        frozenset(types),
        frozenset(request.tags),
        frozenset(listing_ids),
        query,
        request.min_score or DEFAULT_MIN_SCORE,
        request.start_index if request.HasField("start_index") else None,
    )


@dataclass(frozen=True)
class _Subject:
    """What an entry concerns, as the store holds it now."""

    release: market_pb2.Release
    listing_id: str
    listing: market_pb2.Listing | None
    listing_vector: bytes | None
    license: str = ""
    revocation: market_pb2.Revocation | None = None


class EventStream:
    """One subscriber's stream over one marketplace node."""

    def __init__(self, context: VaultContext, node: MarketplaceNode, criteria: Criteria) -> None:
        self._context = context
        self._node = node
        self._criteria = criteria
        self._query_vector = (
            context.embedder.embed([criteria.query])[0] if criteria.query else np.zeros(0, dtype=np.float32)
        )
        self._scores: dict[tuple[str, str], float] = {}
        #: The first index this stream delivers from: the request's, or the log's end when the call started.
        self.start = node.log.size() if criteria.start_index is None else criteria.start_index

    def follow(self, is_active: Callable[[], bool]) -> Iterator[Event]:
        """Events from the start index on (or from the log's end now), then as they are published."""
        next_index = self.start
        while is_active() and not self._node.stopped:
            seen = self._node.changes()
            published = self._node.published()
            size = 0 if published is None else published.checkpoint.size
            if next_index >= size:
                self._node.wait_change(seen, _IDLE_SECONDS)
                continue
            batch = self._node.log.entries(next_index, min(size, next_index + _BATCH))
            for offset, data in enumerate(batch):
                event = self._event(next_index + offset, data, size)
                if event is not None:
                    yield event
                if not is_active():
                    return
            next_index += len(batch)

    # -- one entry ---------------------------------------------------------------------------------------

    def _event(self, index: int, data: bytes, size: int) -> Event | None:
        try:
            entry = entries.parse(data)
        except EntryError:  # the log holds only entries this node wrote; another version is not an event
            return None
        kind = _TYPES.get(entry.type)
        if kind is None or (self._criteria.types and kind not in self._criteria.types):
            return None
        subject = self._subject_of(entry, index)
        if subject is None and self._criteria.needs_release:
            return None  # nothing known to match against: an entry whose row was never written
        event = Event(log_index=index, type=kind, entry=data, tree_size=size, ref_index=entry.ref or 0)
        if subject is None:
            return event
        if self._criteria.listing_ids and subject.listing_id not in self._criteria.listing_ids:
            return None
        if self._criteria.tags and (subject.listing is None or not self._criteria.tags & set(subject.listing.tags)):
            return None
        if self._criteria.query:
            score = self._score(subject)
            if score < self._criteria.min_score:
                return None
            event.score = score
        event.release.CopyFrom(subject.release)
        if subject.revocation is not None:
            event.license = subject.license
            event.revocation.CopyFrom(subject.revocation)
        return event

    def _subject_of(self, entry: entries.Entry, index: int) -> _Subject | None:
        """The release (and license) an entry acts on, or None when it has no row.

        An entry commits with its row (``MarketplaceNode.logged``), so a published entry has one; only a log
        written by an older release, which appended first and wrote the row after, may hold an entry a crash left
        without its row.
        """
        with self._context.database.read() as cursor:
            return self._lookup(cursor, entry, index)

    def _lookup(self, cursor: Connection, entry: entries.Entry, index: int) -> _Subject | None:
        license, revocation = "", None
        if entry.type == "revoke":
            # A revoke names the grant entry it acts on (``entries.parse`` requires the ref).
            revoked = None if entry.ref is None else market_licenses.revoked_license_granted_at(cursor, entry.ref)
            if revoked is None:
                return None
            license, revocation = f"licenses/{revoked.license_id}", revoked.license.revocation
            release = market_releases.release_by_id(cursor, revoked.listing_id, revoked.release_id)
            listing_id = revoked.listing_id
        else:
            # A publish row carries its own index; a yank names the publish entry it acts on.
            ref = index if entry.type == "publish" else entry.ref
            published = None if ref is None else market_releases.release_published_at(cursor, ref)
            release = None if published is None else published.release
            listing_id = "" if published is None else published.listing_id
        if release is None:
            return None
        stored = market_listings.stored_listing(cursor, listing_id)
        listing = stored.listing if stored is not None else None
        vector = stored.embedding if stored is not None else None
        return _Subject(release, listing_id, listing, vector, license, revocation)

    def _score(self, subject: _Subject) -> float:
        """Cosine similarity of the query and the listing's text (its stored embedding when it has one)."""
        if subject.listing is None:
            return 0.0
        key = (subject.listing_id, subject.listing.etag)
        if key not in self._scores:
            vector = None
            if subject.listing_vector is not None and len(subject.listing_vector) == 4 * self._query_vector.size:
                vector = np.frombuffer(subject.listing_vector, dtype="<f4").astype(np.float32)
            if vector is None:
                vector = self._context.embedder.embed([listing_text(subject.listing)])[0]
            norms = float(np.linalg.norm(vector) * np.linalg.norm(self._query_vector))
            self._scores[key] = float(np.dot(vector, self._query_vector) / norms) if norms else 0.0
        return self._scores[key]
