"""Marketplace releases as stored: ``market_releases``, ``market_key_changes`` and the bundles' blob files.

A release's row keeps its whole ``Release`` message beside the columns lookups and ListReleases' filters read
(schema v11); its bundle is a content-addressed blob of the vault's blob store (``bundle_digest``). A listing's
publisher-key changes keep the canonical JSON their ``key`` log entries digest. What may be published, by whom,
and in which order releases rank are the marketplace's (``memos_grpc.marketplace.releases``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc.store.blobs import Blobs, BlobWriter
from memos_grpc.store.database import Connection
from memos_grpc.store.filter import CompiledFilter, FilterField

#: ListReleases filter fields (docs/api.md), over ``market_releases``.
RELEASE_FIELDS_FILTER: dict[str, FilterField] = {
    "license": FilterField("license", "string"),
    "license_ids": FilterField("license_ids", "list"),
    "memory_types": FilterField("memory_types", "enum_list", "MEMORY_TYPE_", tuple(cube_pb2.MemoryType.items())),
    "state": FilterField("(CASE WHEN yanked THEN 2 ELSE 1 END)", "enum", "STATE_", tuple(m.Release.State.items())),
    "create_time": FilterField("create_time", "time"),
}


@dataclass(frozen=True)
class StoredRelease:
    """A release's id and its serialized message, parsed only when asked (``message``): ranking needs the id."""

    release_id: str
    serialized: bytes

    def message(self) -> m.Release:
        return m.Release.FromString(self.serialized)


@dataclass(frozen=True)
class PublishedRelease:
    """A release with the listing it belongs to."""

    listing_id: str
    release: m.Release


# -- rows -----------------------------------------------------------------------------------------------------


def release_by_id(cursor: Connection, listing_id: str, release_id: str) -> m.Release | None:
    """The stored release, or None when the listing has none of this id."""
    row = cursor.execute(
        "SELECT release_pb FROM market_releases WHERE listing_id = ? AND release_id = ?", [listing_id, release_id]
    ).fetchone()
    return None if row is None else m.Release.FromString(bytes(row[0]))


def release_and_bundle(cursor: Connection, listing_id: str, release_id: str) -> tuple[m.Release, str] | None:
    """The stored release and the digest of its bundle as the row records it, or None."""
    row = cursor.execute(
        "SELECT release_pb, bundle_digest FROM market_releases WHERE listing_id = ? AND release_id = ?",
        [listing_id, release_id],
    ).fetchone()
    return None if row is None else (m.Release.FromString(bytes(row[0])), str(row[1]))


def release_published_at(cursor: Connection, log_index: int) -> PublishedRelease | None:
    """The release whose publish entry is log entry ``log_index``, or None."""
    row = cursor.execute(
        "SELECT listing_id, release_pb FROM market_releases WHERE log_index = ?", [log_index]
    ).fetchone()
    return None if row is None else PublishedRelease(str(row[0]), m.Release.FromString(bytes(row[1])))


def insert_release(
    cursor: Connection,
    listing_id: str,
    release_id: str,
    release: m.Release,
    create_time: datetime,
    license_ids: Sequence[str],
) -> None:
    """Writes a newly published release (not yanked; its publish entry is ``release.log_index``)."""
    cursor.execute(
        "INSERT INTO market_releases (listing_id, release_id, release_pb, bundle_digest, statement_digest, "
        "yanked, log_index, create_time, license, license_ids, memory_types) "
        "VALUES (?, ?, ?, ?, ?, FALSE, ?, ?, ?, ?, ?)",
        [
            listing_id,
            release_id,
            release.SerializeToString(),
            release.bundle_digest,
            release.statement_digest,
            release.log_index,
            create_time,
            release.license,
            list(license_ids),
            [int(t) for t in release.memory_types],
        ],
    )


def yank_release(cursor: Connection, listing_id: str, release_id: str, release: m.Release) -> None:
    """Replaces the release's message with its yanked one and marks the row yanked."""
    cursor.execute(
        "UPDATE market_releases SET release_pb = ?, yanked = TRUE WHERE listing_id = ? AND release_id = ?",
        [release.SerializeToString(), listing_id, release_id],
    )


def active_releases(cursor: Connection, listing_id: str) -> list[StoredRelease]:
    """The listing's releases that are not yanked, in no particular order."""
    rows = cursor.execute(
        "SELECT release_id, release_pb FROM market_releases WHERE listing_id = ? AND NOT yanked", [listing_id]
    ).fetchall()
    return [StoredRelease(str(release_id), bytes(blob)) for release_id, blob in rows]


def releases_matching(
    cursor: Connection, listing_id: str, matching: CompiledFilter, *, show_yanked: bool
) -> list[StoredRelease]:
    """The listing's releases the filter (compiled over ``RELEASE_FIELDS_FILTER``) admits, yanked ones only with
    ``show_yanked``, in no particular order."""
    yanked = "" if show_yanked else "AND NOT yanked"
    rows = cursor.execute(
        f"SELECT release_id, release_pb FROM market_releases WHERE listing_id = ? {yanked} AND ({matching.sql})",
        [listing_id, *matching.params],
    ).fetchall()
    return [StoredRelease(str(release_id), bytes(blob)) for release_id, blob in rows]


# -- publisher-key changes ------------------------------------------------------------------------------------


def insert_key_change(
    cursor: Connection, log_index: int, listing_id: str, record: bytes, change_time: datetime
) -> None:
    """Keeps the canonical JSON the ``key`` entry at ``log_index`` digests."""
    cursor.execute("INSERT INTO market_key_changes VALUES (?, ?, ?, ?)", [log_index, listing_id, record, change_time])


def key_changes(cursor: Connection, listing_id: str) -> list[tuple[int, bytes]]:
    """The logged publisher-key changes of a listing: (log index, the canonical JSON), in log order."""
    rows = cursor.execute(
        "SELECT log_index, record FROM market_key_changes WHERE listing_id = ? ORDER BY log_index", [listing_id]
    ).fetchall()
    return [(int(index), bytes(record)) for index, record in rows]


# -- bundle files ---------------------------------------------------------------------------------------------


def bundle_writer(blobs: Blobs, max_bytes: int) -> BlobWriter:
    """A writer that takes an uploaded bundle's bytes into a temporary file, hashing them; ``keep_bundle`` makes
    it the bundle's blob, ``BlobWriter.abort`` drops it."""
    return blobs.writer(max_bytes)


def keep_bundle(writer: BlobWriter) -> str:
    """Makes the bundle durable under its digest (before its release's row is written) and returns the digest."""
    return writer.commit()
