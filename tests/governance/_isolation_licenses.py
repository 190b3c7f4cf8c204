"""The isolation matrix's rows for licenses and Subscribe.

Every authenticated principal may acquire a license, and read, list and subscribe; who sees a license (its
acquirer, its listing's owner, admins) and who revokes one (the owner, admins) the component decides. So
each cell that reads or revokes acts on a license its caller may: one it acquired itself, or, to revoke, one
of a listing it owns. Releases are published as the listings rows publish them (a bundle the caller exports,
signed by the key the server keeps for it); the world's release is one of the owner's, published once.
"""

from __future__ import annotations

from _isolation_listings import _release as publish_release
from _isolation_world import ADMIN, Access, Row, Target, Who, World, assert_effect

from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as mkt
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub

_M = "/memos.v1.MarketplaceService/"
_KEY = "cd" * 32
_releases: dict[int, str] = {}


def _who(cell: str) -> Who:
    return Who(cell.split("-", 1)[1])


def _caller(w: World, cell: str) -> Who:
    """The cell's caller when it is authenticated; the admin stands in for callers that are refused anyway."""
    who = _who(cell)
    return who if w.principal(who) else Who.ADMIN


def _stub(w: World) -> MarketplaceServiceStub:
    return MarketplaceServiceStub(w.channel)


def world_release(w: World) -> str:
    """A release of a listing of the owner, published once per world."""
    key = id(w.server)
    if key not in _releases:
        _releases[key] = publish_release(w, Who.OWNER, "license-world")
    return _releases[key]


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
    # Besides its own, a caller sees the licenses of the listings it owns.
    if who is not Who.ADMIN:
        owned = set(_owned_releases(w, who))
        assert all(x.acquirer == w.principal(who) or x.release in owned for x in reply.licenses)


def _owned_releases(w: World, who: Who) -> list[str]:
    listings = (
        _stub(w)
        .ListListings(
            mkt.ListListingsRequest(filter=f'publisher = "{w.principal(who)}"', page_size=1000), metadata=w.admin
        )
        .listings
    )
    names: list[str] = []
    for listing in listings:
        request = mkt.ListReleasesRequest(parent=listing.name, page_size=1000, show_yanked=True)
        names += [r.name for r in _stub(w).ListReleases(request, metadata=w.admin).releases]
    return names


def _revoke(w: World, cell: str) -> Target:
    who = _caller(w, cell)
    # A listing of the caller's own (the owner's is the world's), so that an allowed caller is its owner.
    release = world_release(w) if who in (Who.OWNER, Who.ADMIN) else publish_release(w, who, cell)
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
