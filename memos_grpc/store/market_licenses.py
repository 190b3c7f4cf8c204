"""Marketplace licenses as stored: ``market_licenses`` (schema v11).

A row keeps the whole ``License`` message beside its listing, release, acquirer, licensee, whether it is revoked
and the index of its grant entry. Filters and the visibility rule read a view of the rows with names built from
the ids, the state as its enum number and the owner of the license's listing. Who may see or revoke a license is
the marketplace's (``memos_grpc.marketplace.licenses``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc.store.database import Connection
from memos_grpc.store.filter import CompiledFilter, FilterField, enum_field

#: ListLicenses filter fields (docs/api.md), over the view below.
LICENSE_FIELDS: Final[dict[str, FilterField]] = {
    "release": FilterField("release", "string"),
    "listing": FilterField("listing", "string"),
    "licensee": FilterField("licensee", "string"),
    "acquirer": FilterField("acquirer", "string"),
    "state": enum_field("state", "STATE_", m.License.State.items()),
    "create_time": FilterField("create_time", "time"),
}
#: The rows as the filter and the visibility rule see them: names built from ids, the state as its enum number.
_VIEW: Final = """
    SELECT l.license_id, l.license_pb, l.log_index, l.create_time, l.acquirer, l.licensee,
           'listings/' || l.listing_id || '/releases/' || l.release_id AS release,
           'listings/' || l.listing_id AS listing,
           CASE WHEN l.revoked THEN 2 ELSE 1 END AS state,
           COALESCE(m.owner, '') AS listing_owner
    FROM market_licenses l LEFT JOIN market_listings m ON m.listing_id = l.listing_id
"""


@dataclass(frozen=True)
class LicenseRow:
    """A stored license with who may see it: its acquirer and its listing's owner ("" if the listing is gone)."""

    license: m.License
    acquirer: str
    listing_owner: str
    state: int


@dataclass(frozen=True)
class RevokedLicense:
    """A revoked license with the ids of the release it licensed."""

    license_id: str
    license: m.License
    listing_id: str
    release_id: str


def insert_license(
    cursor: Connection,
    license_id: str,
    license: m.License,
    listing_id: str,
    release_id: str,
    acquirer: str,
    create_time: datetime,
) -> None:
    """Writes a newly granted license (not revoked; its grant entry is ``license.log_index``)."""
    cursor.execute(
        "INSERT INTO market_licenses (license_id, license_pb, listing_id, release_id, acquirer, licensee, "
        "revoked, log_index, create_time) VALUES (?, ?, ?, ?, ?, ?, FALSE, ?, ?)",
        [
            license_id,
            license.SerializeToString(),
            listing_id,
            release_id,
            acquirer,
            license.licensee,
            license.log_index,
            create_time,
        ],
    )


def license_by_id(cursor: Connection, license_id: str) -> m.License | None:
    """The stored license, or None when there is none of this id."""
    row = cursor.execute("SELECT license_pb FROM market_licenses WHERE license_id = ?", [license_id]).fetchone()
    return None if row is None else m.License.FromString(bytes(row[0]))


def license_row(cursor: Connection, license_id: str) -> LicenseRow | None:
    """The stored license with its acquirer, its listing's owner and its state, or None."""
    row = cursor.execute(
        f"SELECT license_pb, acquirer, listing_owner, state FROM ({_VIEW}) WHERE license_id = ?", [license_id]
    ).fetchone()
    if row is None:
        return None
    return LicenseRow(m.License.FromString(bytes(row[0])), str(row[1]), str(row[2]), int(row[3]))


def license_ids_page(
    cursor: Connection, after: str, visible_to: str | None, matching: CompiledFilter, limit: int
) -> list[str]:
    """Up to ``limit`` ids of licenses after ``after`` the filter (compiled over ``LICENSE_FIELDS``) admits, in
    id order: those ``visible_to`` acquired or whose listing it owns, or every one when ``visible_to`` is None."""
    visible = "TRUE" if visible_to is None else "(acquirer = ? OR listing_owner = ?)"
    params = [] if visible_to is None else [visible_to] * 2
    rows = cursor.execute(
        f"SELECT license_id FROM ({_VIEW}) WHERE license_id > ? AND {visible} AND ({matching.sql}) "
        "ORDER BY license_id LIMIT ?",
        [after, *params, *matching.params, limit],
    ).fetchall()
    return [str(row[0]) for row in rows]


def revoke_license(cursor: Connection, license_id: str, license: m.License) -> None:
    """Replaces the license's message with its revoked one and marks the row revoked."""
    cursor.execute(
        "UPDATE market_licenses SET license_pb = ?, revoked = TRUE WHERE license_id = ?",
        [license.SerializeToString(), license_id],
    )


def holds_license(cursor: Connection, license_id: str, listing_id: str, release_id: str, acquirer: str) -> bool:
    """Whether license ``license_id`` is of this release, acquired by ``acquirer``, and not revoked."""
    row = cursor.execute(
        "SELECT 1 FROM market_licenses WHERE license_id = ? AND listing_id = ? AND release_id = ? "
        "AND acquirer = ? AND NOT revoked",
        [license_id, listing_id, release_id, acquirer],
    ).fetchone()
    return row is not None


def revoked_license_granted_at(cursor: Connection, log_index: int) -> RevokedLicense | None:
    """The license whose grant entry is log entry ``log_index``, if it is revoked; None otherwise."""
    row = cursor.execute(
        "SELECT license_id, license_pb, listing_id, release_id, revoked FROM market_licenses WHERE log_index = ?",
        [log_index],
    ).fetchone()
    if row is None or not row[4]:
        return None
    return RevokedLicense(str(row[0]), m.License.FromString(bytes(row[1])), str(row[2]), str(row[3]))
