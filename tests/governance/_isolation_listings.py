"""The isolation matrix's rows for listings and releases.

Every authenticated principal may create, read, list and search listings and read releases; who changes a
listing, publishes, yanks and downloads (its owner, admins, and for downloads a license holder) the component
decides. So each cell that changes or downloads acts on a listing of its caller's own (the admin stands in for
callers refused before any rule applies). A release is published for real: the caller keeps a signing key
on the world's server (CreateSigningKey), exports a release bundle from a space of its own, and publishes it.
"""

from __future__ import annotations

import hashlib
import uuid

import grpc
from _isolation_world import Access, Row, Target, Who, World, assert_effect
from google.protobuf import field_mask_pb2

from memos_grpc._proto.memos.v1 import cube_pb2, vault_service_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as mkt
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub

_M = "/memos.v1.MarketplaceService/"
_TERMS = '{"license":"MIT","permission":[{"action":"import"}],"maxOfflineSeconds":3600}'
_DIGEST = "sha256:" + hashlib.sha256(_TERMS.encode()).hexdigest()
_spaces: dict[tuple[int, Who], str] = {}


def _caller(w: World, cell: str) -> Who:
    who = Who(cell.split("-", 1)[1])
    return who if w.principal(who) else Who.ADMIN


def _stub(w: World) -> MarketplaceServiceStub:
    return MarketplaceServiceStub(w.channel)


def _listing(w: World, who: Who, cell: str) -> str:
    """A new listing ``who`` owns; returns its name."""
    listing_id = "x" + hashlib.sha256(f"{cell}-{uuid.uuid4()}".encode()).hexdigest()[:12]
    made = _stub(w).CreateListing(
        mkt.CreateListingRequest(listing_id=listing_id, listing=mkt.Listing(title=f"facts of {cell}")),
        metadata=w.md(who),
    )
    return str(made.name)


def _space(w: World, who: Who) -> str:
    """A space of ``who``'s own holding one cube, and a signing key the server keeps for it (once per world)."""
    key = (id(w.server), who)
    if key not in _spaces:
        try:
            w.governance.CreateSigningKey(g.CreateSigningKeyRequest(parent=w.principal(who)), metadata=w.md(who))
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        space = w.governance.CreateSpace(
            g.CreateSpaceRequest(space_id=f"rel-{who.value}-{uuid.uuid4().hex[:6]}"), metadata=w.md(who)
        ).name
        cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=f"what {who.value} sells"))
        w.vault.CreateCube(vault_service_pb2.CreateCubeRequest(parent=space, cube=cube), metadata=w.md(who))
        _spaces[key] = space
    return _spaces[key]


def _bundle(w: World, who: Who, listing: str, release: str) -> bytes:
    info = i.ReleaseInfo(listing=listing, release=release, license="MIT", terms_digest=_DIGEST)
    request = i.ExportBundleRequest(parent=_space(w, who), release=info)
    return b"".join(r.chunk for r in InterchangeServiceStub(w.channel).ExportBundle(request, metadata=w.md(who)))


def _publish_request(listing: str, bundle: bytes) -> list[mkt.PublishReleaseRequest]:
    return [mkt.PublishReleaseRequest(parent=listing, release_id="1.0.0", terms_json=_TERMS, chunk=bundle)]


def _release(w: World, who: Who, cell: str) -> str:
    """A published release of a new listing ``who`` owns."""
    listing = _listing(w, who, cell)
    reply = _stub(w).PublishRelease(
        iter(_publish_request(listing, _bundle(w, who, listing, "1.0.0"))), metadata=w.md(who)
    )
    return str(reply.release.name)


def _count(w: World) -> int:
    return len(_stub(w).ListListings(mkt.ListListingsRequest(page_size=1000), metadata=w.admin).listings)


def _create(w: World, cell: str) -> Target:
    listing_id = "x" + hashlib.sha256(f"{cell}-{uuid.uuid4()}".encode()).hexdigest()[:12]
    before = _count(w)
    request = mkt.CreateListingRequest(listing_id=listing_id, listing=mkt.Listing(title="new"))
    return Target(request, lambda allowed: assert_effect(_count(w), before + int(allowed)))


def _owned_by_caller(w: World, who: Who, reply: mkt.Listing) -> None:
    assert reply.owner == w.principal(who) and reply.title == "new"


def _get(w: World, cell: str) -> Target:
    return Target(mkt.GetListingRequest(name=_listing(w, Who.OWNER, cell)))


def _is_a_listing(_w: World, _who: Who, reply: mkt.Listing) -> None:
    assert reply.name.startswith("listings/x") and reply.title.startswith("facts of")


