"""The isolation matrix's rows for licenses and Subscribe.

Every authenticated principal may acquire a license, and read, list and subscribe; who sees a license (its
acquirer, its listing's owner, admins) and who revokes one (the owner, admins) the component decides. So
each cell that reads or revokes acts on a license its caller may: one it acquired itself, or, to revoke, one
of a listing it owns. The world's release belongs to the owner's listing ``iso-market``; a release is recorded
the way a publish records it (the publish entry, then the row with its index).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from _isolation_world import ADMIN, Access, Row, Target, Who, World, assert_effect

from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as mkt
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub
from memos_grpc.marketplace.entries import Entry
from memos_grpc.marketplace.terms import Terms

_M = "/memos.v1.MarketplaceService/"
WORLD_LISTING = "iso-market"
_TERMS = json.dumps({"license": "MIT", "permission": [{"action": "import"}], "maxOfflineSeconds": 3600})
_KEY = "cd" * 32
_releases: dict[tuple[int, str], str] = {}


def _who(cell: str) -> Who:
    return Who(cell.split("-", 1)[1])


def _caller(w: World, cell: str) -> Who:
    """The cell's caller when it is authenticated; the admin stands in for callers that are refused anyway."""
    who = _who(cell)
    return who if w.principal(who) else Who.ADMIN


def _stub(w: World) -> MarketplaceServiceStub:
    return MarketplaceServiceStub(w.channel)


def release_of(w: World, who: Who, listing_id: str) -> str:
    """A release of ``listing_id``, a listing ``who`` creates (once per world)."""
    key = (id(w.server), listing_id)
    if key in _releases:
        return _releases[key]
    _stub(w).CreateListing(
        mkt.CreateListingRequest(listing_id=listing_id, listing=mkt.Listing(title=f"{listing_id} facts")),
        metadata=w.md(who),
    )
    assert w.server.vault is not None and w.server.vault.marketplace is not None
    node = w.server.vault.marketplace
    name = f"listings/{listing_id}/releases/1.0.0"
    digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
    terms = Terms.parse(_TERMS.encode())
    release = mkt.Release(
        name=name,
        state=mkt.Release.STATE_ACTIVE,
        statement_digest=digest,
        license=terms.license,
        terms=mkt.Terms(json=_TERMS, digest=terms.digest(), license=terms.license),
    )
    now = datetime.now(UTC)

    def apply(cursor: Any) -> None:
        cursor.execute(
            "INSERT INTO market_releases (listing_id, release_id, release_pb, bundle_digest, statement_digest, "
            "yanked, log_index, create_time, license, license_ids, memory_types) "
            "VALUES (?, '1.0.0', ?, ?, ?, FALSE, ?, ?, ?, ?, ?)",
            [listing_id, release.SerializeToString(), "sha256:" + "0" * 64, digest, index, now, "MIT", ["MIT"], []],
        )

    with node.recording([Entry("publish", digest, digest, "e" * 64).encode()]) as (index,):
        release.log_index = index
        w.server.vault.context.database.write(apply)
    node.wait_published(index + 1)
    _releases[key] = name
    return name


def world_release(w: World) -> str:
    return release_of(w, Who.OWNER, WORLD_LISTING)


def _acquired(w: World, who: Who, release: str) -> mkt.License:
    license: mkt.License = _stub(w).AcquireLicense(
        mkt.AcquireLicenseRequest(license=mkt.License(release=release, licensee="principals/buyer", licensee_key=_KEY)),
        metadata=w.md(who),
    )
    return license


def _license_state(w: World, name: str) -> int:
    return int(_stub(w).GetLicense(mkt.GetLicenseRequest(name=name), metadata=w.admin).state)


def _count_by(w: World, principal: str) -> int:
    listed = _stub(w).ListLicenses(
        mkt.ListLicensesRequest(filter=f'acquirer = "{principal}"', page_size=1000), metadata=w.admin
    )
    return len(listed.licenses)


def _acquire(w: World, cell: str) -> Target:
    principal = w.principal(_who(cell)) or ADMIN
    before = _count_by(w, principal)
    request = mkt.AcquireLicenseRequest(
        license=mkt.License(release=world_release(w), licensee="principals/buyer", licensee_key=_KEY)
    )
    return Target(request, lambda allowed: assert_effect(_count_by(w, principal), before + int(allowed)))


def _is_a_grant(w: World, who: Who, reply: mkt.License) -> None:
    assert reply.acquirer == w.principal(who) and reply.grant_envelope and reply.tlog_proof


def _get(w: World, cell: str) -> Target:
    license = _acquired(w, _caller(w, cell), world_release(w))
    return Target(mkt.GetLicenseRequest(name=license.name))


def _is_its_own(w: World, who: Who, reply: mkt.License) -> None:
    assert reply.acquirer == w.principal(who) and reply.state == mkt.License.STATE_ACTIVE


def _list(w: World, cell: str) -> Target:
    _acquired(w, _caller(w, cell), world_release(w))
    return Target(mkt.ListLicensesRequest(page_size=1000))


def _sees_only_its_own(w: World, who: Who, reply: mkt.ListLicensesResponse) -> None:
    acquirers = {license.acquirer for license in reply.licenses}
    assert w.principal(who) in acquirers
    # Besides its own, a caller sees the licenses of the listings it owns (the owner: the world's).
    owned = f"listings/{WORLD_LISTING}/" if who is Who.OWNER else f"listings/iso-{who.value}/"
    if who is not Who.ADMIN:
        assert all(x.acquirer == w.principal(who) or x.release.startswith(owned) for x in reply.licenses)


def _revoke(w: World, cell: str) -> Target:
    who = _caller(w, cell)
    # A listing of the caller's own (the owner's is the world's), so that an allowed caller is its owner.
    release = world_release(w) if who in (Who.OWNER, Who.ADMIN) else release_of(w, who, f"iso-{who.value}")
    license = _acquired(w, Who.ADMIN, release)
    wanted = mkt.License.STATE_REVOKED

    def effect(allowed: bool) -> None:
        assert_effect(_license_state(w, license.name), wanted if allowed else mkt.License.STATE_ACTIVE)

    return Target(mkt.RevokeLicenseRequest(name=license.name, reason=f"revoked by {cell}"), effect)


def _is_revoked(w: World, who: Who, reply: mkt.License) -> None:
    assert reply.state == mkt.License.STATE_REVOKED and reply.revocation.reason.startswith("revoked by")


def _subscribe(w: World, cell: str) -> Target:
    release = world_release(w)
    return Target(
        mkt.SubscribeRequest(start_index=0, types=[mkt.EVENT_TYPE_PUBLISH], listings=[release.rsplit("/", 2)[0]])
    )


def _is_the_publish(w: World, who: Who, reply: list[mkt.MarketplaceEvent]) -> None:
    assert [(e.type, e.release.name) for e in reply] == [(mkt.EVENT_TYPE_PUBLISH, world_release(w))]


LICENSE_ROWS = [
    Row(_M + "AcquireLicense", Access.AUTHENTICATED, True, _acquire, _is_a_grant),
    Row(_M + "GetLicense", Access.AUTHENTICATED, False, _get, _is_its_own),
    Row(_M + "ListLicenses", Access.AUTHENTICATED, False, _list, _sees_only_its_own),
    Row(_M + "RevokeLicense", Access.AUTHENTICATED, True, _revoke, _is_revoked),
    Row(_M + "Subscribe", Access.AUTHENTICATED, False, _subscribe, _is_the_publish),
]
