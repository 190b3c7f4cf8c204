"""memos_grpc.store.market_licenses on a real database: a license with who may see it, pages of the licenses a
principal sees (by the filter over the view), revocation, the download check, and the revoked license of a grant
entry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc.store import market_licenses, market_listings
from memos_grpc.store.database import Database
from memos_grpc.store.filter import compile_filter
from memos_grpc.store.market_licenses import LICENSE_FIELDS, LicenseRow, RevokedLicense

T0 = datetime(2030, 1, 1, tzinfo=UTC)
ACTIVE, REVOKED = m.License.STATE_ACTIVE, m.License.STATE_REVOKED


def _license(license_id: str, release: str, acquirer: str, log_index: int) -> m.License:
    license = m.License(
        name=f"licenses/{license_id}",
        release=release,
        licensee=f"{acquirer}-buyer",
        acquirer=acquirer,
        state=ACTIVE,
        log_index=log_index,
    )
    license.create_time.FromDatetime(T0)
    return license


@pytest.fixture
def licenses(database: Database) -> dict[str, m.License]:
    """Three licenses of listing wine (owned by ann), one of a listing that has no row."""
    wine = m.Listing(name="listings/wine", title="Wine", owner="principals/ann")
    wine.create_time.FromDatetime(T0)
    database.write(lambda cursor: market_listings.write_listing(cursor, "wine", wine, T0, None))
    made = {
        "la": _license("la", "listings/wine/releases/1.0.0", "principals/bob", 2),
        "lb": _license("lb", "listings/wine/releases/2.0.0", "principals/cy", 4),
        "lc": _license("lc", "listings/wine/releases/1.0.0", "principals/bob", 6),
        "ld": _license("ld", "listings/gone/releases/1.0.0", "principals/bob", 8),
    }
    for license_id, license in made.items():
        _insert(database, license_id, license)
    return made


def _insert(database: Database, license_id: str, license: m.License) -> None:
    _, listing_id, _, release_id = license.release.split("/")
    database.write(
        lambda cursor: market_licenses.insert_license(
            cursor, license_id, license, listing_id, release_id, license.acquirer, T0
        )
    )


def test_a_license_is_read_with_who_may_see_it(database: Database, licenses: dict[str, m.License]) -> None:
    with database.read() as cursor:
        assert market_licenses.license_by_id(cursor, "la") == licenses["la"]
        assert market_licenses.license_by_id(cursor, "lz") is None
        assert market_licenses.license_row(cursor, "la") == LicenseRow(
            licenses["la"], "principals/bob", "principals/ann", ACTIVE
        )
        assert market_licenses.license_row(cursor, "ld") == LicenseRow(licenses["ld"], "principals/bob", "", ACTIVE)
        assert market_licenses.license_row(cursor, "lz") is None


def test_pages_hold_what_the_principal_sees(database: Database, licenses: dict[str, m.License]) -> None:
    def page(after: str, visible_to: str | None, text: str = "", limit: int = 10) -> list[str]:
        with database.read() as cursor:
            return market_licenses.license_ids_page(
                cursor, after, visible_to, compile_filter(text, fields=LICENSE_FIELDS), limit
            )

    assert page("", None) == ["la", "lb", "lc", "ld"]
    assert page("", None, limit=2) == ["la", "lb"]
    assert page("lb", None) == ["lc", "ld"]
    assert page("", "principals/ann") == ["la", "lb", "lc"]  # the owner of wine's listing
    assert page("", "principals/bob") == ["la", "lc", "ld"]  # the acquirer
    assert page("", "principals/cy") == ["lb"]
    assert page("", "principals/dan") == []
    assert page("", None, 'release = "listings/wine/releases/1.0.0"') == ["la", "lc"]
    assert page("", "principals/bob", 'listing = "listings/gone"') == ["ld"]
    assert page("", None, "state = STATE_REVOKED") == []


def test_a_revoked_license_is_no_longer_held(database: Database, licenses: dict[str, m.License]) -> None:
    with database.read() as cursor:
        assert market_licenses.holds_license(cursor, "la", "wine", "1.0.0", "principals/bob")
        assert not market_licenses.holds_license(cursor, "la", "wine", "2.0.0", "principals/bob")
        assert not market_licenses.holds_license(cursor, "la", "wine", "1.0.0", "principals/cy")
        assert market_licenses.revoked_license_granted_at(cursor, 2) is None
    revoked = m.License()
    revoked.CopyFrom(licenses["la"])
    revoked.state = REVOKED
    revoked.revocation.reason = "unpaid"
    revoked.revocation.log_index = 9
    database.write(lambda cursor: market_licenses.revoke_license(cursor, "la", revoked))
    with database.read() as cursor:
        assert not market_licenses.holds_license(cursor, "la", "wine", "1.0.0", "principals/bob")
        assert market_licenses.holds_license(cursor, "lc", "wine", "1.0.0", "principals/bob")
        assert market_licenses.license_row(cursor, "la") == LicenseRow(
            revoked, "principals/bob", "principals/ann", REVOKED
        )
        assert market_licenses.revoked_license_granted_at(cursor, 2) == RevokedLicense("la", revoked, "wine", "1.0.0")
        assert market_licenses.revoked_license_granted_at(cursor, 6) is None
        assert market_licenses.revoked_license_granted_at(cursor, 9) is None
        found = market_licenses.license_ids_page(
            cursor, "", None, compile_filter("state = STATE_REVOKED", fields=LICENSE_FIELDS), 10
        )
    assert found == ["la"]