def _lists(_w: World, _who: Who, reply: mkt.ListListingsResponse) -> None:
    assert len(reply.listings) >= 1


def _finds(_w: World, _who: Who, reply: mkt.SearchListingsResponse) -> None:
    assert reply.results and all(r.listing.name.startswith("listings/") for r in reply.results)


def _update(w: World, cell: str) -> Target:
    name = _listing(w, _caller(w, cell), cell)
    request = mkt.UpdateListingRequest(
        listing=mkt.Listing(name=name, title="renamed"), update_mask=field_mask_pb2.FieldMask(paths=["title"])
    )

    def effect(allowed: bool) -> None:
        title = _stub(w).GetListing(mkt.GetListingRequest(name=name), metadata=w.admin).title
        assert_effect(title, "renamed" if allowed else f"facts of {cell}")

    return Target(request, effect)


def _publish(w: World, cell: str) -> Target:
    who = _caller(w, cell)
    listing = _listing(w, who, cell)
    bundle = _bundle(w, who, listing, "1.0.0")

    def effect(allowed: bool) -> None:
        count = _stub(w).GetListing(mkt.GetListingRequest(name=listing), metadata=w.admin).release_count
        assert_effect(count, int(allowed))

    return Target(_publish_request(listing, bundle), effect)


def _is_published(w: World, who: Who, reply: mkt.PublishReleaseResponse) -> None:
    assert reply.release.publisher == w.principal(who) and reply.tlog_proof.startswith("c2sp.org/tlog-proof@v1\n")


def _get_release(w: World, cell: str) -> Target:
    return Target(mkt.GetReleaseRequest(name=_release(w, Who.OWNER, cell)))


def _is_a_release(_w: World, _who: Who, reply: mkt.Release) -> None:
    assert reply.state == mkt.Release.STATE_ACTIVE and reply.log_index >= 0 and reply.bundle_digest


def _list_releases(w: World, cell: str) -> Target:
    name = _release(w, Who.OWNER, cell)
    return Target(mkt.ListReleasesRequest(parent=name.split("/releases/")[0]))


def _lists_one(_w: World, _who: Who, reply: mkt.ListReleasesResponse) -> None:
    assert [r.name.rsplit("/", 1)[1] for r in reply.releases] == ["1.0.0"]


def _download(w: World, cell: str) -> Target:
    return Target(mkt.DownloadReleaseRequest(name=_release(w, _caller(w, cell), cell)))


def _is_the_bundle(_w: World, _who: Who, reply: list[mkt.DownloadReleaseResponse]) -> None:
    data = b"".join(piece.chunk for piece in reply[1:])
    assert reply[0].release.bundle_digest == "sha256:" + hashlib.sha256(data).hexdigest()


def _yank(w: World, cell: str) -> Target:
    name = _release(w, _caller(w, cell), cell)

    def effect(allowed: bool) -> None:
        state = _stub(w).GetRelease(mkt.GetReleaseRequest(name=name), metadata=w.admin).state
        assert_effect(state, mkt.Release.STATE_YANKED if allowed else mkt.Release.STATE_ACTIVE)

    return Target(mkt.YankReleaseRequest(name=name, reason="superseded"), effect)


def _is_yanked(_w: World, _who: Who, reply: mkt.Release) -> None:
    assert reply.state == mkt.Release.STATE_YANKED and reply.yank.reason == "superseded"


LISTING_ROWS = [
    Row(_M + "CreateListing", Access.AUTHENTICATED, True, _create, _owned_by_caller),
    Row(_M + "GetListing", Access.AUTHENTICATED, False, _get, _is_a_listing),
    Row(_M + "ListListings", Access.AUTHENTICATED, False, lambda _w, _c: Target(mkt.ListListingsRequest()), _lists),
    Row(
        _M + "SearchListings",
        Access.AUTHENTICATED,
        False,
        lambda _w, _c: Target(mkt.SearchListingsRequest(text="facts")),
        _finds,
    ),
    Row(_M + "UpdateListing", Access.AUTHENTICATED, True, _update),
    Row(_M + "PublishRelease", Access.AUTHENTICATED, True, _publish, _is_published),
    Row(_M + "GetRelease", Access.AUTHENTICATED, False, _get_release, _is_a_release),
    Row(_M + "ListReleases", Access.AUTHENTICATED, False, _list_releases, _lists_one),
    Row(_M + "DownloadRelease", Access.AUTHENTICATED, True, _download, _is_the_bundle),
    Row(_M + "YankRelease", Access.AUTHENTICATED, True, _yank, _is_yanked),
]
