"""Marketplace listings over gRPC: create, get, list (paging, filters), update (mask, etag, owner) and search.

A real marketplace server with the real MiniLM embedder; a second principal shows that only a listing's
owner (or an admin) changes it, and a node that is not a marketplace refuses every call.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import field_mask_pb2
from memos_test_support import admin_token, authorized_channel, reason_of, start_server

from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc._proto.memos.v1 import principal_pb2, vault_service_pb2
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub
from memos_grpc.embedding.embedder import Embedder, FloatArray, NoEmbedder
from memos_grpc.marketplace.listings import bm25, listing_text
from memos_grpc.server.app import MemosServer
from memos_grpc.store.database import Connection

DENSE = vault_service_pb2.SEARCH_MODE_DENSE
LEXICAL = vault_service_pb2.SEARCH_MODE_LEXICAL
HYBRID = vault_service_pb2.SEARCH_MODE_HYBRID


@dataclass
class Market:
    server: MemosServer
    admin: MarketplaceServiceStub
    user: MarketplaceServiceStub
    user_name: str
    channels: list[grpc.Channel]


def add_user(server: MemosServer, admin: grpc.Channel) -> tuple[str, str]:
    governance = GovernanceServiceStub(admin)
    name = governance.CreatePrincipal(
        g.CreatePrincipalRequest(
            principal_id="p" + uuid.uuid4().hex[:10],
            principal=principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER),
        )
    ).name
    return name, governance.CreateCredential(g.CreateCredentialRequest(parent=name)).token


def open_market(server: MemosServer) -> Market:
    admin = authorized_channel(server.address, admin_token(server))
    user_name, token = add_user(server, admin)
    user = authorized_channel(server.address, token)
    return Market(server, MarketplaceServiceStub(admin), MarketplaceServiceStub(user), user_name, [admin, user])


@pytest.fixture
def market(tmp_path: Path, embedder: Embedder) -> Iterator[Market]:
    server = start_server(tmp_path / "data", embedder, marketplace_enabled=True)
    opened = open_market(server)
    yield opened
    for channel in opened.channels:
        channel.close()
    server.stop(grace=1)


def create(
    stub: MarketplaceServiceStub, listing_id: str, title: str, description: str = "", **fields: object
) -> m.Listing:
    listing = m.Listing(title=title, description=description, **fields)  # type: ignore[arg-type]
    return stub.CreateListing(m.CreateListingRequest(listing_id=listing_id, listing=listing))


def refused(call: object, request: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request)  # type: ignore[operator]
    return caught.value.code(), reason_of(caught.value)


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def test_create_get_and_validate_only(market: Market) -> None:
    made = create(market.user, "wine-notes", "Wine tasting notes", "Notes on Rioja", tags=["wine", "food"])
    assert made.name == "listings/wine-notes" and made.owner == market.user_name
    assert made.publisher_threshold == 1 and made.etag and made.release_count == 0 and not made.latest_release
    assert made.create_time == made.update_time
    assert market.admin.GetListing(m.GetListingRequest(name="listings/wine-notes")) == made

    checked = market.user.CreateListing(
        m.CreateListingRequest(listing_id="dry-run", listing=m.Listing(title="Only checked"), validate_only=True)
    )
    assert checked.name == "listings/dry-run" and checked.owner == market.user_name
    assert refused(market.user.GetListing, m.GetListingRequest(name="listings/dry-run")) == (
        grpc.StatusCode.NOT_FOUND,
        "LISTING_NOT_FOUND",
    )
    # validate_only finds a taken id too.
    taken = m.CreateListingRequest(listing_id="wine-notes", listing=m.Listing(title="x"), validate_only=True)
    assert refused(market.admin.CreateListing, taken) == (grpc.StatusCode.ALREADY_EXISTS, "LISTING_ALREADY_EXISTS")


@pytest.mark.parametrize(
    ("listing_id", "listing", "code", "reason"),
    [
        ("ok-id", m.Listing(title="  "), grpc.StatusCode.INVALID_ARGUMENT, "MISSING_TITLE"),
        ("ok-id", m.Listing(title="t" * 201), grpc.StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG"),
        ("ok-id", m.Listing(title="t", description="d" * 10_001), grpc.StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG"),
        ("Bad_Id", m.Listing(title="t"), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME"),
        ("", m.Listing(title="t"), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME"),
        ("ok-id", m.Listing(title="t", tags=["a", "a"]), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TAG"),
        ("ok-id", m.Listing(title="t", tags=[" a"]), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TAG"),
        (
            "ok-id",
            m.Listing(title="t", tags=[f"t{n}" for n in range(65)]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "TOO_MANY_TAGS",
        ),
        ("ok-id", m.Listing(title="t", publisher_threshold=257), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_THRESHOLD"),
        ("ok-id", m.Listing(title="t", publisher_threshold=-1), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_THRESHOLD"),
    ],
)
def test_bad_listings_are_refused_and_store_nothing(
    market: Market, listing_id: str, listing: m.Listing, code: grpc.StatusCode, reason: str
) -> None:
    request = m.CreateListingRequest(listing_id=listing_id, listing=listing)
    assert refused(market.user.CreateListing, request) == (code, reason)
    assert list(market.admin.ListListings(m.ListListingsRequest()).listings) == []


def test_a_taken_id_is_already_exists_and_keeps_the_first(market: Market) -> None:
    first = create(market.user, "taken", "First")
    request = m.CreateListingRequest(listing_id="taken", listing=m.Listing(title="Second"))
    assert refused(market.admin.CreateListing, request) == (grpc.StatusCode.ALREADY_EXISTS, "LISTING_ALREADY_EXISTS")
    assert market.user.GetListing(m.GetListingRequest(name="listings/taken")) == first


def test_list_pages_in_name_order_with_tokens_bound_to_the_filter(market: Market) -> None:
    for n in range(7):
        create(market.user if n % 2 else market.admin, f"l{n}", f"Listing {n}", tags=["even" if n % 2 == 0 else "odd"])
    names, token = [], ""
    while True:
        page = market.user.ListListings(m.ListListingsRequest(page_size=3, page_token=token))
        names += [listing.name for listing in page.listings]
        assert len(page.listings) <= 3
        token = page.next_page_token
        if not token:
            break
    assert names == [f"listings/l{n}" for n in range(7)]
    first = market.user.ListListings(m.ListListingsRequest(page_size=2, filter='tags = "even"'))
    assert [listing.name for listing in first.listings] == ["listings/l0", "listings/l2"]
    rest = market.user.ListListings(
        m.ListListingsRequest(page_size=2, filter='tags = "even"', page_token=first.next_page_token)
    )
    assert [listing.name for listing in rest.listings] == ["listings/l4", "listings/l6"]
    other = m.ListListingsRequest(page_size=2, filter='tags = "odd"', page_token=first.next_page_token)
    assert refused(market.user.ListListings, other) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
    assert refused(market.user.ListListings, m.ListListingsRequest(page_token="garbage!")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    )
    assert refused(market.user.ListListings, m.ListListingsRequest(page_size=-1)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_SIZE",
    )


def test_filters_over_publisher_title_and_memory_types(market: Market) -> None:
    create(market.user, "mine", "Mine")
    create(market.admin, "theirs", "Theirs")
    by = market.user.ListListings(m.ListListingsRequest(filter=f'publisher = "{market.user_name}"'))
    assert [listing.name for listing in by.listings] == ["listings/mine"]
    titled = market.user.ListListings(m.ListListingsRequest(filter='title = "The*" OR title = "Nothing"'))
    assert [listing.name for listing in titled.listings] == ["listings/theirs"]
    # No release yet: no memory types, no license.
    assert list(market.user.ListListings(m.ListListingsRequest(filter="memory_types = PLAINTEXT")).listings) == []
    assert len(market.user.ListListings(m.ListListingsRequest(filter="-memory_types:*")).listings) == 2
    for bad in ("nope = 1", "memory_types = SOUND", "tags > 3", "title"):
        assert refused(market.user.ListListings, m.ListListingsRequest(filter=bad)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FILTER",
        )


def test_update_by_mask_etag_and_owner(market: Market) -> None:
    made = create(market.user, "notes", "Notes", "old", tags=["a"])
    changed = market.user.UpdateListing(
        m.UpdateListingRequest(
            listing=m.Listing(name=made.name, title="New notes", description="ignored", etag=made.etag),
            update_mask=mask("title", "publisher_threshold"),
        )
    )
    assert (changed.title, changed.description, list(changed.tags), changed.publisher_threshold) == (
        "New notes",
        "old",
        ["a"],
        1,
    )
    assert changed.etag != made.etag and changed.create_time == made.create_time
    stale = m.UpdateListingRequest(
        listing=m.Listing(name=made.name, title="Lost", etag=made.etag), update_mask=mask("title")
    )
    assert refused(market.user.UpdateListing, stale) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    # An admin may; a stranger may not.
    by_admin = market.admin.UpdateListing(
        m.UpdateListingRequest(listing=m.Listing(name=made.name, tags=["b", "c"]), update_mask=mask("tags"))
    )
    assert list(by_admin.tags) == ["b", "c"] and by_admin.owner == market.user_name
    theirs = create(market.admin, "theirs", "Theirs")
    foreign = m.UpdateListingRequest(listing=m.Listing(name=theirs.name, title="Mine now"), update_mask=mask("title"))
    assert refused(market.user.UpdateListing, foreign) == (grpc.StatusCode.PERMISSION_DENIED, "LISTING_OWNER_REQUIRED")
    for request, reason in [
        (m.UpdateListingRequest(listing=m.Listing(name=made.name, title="x")), "MISSING_UPDATE_MASK"),
        (m.UpdateListingRequest(listing=m.Listing(name=made.name), update_mask=mask("*")), "INVALID_UPDATE_MASK"),
        (m.UpdateListingRequest(listing=m.Listing(name=made.name), update_mask=mask("owner")), "INVALID_UPDATE_MASK"),
        (m.UpdateListingRequest(listing=m.Listing(name=made.name), update_mask=mask("title")), "MISSING_TITLE"),
        (
            m.UpdateListingRequest(listing=m.Listing(name="listings/nope", title="x"), update_mask=mask("title")),
            "LISTING_NOT_FOUND",
        ),
        (
            m.UpdateListingRequest(listing=m.Listing(name="spaces/x", title="x"), update_mask=mask("title")),
            "INVALID_NAME",
        ),
    ]:
        assert refused(market.user.UpdateListing, request)[1] == reason
    assert market.user.GetListing(m.GetListingRequest(name=made.name)) == by_admin
    assert market.user.GetListing(m.GetListingRequest(name=theirs.name)) == theirs


LISTINGS = {
    "sommelier": (
        "Wine pairing memory",
        "Which wines go with which dishes, from a sommelier's notes",
        ["wine", "food"],
    ),
    "kernel": ("Linux kernel debugging", "Stack traces, oops messages and how to bisect a regression", ["linux"]),
    "garden": ("Vegetable gardening", "When to sow tomatoes and how to keep slugs away", ["garden"]),
}


def test_search_dense_lexical_and_hybrid_with_filters(market: Market) -> None:
    for listing_id, (title, description, tags) in LISTINGS.items():
        create(market.user, listing_id, title, description, tags=tags)
    dense = market.user.SearchListings(m.SearchListingsRequest(text="which red goes well with steak"))
    assert dense.results[0].listing.name == "listings/sommelier"
    assert len(dense.results) == 3 and all(-1 <= r.score <= 1 for r in dense.results)
    assert [r.score for r in dense.results] == sorted((r.score for r in dense.results), reverse=True)
    lexical = market.user.SearchListings(m.SearchListingsRequest(text="bisect regression", mode=LEXICAL))
    assert [(r.listing.name, r.score) for r in lexical.results] == [("listings/kernel", 1.0)]
    hybrid = market.user.SearchListings(m.SearchListingsRequest(text="tomatoes", mode=HYBRID, top_k=1))
    assert [r.listing.name for r in hybrid.results] == ["listings/garden"]
    filtered = market.user.SearchListings(m.SearchListingsRequest(text="wine", filter='tags = "linux"'))
    assert [r.listing.name for r in filtered.results] == ["listings/kernel"]
    # An update re-embeds the listing: what it now says is what it is found by.
    market.user.UpdateListing(
        m.UpdateListingRequest(
            listing=m.Listing(name="listings/garden", title="Sourdough baking", description="Starters, flour, ovens"),
            update_mask=mask("title", "description"),
        )
    )
    baked = market.user.SearchListings(m.SearchListingsRequest(text="bread and yeast", mode=DENSE, top_k=1))
    assert [r.listing.name for r in baked.results] == ["listings/garden"]
    for request, reason in [
        (m.SearchListingsRequest(text=" "), "MISSING_QUERY"),
        (m.SearchListingsRequest(text="x", top_k=-1), "INVALID_TOP_K"),
        (m.SearchListingsRequest(text="x", mode=99), "INVALID_ENUM"),  # type: ignore[arg-type]
        (m.SearchListingsRequest(text="x", filter="tags >"), "INVALID_FILTER"),
    ]:
        assert refused(market.user.SearchListings, request) == (grpc.StatusCode.INVALID_ARGUMENT, reason)


def test_without_an_embedder_every_mode_ranks_lexically(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", NoEmbedder(384), marketplace_enabled=True)
    market = open_market(server)
    try:
        for listing_id, (title, description, tags) in LISTINGS.items():
            create(market.user, listing_id, title, description, tags=tags)
        for mode in (DENSE, LEXICAL, HYBRID):
            found = market.user.SearchListings(m.SearchListingsRequest(text="slugs tomatoes", mode=mode))
            assert [(r.listing.name, r.score) for r in found.results] == [("listings/garden", 1.0)]
    finally:
        for channel in market.channels:
            channel.close()
        server.stop(grace=1)


def test_bm25_prefers_the_rarer_word_and_scores_no_match_zero() -> None:
    scores = bm25("rare common", ["common common", "rare common", "nothing here"])
    assert scores[1] > scores[0] > 0 and scores[2] == 0


def test_a_node_that_is_no_marketplace_refuses_listings(fresh_server: MemosServer) -> None:
    with authorized_channel(fresh_server.address, admin_token(fresh_server)) as channel:
        stub = MarketplaceServiceStub(channel)
        request = m.CreateListingRequest(listing_id="x", listing=m.Listing(title="x"))
        assert refused(stub.CreateListing, request) == (grpc.StatusCode.FAILED_PRECONDITION, "MARKETPLACE_DISABLED")
        assert refused(stub.ListListings, m.ListListingsRequest()) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "MARKETPLACE_DISABLED",
        )


class Interleaving:
    """The real embedder, which first runs ``meanwhile`` (once) when asked for a text containing ``trigger``: another
    call then lands between an update's read and its write, every time, with no timing involved."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.trigger = ""
        self.meanwhile: Callable[[], object] | None = None

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    @property
    def fingerprint(self) -> str:
        return self._inner.fingerprint

    def embed(self, texts: list[str]) -> FloatArray:
        if self.meanwhile is not None and self.trigger and any(self.trigger in text for text in texts):
            run, self.meanwhile = self.meanwhile, None
            run()
        return self._inner.embed(texts)


