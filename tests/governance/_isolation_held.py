"""The isolation matrix's rows for HeldLicenseService, and the held licenses its cells read.

The world's server is a marketplace whose trust root names its own marketplace key and log policy, so it is
also a buyer of itself: a principal acquires a license of the world's release for a key registered to it,
downloads the release and imports it into a space of its own with the grant and proof. Every authenticated
principal may call GetHeldLicense and ListHeldLicenses; the component shows a held license to its licensee and
to admins only, so each cell reads one its caller holds. Following the log (the server follows its own, at its
fixed address) is an admin's call.
"""

from __future__ import annotations

import itertools
import time
import uuid

import grpc
from _isolation_interchange import cell_space, cube_count
from _isolation_licenses import world_release
from _isolation_world import Access, Row, Target, Who, World, assert_effect
from google.protobuf import timestamp_pb2

from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import held_license_service_pb2 as h
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as mkt
from memos_grpc._proto.memos.v1.held_license_service_pb2_grpc import HeldLicenseServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub

_H = "/memos.v1.HeldLicenseService/"
#: (server, principal) to the name of a held license of that principal's, imported once.
_held: dict[tuple[int, str], str] = {}
_windows = itertools.count()


def _caller(w: World, cell: str) -> Who:
    """The cell's caller when it is authenticated; the admin stands in for callers that are refused anyway."""
    who = Who(cell.split("-", 1)[1])
    return who if w.principal(who) else Who.ADMIN


def _key_of(w: World, who: Who) -> str:
    """The id of a key registered to ``who`` (the one the server keeps for it, made when it has none)."""
    principal = w.principal(who)
    try:
        made = w.governance.CreateSigningKey(g.CreateSigningKeyRequest(parent=principal), metadata=w.admin)
        return str(made.key_id)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
    keys = w.governance.GetPrincipal(g.GetPrincipalRequest(name=principal), metadata=w.admin).public_keys
    return str(keys[0].key_id)


def licensed_import(w: World, who: Who) -> tuple[str, str]:
    """A new held license of ``who``'s: the world's release acquired and imported; (held license, space)."""
    market = MarketplaceServiceStub(w.channel)
    release = world_release(w)
    # A window of its own, so that two grants acquired within one second are two licenses, not the same one.
    not_after = timestamp_pb2.Timestamp(seconds=int(time.time()) + 86400 + next(_windows))
    wanted = mkt.License(release=release, licensee=w.principal(who), licensee_key=_key_of(w, who), not_after=not_after)
    license_ = market.AcquireLicense(mkt.AcquireLicenseRequest(license=wanted), metadata=w.md(who))
    download = market.DownloadRelease(
        mkt.DownloadReleaseRequest(name=release, license=license_.name), metadata=w.md(who)
    )
    bundle = b"".join(r.chunk for r in download)
    space = w.governance.CreateSpace(
        g.CreateSpaceRequest(space_id=f"held-{who.value}-{uuid.uuid4().hex[:6]}"), metadata=w.md(who)
    ).name
    first = i.ImportBundleRequest(
        parent=space,
        license=i.ReleaseLicense(grant=license_.grant_envelope, proof=license_.tlog_proof),
        chunk=bundle,
    )
    InterchangeServiceStub(w.channel).ImportBundle(iter([first]), metadata=w.md(who))
    return "heldLicenses/" + license_.grant_digest.removeprefix("sha256:"), space


def held_license(w: World, who: Who) -> str:
    """A held license of ``who``'s, imported once per world."""
    key = (id(w.server), w.principal(who))
    if key not in _held:
        _held[key] = licensed_import(w, who)[0]
    return _held[key]


def _get(w: World, cell: str) -> Target:
    return Target(h.GetHeldLicenseRequest(name=held_license(w, _caller(w, cell))))


