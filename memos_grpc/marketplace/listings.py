"""Marketplace listings: create, get, list (AIP-158 paging, AIP-160 filters), update and search.

A listing's row keeps its whole ``Listing`` message beside copies of the fields filters read (schema v11,
``market_listings``, read and written by ``memos_grpc.store.market_listings``). The fields a release sets
(``publisher_keys``, ``latest_release``, ``license``...) are written by ``memos_grpc.marketplace.releases`` in the
transaction that writes the release, through ``Listings.store``. Listings are few (a marketplace holds thousands,
not millions), so ``SearchListings`` scores every listing a filter admits in memory: cosine similarity with the
server's embedder (dense), BM25 over the listing's text (lexical), or both fused as ``SearchCubes`` fuses them
(hybrid). A server without an embedder (``embedder = none``) ranks every mode lexically.
"""

from __future__ import annotations

import builtins
import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np
from google.protobuf import field_mask_pb2

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc._proto.memos.v1 import vault_service_pb2
from memos_grpc.errors import (
    AbortedError,
    AlreadyExistsError,
    EtagMismatchError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from memos_grpc.governance.caller import Caller
from memos_grpc.store import market_listings
from memos_grpc.store.database import Connection
from memos_grpc.store.filter import compile_filter
from memos_grpc.store.market_listings import LISTING_FIELDS
from memos_grpc.store.names import check_id
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.search import fuse
from memos_grpc.vault.validation import check_update_mask, invalid

MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 10_000
MAX_TAGS = 64
MAX_TAG_CHARS = 64
MAX_THRESHOLD = 256
_DEFAULT_PAGE, _MAX_PAGE = 50, 1000
_DEFAULT_TOP_K, _MAX_TOP_K = 10, 1000
#: Fields an UpdateListing mask may name (AIP-134); ``*`` is not one of them.
UPDATABLE_PATHS = frozenset({"title", "description", "tags", "publisher_threshold"})
#: BM25's usual constants (Robertson and Zaragoza); listing texts are short, so length matters little.
_BM25_K1, _BM25_B = 1.2, 0.75
_WORD = re.compile(r"\w+")


def listing_name(listing_id: str) -> str:
    return f"listings/{listing_id}"


def parse_listing_name(name: str, field: str = "name") -> str:
    """The listing id of ``listings/{listing}``; INVALID_NAME otherwise."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "listings":
        raise InvalidArgumentError(
            f"{field} {name[:120]!r} is not a listing name of the form listings/{{listing}}",
            reason=reasons.INVALID_NAME,
        )
    return check_id(parts[1], "listing id")


def listing_etag(listing: m.Listing) -> str:
    """AIP-154: a digest of everything the listing shows, so any change to it changes the etag."""
    copy = m.Listing()
    copy.CopyFrom(listing)
    copy.etag = ""
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()[:20]


#: Times an update makes its vector again when other updates keep changing the listing's text meanwhile.
_UPDATE_ATTEMPTS = 3


class _TextMoved(Exception):
    """Another update changed the listing's text after this one made its vector: nothing is stored."""


def listing_text(listing: m.Listing) -> str:
    """What SearchListings matches a query against: title, description and tags."""
    return "\n".join([listing.title, listing.description, " ".join(listing.tags)])


def is_owner(listing: m.Listing, viewer: Caller) -> bool:
    return viewer.admin or listing.owner == viewer.principal


def require_owner(listing: m.Listing, viewer: Caller, what: str) -> None:
    """LISTING_OWNER_REQUIRED unless ``viewer`` owns the listing or administers the server."""
    if not is_owner(listing, viewer):
        raise PermissionDeniedError(
            f"only {listing.owner}, the owner of {listing.name}, or an admin may {what}",
            reason=reasons.LISTING_OWNER_REQUIRED,
        )


def _check_title(title: str) -> None:
    if not title.strip():
        raise invalid("listing.title is required: say what the MemBlock is", reasons.MISSING_TITLE)
    if len(title) > MAX_TITLE_CHARS:
        raise invalid(
            f"listing.title is {len(title)} characters; the limit is {MAX_TITLE_CHARS}", reasons.FIELD_TOO_LONG
        )


def _check_description(description: str) -> None:
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise invalid(
            f"listing.description is {len(description)} characters; the limit is {MAX_DESCRIPTION_CHARS}",
            reasons.FIELD_TOO_LONG,
        )


def _check_tags(tags: Sequence[str]) -> None:
    if len(tags) > MAX_TAGS:
        raise invalid(f"listing.tags has {len(tags)} entries; the limit is {MAX_TAGS}", reasons.TOO_MANY_TAGS)
    for tag in tags:
        if not 1 <= len(tag) <= MAX_TAG_CHARS or tag != tag.strip():
            raise invalid(
                f"listing.tags entry {tag[:80]!r} must be 1..{MAX_TAG_CHARS} characters without surrounding spaces",
                reasons.INVALID_TAG,
            )
    if len(set(tags)) != len(tags):
        raise invalid("listing.tags has duplicate entries", reasons.INVALID_TAG)


def _check_threshold(threshold: int) -> int:
    """The threshold to store: 0 means 1."""
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise invalid(
            f"listing.publisher_threshold {threshold} is outside 0..{MAX_THRESHOLD}", reasons.INVALID_THRESHOLD
        )
    return threshold or 1


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def bm25(query: str, documents: Sequence[str]) -> list[float]:
    """Okapi BM25 of each document for ``query`` (0 for a document sharing no word with it)."""
    terms = set(_tokens(query))
    bags = [Counter(_tokens(document)) for document in documents]
    if not terms or not bags:
        return [0.0] * len(documents)
    average = sum(sum(bag.values()) for bag in bags) / len(bags) or 1.0
    count = len(bags)
    scores = []
    for bag in bags:
        length = sum(bag.values())
        score = 0.0
        for term in terms:
            frequency = bag.get(term, 0)
            if not frequency:
                continue
            having = sum(1 for other in bags if term in other)
            idf = math.log(1 + (count - having + 0.5) / (having + 0.5))
            score += (
                idf * frequency * (_BM25_K1 + 1) / (frequency + _BM25_K1 * (1 - _BM25_B + _BM25_B * length / average))
            )
        scores.append(score)
    return scores


class Listings:
    """The listings of a marketplace node, in the vault's DuckDB."""

    def __init__(self, context: VaultContext) -> None:
        self._context = context

    # -- rows --------------------------------------------------------------------------------------------

    @staticmethod
    def load(cursor: Connection, listing_id: str) -> m.Listing:
        """The stored listing; NOT_FOUND LISTING_NOT_FOUND."""
        listing = market_listings.listing_by_id(cursor, listing_id)
        if listing is None:
            raise NotFoundError(f"listing {listing_name(listing_id)} does not exist", reason=reasons.LISTING_NOT_FOUND)
        return listing

    @staticmethod
    def store(cursor: Connection, listing: m.Listing, now: datetime, embedding: bytes | None = None) -> None:
        """Writes ``listing`` (a new etag, ``update_time`` now) and the columns its filters read.

        ``embedding`` None keeps the stored one (the text did not change).
        """
        listing.update_time.FromDatetime(now)
        listing.etag = listing_etag(listing)
        market_listings.write_listing(cursor, parse_listing_name(listing.name), listing, now, embedding)

    def _embedding(self, listing: m.Listing) -> bytes | None:
        """The listing text's vector (float32 bytes), or None on a server without an embedder."""
        return self._embedding_of(listing_text(listing))

    def _embedding_of(self, text: str) -> bytes | None:
        if not self._context.embedder.fingerprint:
            return None
        vector = np.asarray(self._context.embedder.embed([text])[0], dtype=np.float32)
        return vector.tobytes()

    def _update_once(
        self, listing_id: str, changed: Callable[[m.Listing], m.Listing], viewer: Caller, text_changes: bool
    ) -> m.Listing | None:
        """One attempt of ``update``: None when another update changed the text after this one read it."""
        now = self._context.clock()
        with self._context.database.read() as cursor:
            before = self.load(cursor, listing_id)
        require_owner(before, viewer, "change it")
        text = listing_text(changed(m.Listing.FromString(before.SerializeToString())))
        embedding = self._embedding_of(text) if text_changes else None

        def apply(cursor: Connection) -> m.Listing:
            stored = changed(self.load(cursor, listing_id))
            require_owner(stored, viewer, "change it")
            if text_changes and listing_text(stored) != text:
                raise _TextMoved
            self.store(cursor, stored, now, embedding)
            return stored

        try:
            return self._context.database.write(apply)
        except _TextMoved:
            return None

    # -- the RPCs ----------------------------------------------------------------------------------------

    def create(self, request: m.CreateListingRequest, viewer: Caller) -> m.Listing:
        listing_id = check_id(request.listing_id, "listing_id")
        given = request.listing
        _check_title(given.title)
        _check_description(given.description)
        _check_tags(given.tags)
        now = self._context.clock()
        listing = m.Listing(
            name=listing_name(listing_id),
            title=given.title,
            description=given.description,
            tags=list(given.tags),
            owner=viewer.principal,
            publisher_threshold=_check_threshold(given.publisher_threshold),
        )
        listing.create_time.FromDatetime(now)
        listing.update_time.FromDatetime(now)
        listing.etag = listing_etag(listing)
        if request.validate_only:
            with self._context.database.read() as cursor:
                self._refuse_taken(cursor, listing_id)
            return listing
        embedding = self._embedding(listing)

        def apply(cursor: Connection) -> m.Listing:
            self._refuse_taken(cursor, listing_id)
            self.store(cursor, listing, now, embedding)
            return listing

        return self._context.database.write(apply)

    @staticmethod
    def _refuse_taken(cursor: Connection, listing_id: str) -> None:
        if market_listings.listing_exists(cursor, listing_id):
            raise AlreadyExistsError(
                f"listing {listing_name(listing_id)} already exists", reason=reasons.LISTING_ALREADY_EXISTS
            )

    def get(self, name: str) -> m.Listing:
        listing_id = parse_listing_name(name)
        with self._context.database.read() as cursor:
            return self.load(cursor, listing_id)

    def list(self, request: m.ListListingsRequest) -> tuple[list[m.Listing], str]:
        size = page_size(request.page_size, _DEFAULT_PAGE, _MAX_PAGE)
        compiled = compile_filter(
            request.filter, max_length=self._context.settings.max_filter_length, fields=LISTING_FIELDS
        )
        after = decode_token(request.page_token, "listings", request.filter)
        with self._context.database.read() as cursor:
            rows = market_listings.listings_page(cursor, after or "", compiled, size + 1)
        listings = [listing for _, listing in rows[:size]]
        token = encode_token(rows[size - 1][0], "listings", request.filter) if len(rows) > size else ""
        return listings, token

    def update(self, request: m.UpdateListingRequest, viewer: Caller) -> m.Listing:
        given = request.listing
        listing_id = parse_listing_name(given.name, "listing.name")
        paths = check_update_mask(_mask_paths(request.update_mask), UPDATABLE_PATHS)
        if "title" in paths:
            _check_title(given.title)
        if "description" in paths:
            _check_description(given.description)
        if "tags" in paths:
            _check_tags(given.tags)
        threshold = _check_threshold(given.publisher_threshold) if "publisher_threshold" in paths else 0
        text_changes = any(path in paths for path in ("title", "description", "tags"))

        def changed(stored: m.Listing) -> m.Listing:
            if given.etag and given.etag != stored.etag:
                raise EtagMismatchError(
                    f"etag {given.etag!r} is stale for {stored.name}: it was changed since; get it again",
                    reason=reasons.ETAG_MISMATCH,
                )
            if "publisher_threshold" in paths and (stored.publisher_keys or stored.release_count):
                raise invalid(
                    f"{stored.name} has releases: its publisher_threshold was fixed when the first pinned its keys",
                    reasons.INVALID_THRESHOLD,
                )
            if "title" in paths:
                stored.title = given.title
            if "description" in paths:
                stored.description = given.description
            if "tags" in paths:
                del stored.tags[:]
                stored.tags.extend(given.tags)
            if "publisher_threshold" in paths:
                stored.publisher_threshold = threshold
            return stored

        # The vector is made outside the write transaction (embedding is slow), for the text the listing will
        # have. Another update may change the text meanwhile: the write then stores nothing, and the vector is
        # made again for the text as it is now.
        for _ in range(_UPDATE_ATTEMPTS):
            updated = self._update_once(listing_id, changed, viewer, text_changes)
            if updated is not None:
                return updated
        raise AbortedError(
            f"{given.name} kept changing while this update was prepared; send it again",
            reason=reasons.LISTING_CHANGED,
        )

    def search(self, request: m.SearchListingsRequest) -> builtins.list[tuple[m.Listing, float]]:
        if not request.text.strip():
            raise invalid("text is required: the words to find listings by", reasons.MISSING_QUERY)
        if len(request.text) > MAX_DESCRIPTION_CHARS:
            raise invalid(
                f"text is {len(request.text)} characters; the limit is {MAX_DESCRIPTION_CHARS}", reasons.TEXT_TOO_LONG
            )
        if request.top_k < 0:
            raise invalid(f"top_k must not be negative (got {request.top_k})", reasons.INVALID_TOP_K)
        top_k = min(request.top_k or _DEFAULT_TOP_K, _MAX_TOP_K)
        mode = request.mode or vault_service_pb2.SEARCH_MODE_DENSE
        if mode not in vault_service_pb2.SearchMode.values() or mode == vault_service_pb2.SEARCH_MODE_UNSPECIFIED:
            raise invalid(f"mode {request.mode} is not a known SearchMode", reasons.INVALID_ENUM)
        compiled = compile_filter(
            request.filter, max_length=self._context.settings.max_filter_length, fields=LISTING_FIELDS
        )
        with self._context.database.read() as cursor:
            rows = market_listings.listings_matching(cursor, compiled)
        listings = [row.listing for row in rows]
        if not listings:
            return []
        dense_wanted = mode != vault_service_pb2.SEARCH_MODE_LEXICAL and bool(self._context.embedder.fingerprint)
        lexical: builtins.list[tuple[int, float]] = []
        if not dense_wanted or mode == vault_service_pb2.SEARCH_MODE_HYBRID:
            scores = bm25(request.text, [listing_text(listing) for listing in listings])
            lexical = sorted(((i, s) for i, s in enumerate(scores) if s > 0), key=lambda item: -item[1])
        if not dense_wanted:
            # Raw BM25 has no fixed range: scaled to the best hit, as SearchCubes scales its lexical scores.
            best = lexical[0][1] if lexical else 0.0
            return [(listings[i], s / best) for i, s in lexical[:top_k]]
        dense = self._dense(request.text, listings, [row.embedding for row in rows])
        if mode == vault_service_pb2.SEARCH_MODE_HYBRID:
            dense = fuse(dense, lexical, self._context.settings.hybrid_dense_weight)
        return [(listings[i], s) for i, s in dense[:top_k]]

    def _dense(
        self, text: str, listings: Sequence[m.Listing], stored: Sequence[bytes | None]
    ) -> builtins.list[tuple[int, float]]:
        """Every listing's cosine similarity to ``text``, best first (a missing vector is made now)."""
        dimension = self._context.dimension
        missing = [i for i, blob in enumerate(stored) if blob is None or len(blob) != 4 * dimension]
        made = self._context.embedder.embed([text] + [listing_text(listings[i]) for i in missing])
        vectors = np.zeros((len(listings), dimension), dtype=np.float32)
        for i, blob in enumerate(stored):
            if blob is not None and len(blob) == 4 * dimension:
                vectors[i] = np.frombuffer(blob, dtype=np.float32)
        for row, i in enumerate(missing, start=1):
            vectors[i] = made[row]
        scores = vectors @ np.asarray(made[0], dtype=np.float32)
        order = np.argsort(-scores, kind="stable")
        return [(int(i), float(scores[i])) for i in order]


def _mask_paths(mask: field_mask_pb2.FieldMask) -> list[str]:
    return list(mask.paths)
