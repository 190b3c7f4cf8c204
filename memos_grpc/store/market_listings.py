"""Marketplace listings as stored: ``market_listings`` (schema v11).

A row keeps the whole ``Listing`` message beside copies of the fields filters read, and the vector of the
listing's text (float32 bytes; NULL on a server without an embedder). What a listing may hold, its etag and who may
change it are the marketplace's (``memos_grpc.marketplace.listings``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc.store.database import Connection
from memos_grpc.store.filter import CompiledFilter, FilterField

#: ListListings and SearchListings filter fields (docs/api.md), mapped to columns of ``market_listings``.
LISTING_FIELDS: dict[str, FilterField] = {
    "tags": FilterField("tags", "list"),
    "publisher": FilterField("owner", "string"),
    "publisher_keys": FilterField("publisher_keys", "list"),
    "license": FilterField("license", "string"),
    "license_ids": FilterField("license_ids", "list"),
    "memory_types": FilterField("memory_types", "enum_list", "MEMORY_TYPE_", tuple(cube_pb2.MemoryType.items())),
    "title": FilterField("title", "string"),
    "create_time": FilterField("create_time", "time"),
    "update_time": FilterField("update_time", "time"),
}


@dataclass(frozen=True)
class StoredListing:
    """A listing and the stored vector of its text (None when it has none)."""

    listing: m.Listing
    embedding: bytes | None


def listing_by_id(cursor: Connection, listing_id: str) -> m.Listing | None:
    """The stored listing, or None when there is none of this id."""
    row = cursor.execute("SELECT listing_pb FROM market_listings WHERE listing_id = ?", [listing_id]).fetchone()
    return None if row is None else m.Listing.FromString(row[0])


def listing_exists(cursor: Connection, listing_id: str) -> bool:
    """Whether a listing of this id is stored."""
    return cursor.execute("SELECT 1 FROM market_listings WHERE listing_id = ?", [listing_id]).fetchone() is not None


def stored_listing(cursor: Connection, listing_id: str) -> StoredListing | None:
    """The listing with its stored vector, or None when there is none of this id."""
    row = cursor.execute(
        "SELECT listing_pb, embedding FROM market_listings WHERE listing_id = ?", [listing_id]
    ).fetchone()
    if row is None:
        return None
    return StoredListing(m.Listing.FromString(bytes(row[0])), bytes(row[1]) if row[1] is not None else None)


def write_listing(
    cursor: Connection, listing_id: str, listing: m.Listing, update_time: datetime, embedding: bytes | None
) -> None:
    """Inserts or replaces the listing's row: its message and the columns its filters read.

    ``embedding`` None keeps the stored vector (the text did not change). The creation time is the message's,
    in ``update_time``'s zone.
    """
    cursor.execute(
        "INSERT INTO market_listings (listing_id, listing_pb, owner, title, tags, publisher_keys, license, "
        "license_ids, memory_types, create_time, update_time, etag, embedding) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (listing_id) DO UPDATE SET "
        "listing_pb = excluded.listing_pb, owner = excluded.owner, title = excluded.title, tags = excluded.tags, "
        "publisher_keys = excluded.publisher_keys, license = excluded.license, "
        "license_ids = excluded.license_ids, memory_types = excluded.memory_types, "
        "update_time = excluded.update_time, etag = excluded.etag, "
        "embedding = COALESCE(excluded.embedding, market_listings.embedding)",
        [
            listing_id,
            listing.SerializeToString(),
            listing.owner,
            listing.title,
            list(listing.tags),
            list(listing.publisher_keys),
            listing.license,
            list(listing.license_ids),
            [int(t) for t in listing.memory_types],
            listing.create_time.ToDatetime(tzinfo=update_time.tzinfo),
            update_time,
            listing.etag,
            embedding,
        ],
    )


def listings_page(cursor: Connection, after: str, matching: CompiledFilter, limit: int) -> list[tuple[str, m.Listing]]:
    """Up to ``limit`` (id, listing) pairs the filter admits whose id sorts after ``after``, in id order.

    ``matching`` is compiled over ``LISTING_FIELDS``.
    """
    rows = cursor.execute(
        f"SELECT listing_id, listing_pb FROM market_listings WHERE listing_id > ? AND ({matching.sql}) "
        "ORDER BY listing_id LIMIT ?",
        [after, *matching.params, limit],
    ).fetchall()
    return [(str(listing_id), m.Listing.FromString(blob)) for listing_id, blob in rows]


def listings_matching(cursor: Connection, matching: CompiledFilter) -> list[StoredListing]:
    """Every listing the filter (compiled over ``LISTING_FIELDS``) admits, with its vector, in id order."""
    rows = cursor.execute(
        f"SELECT listing_pb, embedding FROM market_listings WHERE ({matching.sql}) ORDER BY listing_id",
        list(matching.params),
    ).fetchall()
    return [
        StoredListing(m.Listing.FromString(blob), bytes(embedding) if embedding is not None else None)
        for blob, embedding in rows
    ]