def _is_its_own(w: World, who: Who, reply: h.HeldLicense) -> None:
    assert reply.name == held_license(w, who) and reply.licensee == w.principal(who)
    assert reply.state == h.HELD_LICENSE_STATE_ACTIVE and reply.cube_count >= 1


def _list(w: World, cell: str) -> Target:
    held_license(w, _caller(w, cell))
    return Target(h.ListHeldLicensesRequest(page_size=1000))


def _sees_only_its_own(w: World, who: Who, reply: h.ListHeldLicensesResponse) -> None:
    assert held_license(w, who) in {x.name for x in reply.held_licenses}
    if who is not Who.ADMIN:
        assert {x.licensee for x in reply.held_licenses} == {w.principal(who)}


def _sync(w: World, cell: str) -> Target:
    return Target(h.SyncMarketplaceLogRequest())


def _is_the_log(w: World, _who: Who, reply: h.FollowedLog) -> None:
    assert w.server.vault is not None and w.server.vault.marketplace is not None
    assert reply.origin == w.server.vault.marketplace.origin and reply.tree_size >= 1 and not reply.last_error_reason


def _list_logs(w: World, cell: str) -> Target:
    held_license(w, Who.ADMIN)  # an import records the log its proof's checkpoint came from
    return Target(h.ListFollowedLogsRequest())


def _lists_the_log(w: World, _who: Who, reply: h.ListFollowedLogsResponse) -> None:
    assert w.server.vault is not None and w.server.vault.marketplace is not None
    assert [f.origin for f in reply.logs] == [w.server.vault.marketplace.origin]


def _acquired(w: World, who: Who) -> mkt.License:
    """A new license of the world's release for ``who``'s key here, acquired by ``who`` on the same server."""
    not_after = timestamp_pb2.Timestamp(seconds=int(time.time()) + 86400 + next(_windows))
    wanted = mkt.License(
        release=world_release(w), licensee=w.principal(who), licensee_key=_key_of(w, who), not_after=not_after
    )
    license_: mkt.License = MarketplaceServiceStub(w.channel).AcquireLicense(
        mkt.AcquireLicenseRequest(license=wanted), metadata=w.md(who)
    )
    return license_


def _import_release(w: World, cell: str) -> Target:
    """The cell's caller has the node pull a license of its own into a space the team shares (the caller's token
    on the marketplace is its token here: the server buys from itself)."""
    who = _caller(w, cell)
    space = cell_space(w, cell)
    license_ = _acquired(w, who)
    request = h.ImportReleaseRequest(parent=space, license=license_.name, marketplace_token=w.tokens[who])
    return Target(request, lambda allowed: assert_effect(cube_count(w, space), _release_cubes(w) if allowed else 0))


def _release_cubes(w: World) -> int:
    release = MarketplaceServiceStub(w.channel).GetRelease(
        mkt.GetReleaseRequest(name=world_release(w)), metadata=w.admin
    )
    return int(release.cube_count)


def _pulled(w: World, _who: Who, reply: i.ImportBundleResponse) -> None:
    assert reply.created_count == _release_cubes(w) and reply.verification.statement_digest


HELD_ROWS = [
    Row(_H + "GetHeldLicense", Access.AUTHENTICATED, False, _get, _is_its_own),
    Row(_H + "ListHeldLicenses", Access.AUTHENTICATED, False, _list, _sees_only_its_own),
    # The node downloads the release from the marketplace (itself here), an egress audited on its own, and the
    # import is a use of the license (its own event too).
    Row(
        _H + "ImportRelease",
        Access.SPACE_WRITE,
        True,
        _import_release,
        _pulled,
        ("/memos.v1.MarketplaceService/DownloadRelease", "license.import"),
    ),
    Row(_H + "SyncMarketplaceLog", Access.ADMIN, True, _sync, _is_the_log),
    Row(_H + "ListFollowedLogs", Access.ADMIN, False, _list_logs, _lists_the_log),
]


def stub(w: World) -> HeldLicenseServiceStub:
    return HeldLicenseServiceStub(w.channel)
