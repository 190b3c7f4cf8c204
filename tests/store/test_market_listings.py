"""memos_grpc.store.market_listings on a real database: a listing's row follows its message, keeps its vector
while the text stays, and filters, pages and matches by the columns the fields name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc.store import market_listings
from memos_grpc.store.database import Database
from memos_grpc.store.filter import compile_filter
from memos_grpc.store.market_listings import LISTING_FIELDS, StoredListing

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _listing(listing_id: str, owner: str, tags: list[str], title: str = "") -> m.Listing:
    listing = m.Listing(name=f"listings/{listing_id}", title=title or listing_id, owner=owner, tags=tags)
    listing.create_time.FromDatetime(T0)
    listing.update_time.FromDatetime(T0)
    listing.etag = f"etag-{listing_id}"
    return listing


def _write(database: Database, listing: m.Listing, when: datetime, embedding: bytes | None) -> None:
    listing_id = listing.name.removeprefix("listings/")
    database.write(lambda cursor: market_listings.write_listing(cursor, listing_id, listing, when, embedding))


def test_a_listing_is_read_back_with_its_vector(database: Database) -> None:
    wine = _listing("wine", "principals/ann", ["wine", "food"])
    _write(database, wine, T0, b"\x00\x00\x80\x3f")
    with database.read() as cursor:
        assert market_listings.listing_exists(cursor, "wine")
        assert not market_listings.listing_exists(cursor, "beer")
        assert market_listings.listing_by_id(cursor, "wine") == wine
        assert market_listings.listing_by_id(cursor, "beer") is None
        assert market_listings.stored_listing(cursor, "wine") == StoredListing(wine, b"\x00\x00\x80\x3f")
        assert market_listings.stored_listing(cursor, "beer") is None


def test_a_rewrite_replaces_the_row_and_keeps_the_vector_unless_given(database: Database) -> None:
    wine = _listing("wine", "principals/ann", ["wine"])
    _write(database, wine, T0, b"old vector")
    changed = _listing("wine", "principals/ann", ["wine", "red"], title="Red wines")
    changed.publisher_keys.append("k" * 64)
    changed.license = "MIT"
    changed.license_ids.append("MIT")
    changed.memory_types.append(cube_pb2.MEMORY_TYPE_PLAINTEXT)
    _write(database, changed, T0 + timedelta(hours=1), None)
    with database.read() as cursor:
        assert market_listings.stored_listing(cursor, "wine") == StoredListing(changed, b"old vector")
        row = cursor.execute(
            "SELECT title, tags, publisher_keys, license, license_ids, memory_types, create_time, update_time "
            "FROM market_listings WHERE listing_id = 'wine'"
        ).fetchone()
    assert row is not None
    assert row[:6] == ("Red wines", ["wine", "red"], ["k" * 64], "MIT", ["MIT"], [cube_pb2.MEMORY_TYPE_PLAINTEXT])
    assert (row[6], row[7]) == (T0, T0 + timedelta(hours=1))
    _write(database, changed, T0 + timedelta(hours=2), b"new vector")
    with database.read() as cursor:
        assert market_listings.stored_listing(cursor, "wine") == StoredListing(changed, b"new vector")


def test_pages_and_matches_follow_the_filter_in_id_order(database: Database) -> None:
    for listing_id, owner, tags in [
        ("cider", "principals/bob", ["drink"]),
        ("wine", "principals/ann", ["drink", "grape"]),
        ("bread", "principals/ann", ["food"]),
        ("beer", "principals/ann", ["drink"]),
    ]:
        _write(database, _listing(listing_id, owner, tags), T0, None if listing_id == "beer" else b"v")
    drinks_by_ann = compile_filter('tags:drink AND publisher = "principals/ann"', fields=LISTING_FIELDS)
    everything = compile_filter("", fields=LISTING_FIELDS)
    with database.read() as cursor:
        first = market_listings.listings_page(cursor, "", everything, 2)
        rest = market_listings.listings_page(cursor, first[-1][0], everything, 10)
        matched = market_listings.listings_matching(cursor, drinks_by_ann)
        none = market_listings.listings_page(cursor, "", compile_filter("tags:tea", fields=LISTING_FIELDS), 10)
    assert [listing_id for listing_id, _ in first] == ["beer", "bread"]
    assert [listing_id for listing_id, _ in rest] == ["cider", "wine"]
    assert [listing.name for _, listing in first + rest] == [
        f"listings/{i}" for i in ("beer", "bread", "cider", "wine")
    ]
    assert [(row.listing.name, row.embedding) for row in matched] == [("listings/beer", None), ("listings/wine", b"v")]
    assert none == []