def test_an_update_raced_by_another_stores_the_vector_of_the_text_it_stores(tmp_path: Path, embedder: Embedder) -> None:
    interleaving = Interleaving(embedder)
    server = start_server(tmp_path / "data", interleaving, marketplace_enabled=True)
    market = open_market(server)
    try:
        made = create(market.user, "garden", "Garden", "Slugs and snails")
        interleaving.trigger = "Sourdough"
        node = server.vault
        assert node is not None and node.listings is not None
        listings = node.listings

        def another_update() -> None:
            """What a concurrent UpdateListing of the description writes (the embedder's one thread is busy here,
            so its write is made directly, with its vector from the model)."""

            def apply(cursor: Connection) -> None:
                listing = listings.load(cursor, "garden")
                listing.description = "Tomatoes and beans"
                vector = np.asarray(embedder.embed([listing_text(listing)])[0], dtype=np.float32).tobytes()
                listings.store(cursor, listing, datetime.now(UTC), vector)

            node.context.database.write(apply)

        interleaving.meanwhile = another_update
        updated = market.user.UpdateListing(
            m.UpdateListingRequest(
                listing=m.Listing(name=made.name, title="Sourdough baking"), update_mask=mask("title")
            )
        )
        assert interleaving.meanwhile is None, "the competing update did not run"
        assert (updated.title, updated.description) == ("Sourdough baking", "Tomatoes and beans")
        # The stored vector is that of the text stored: the listing's own text finds it at cosine 1.
        found = market.user.SearchListings(
            m.SearchListingsRequest(text="Sourdough baking\nTomatoes and beans\n", mode=DENSE, top_k=1)
        )
        assert [r.listing.name for r in found.results] == [made.name]
        assert found.results[0].score > 0.999

        # An update whose text keeps being changed under it gives up, storing nothing.
        edits = iter(range(3))

        def yet_another() -> None:
            edit = next(edits, None)
            if edit is None:
                return

            def apply(cursor: Connection) -> None:
                listing = listings.load(cursor, "garden")
                listing.description = f"edit {edit}"
                listings.store(cursor, listing, datetime.now(UTC), None)

            node.context.database.write(apply)
            interleaving.meanwhile = yet_another

        interleaving.trigger, interleaving.meanwhile = "Rye", yet_another
        request = m.UpdateListingRequest(listing=m.Listing(name=made.name, title="Rye"), update_mask=mask("title"))
        assert refused(market.user.UpdateListing, request) == (grpc.StatusCode.ABORTED, "LISTING_CHANGED")
        kept = market.user.GetListing(m.GetListingRequest(name=made.name))
        assert (kept.title, kept.description) == ("Sourdough baking", "edit 2")
    finally:
        for channel in market.channels:
            channel.close()
        server.stop(grace=1)
