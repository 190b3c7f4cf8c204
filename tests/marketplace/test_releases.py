"""Releases across two real servers: a publisher node exports release bundles, the marketplace accepts them.

The publisher node keeps ``principals/pub``'s signing key (CreateSigningKey) and exports release bundles as
it; on the marketplace the same principal exists with that public key registered, owns the listing and
publishes. Each refusal (tampered bytes, a key not pinned, a statement naming another release, other bytes
under a taken id, a stranger) carries its reason and leaves the releases and the log as they were; the
returned proof verifies offline with the node's log policy.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from memos_test_support import admin_token, authorized_channel, reason_of, start_server

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, principal_pb2, vault_service_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.marketplace.entries import Entry
from memos_grpc.marketplace.entries import parse as parse_entry
from memos_grpc.marketplace.node import MarketplaceNode
from memos_grpc.marketplace.releases import Releases
from memos_grpc.server.app import MemosServer
from memos_grpc.transparency.policy import parse_policy
from memos_grpc.transparency.proof import verify_proof
from memos_grpc.vault.retention import sweep

TERMS = '{"license":"MIT","permission":[{"action":"import"},{"action":"recall"}],"maxOfflineSeconds":86400}'
OTHER_TERMS = '{"license":"Apache-2.0","permission":[{"action":"import"}],"maxOfflineSeconds":3600}'


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class World:
    publisher: MemosServer
    market: MemosServer
    space: str
    #: Exports on the publisher node as principals/pub (its kept key signs) and as pub2 (another kept key).
    export_pub: InterchangeServiceStub
    export_pub2: InterchangeServiceStub
    publisher_vault: VaultServiceStub
    #: MarketplaceService as pub (the listing's owner), as a stranger, and as the marketplace's admin.
    owner: MarketplaceServiceStub
    stranger: MarketplaceServiceStub
    admin: MarketplaceServiceStub
    pub_key: str
    channels: list[grpc.Channel]

    @property
    def node(self) -> MarketplaceNode:
        assert self.market.vault is not None and self.market.vault.marketplace is not None
        return self.market.vault.marketplace

    @property
    def releases(self) -> Releases:
        assert self.market.vault is not None and self.market.vault.releases is not None
        return self.market.vault.releases


def _principal(governance: GovernanceServiceStub, principal_id: str) -> tuple[str, str]:
    user = principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER)
    name = governance.CreatePrincipal(g.CreatePrincipalRequest(principal_id=principal_id, principal=user)).name
    return name, governance.CreateCredential(g.CreateCredentialRequest(parent=name)).token


@pytest.fixture
def world(tmp_path: Path, embedder: Embedder) -> Iterator[World]:
    publisher = start_server(tmp_path / "publisher", embedder)
    market = start_server(tmp_path / "market", embedder, marketplace_enabled=True, marketplace_log_origin="m.test/log")
    channels: list[grpc.Channel] = []

    def channel(server: MemosServer, token: str) -> grpc.Channel:
        opened = authorized_channel(server.address, token)
        channels.append(opened)
        return opened

    try:
        p_admin = channel(publisher, admin_token(publisher))
        p_gov = GovernanceServiceStub(p_admin)
        space = p_gov.CreateSpace(g.CreateSpaceRequest(space_id="wine")).name
        keys, stubs = {}, {}
        for principal_id in ("pub", "pub2"):
            name, token = _principal(p_gov, principal_id)
            own = channel(publisher, token)
            keys[principal_id] = GovernanceServiceStub(own).CreateSigningKey(g.CreateSigningKeyRequest(parent=name))
            stubs[principal_id] = InterchangeServiceStub(own)
        policy = access_pb2.AccessPolicy(
            bindings=[
                access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/admin"]),
                access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=["principals/pub", "principals/pub2"]),
            ]
        )
        p_gov.SetAccessPolicy(g.SetAccessPolicyRequest(resource=space, policy=policy))
        publisher_vault = VaultServiceStub(p_admin)
        add_cube(publisher_vault, space, "Rioja goes with roast lamb")

        m_admin = channel(market, admin_token(market))
        m_gov = GovernanceServiceStub(m_admin)
        pub, pub_token = _principal(m_gov, "pub")
        m_gov.RegisterPublicKey(g.RegisterPublicKeyRequest(parent=pub, public_key=keys["pub"]))
        # pub2's key is registered to pub too, but the first release pins only the key that signed it.
        m_gov.RegisterPublicKey(g.RegisterPublicKeyRequest(parent=pub, public_key=keys["pub2"]))
        _, stranger_token = _principal(m_gov, "stranger")
        owner = MarketplaceServiceStub(channel(market, pub_token))
        owner.CreateListing(m.CreateListingRequest(listing_id="wine", listing=m.Listing(title="Wine pairings")))
        yield World(
            publisher,
            market,
            space,
            stubs["pub"],
            stubs["pub2"],
            publisher_vault,
            owner,
            MarketplaceServiceStub(channel(market, stranger_token)),
            MarketplaceServiceStub(m_admin),
            keys["pub"].key_id,
            channels,
        )
    finally:
        for opened in channels:
            opened.close()
        market.stop(grace=1)
        publisher.stop(grace=1)


def add_cube(stub: VaultServiceStub, space: str, text: str) -> None:
    cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text))
    stub.CreateCube(vault_service_pb2.CreateCubeRequest(parent=space, cube=cube))


def export(stub: InterchangeServiceStub, space: str, release: str, terms: str = TERMS, license: str = "MIT") -> bytes:
    info = i.ReleaseInfo(listing="listings/wine", release=release, license=license, terms_digest=digest_of(terms))
    return b"".join(r.chunk for r in stub.ExportBundle(i.ExportBundleRequest(parent=space, release=info)))


def publish(
    stub: MarketplaceServiceStub, bundle: bytes, release: str, terms: str = TERMS, **header: object
) -> m.PublishReleaseResponse:
    first = m.PublishReleaseRequest(
        parent="listings/wine",
        release_id=release,
        terms_json=terms,
        chunk=bundle[:1000],
        **header,  # type: ignore[arg-type]
    )
    rest = [m.PublishReleaseRequest(chunk=bundle[n : n + 4096]) for n in range(1000, len(bundle), 4096)]
    return stub.PublishRelease(iter([first, *rest]))


def refused(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code(), reason_of(caught.value)


def state(w: World) -> tuple[int, list[str], m.Listing]:
    """What a refusal must leave as it was: the log's size, the releases (yanked too) and the listing."""
    releases = w.admin.ListReleases(m.ListReleasesRequest(parent="listings/wine", show_yanked=True)).releases
    listing = w.admin.GetListing(m.GetListingRequest(name="listings/wine"))
    return w.node.log.size(), [r.name for r in releases], listing


def test_publish_pins_logs_and_proves_then_the_same_bytes_return_the_same_release(world: World) -> None:
    bundle = export(world.export_pub, world.space, "1.0.0")
    reply = publish(world.owner, bundle, "1.0.0", expected_digest="sha256:" + hashlib.sha256(bundle).hexdigest())
    release = reply.release
    assert release.name == "listings/wine/releases/1.0.0" and release.state == m.Release.STATE_ACTIVE
    assert release.bundle_digest == "sha256:" + hashlib.sha256(bundle).hexdigest()
    assert release.size_bytes == len(bundle) and release.cube_count == 1
    assert list(release.memory_types) == [cube_pb2.MEMORY_TYPE_PLAINTEXT]
    assert release.license == "MIT" and release.terms.json == TERMS and release.terms.digest == digest_of(TERMS)
    assert [p.action for p in release.terms.permissions] == [m.TERMS_ACTION_IMPORT, m.TERMS_ACTION_RECALL]
    assert release.publisher == "principals/pub" and list(release.signer_keys) == [world.pub_key]
    assert reply.verification.valid
    # The proof verifies offline: the publish entry, under the log's key and policy.
    entry = Entry("publish", release.statement_digest, release.statement_digest, world.pub_key).encode()
    assert world.node.log.entries(release.log_index, release.log_index + 1) == [entry]
    policy = parse_policy(world.node.policy_text())
    report = verify_proof(entry, reply.tlog_proof, world.node.log_verifier, policy, {}, datetime.now(UTC), 600)
    assert report, report.shortfalls
    listing = world.owner.GetListing(m.GetListingRequest(name="listings/wine"))
    assert list(listing.publisher_keys) == [world.pub_key] and listing.publisher_threshold == 1
    # Pinning the keys is a logged key change of its own, right after the publish, digesting what it records.
    ((key_index, record),) = world.releases.key_changes("wine")
    assert key_index == release.log_index + 1
    assert json.loads(record) | {"changeTime": ""} == {
        "listing": "listings/wine",
        "publisherKeys": [world.pub_key],
        "release": release.name,
        "changeTime": "",
    }
    change = "sha256:" + hashlib.sha256(record).hexdigest()
    key_entry = Entry("key", change, change, world.node.marketplace_key.key_id).encode()
    assert world.node.log.entries(key_index, key_index + 1) == [key_entry]
    assert (listing.latest_release, listing.license, list(listing.license_ids)) == (release.name, "MIT", ["MIT"])
    assert listing.release_count == 1 and list(listing.memory_types) == [cube_pb2.MEMORY_TYPE_PLAINTEXT]
    filtered = world.stranger.ListListings(m.ListListingsRequest(filter='license_ids = "MIT" memory_types = PLAINTEXT'))
    assert [x.name for x in filtered.listings] == ["listings/wine"]
    assert world.stranger.GetRelease(m.GetReleaseRequest(name=release.name)) == release
    # The threshold was fixed when the first release pinned the keys.
    threshold = m.UpdateListingRequest(
        listing=m.Listing(name="listings/wine", publisher_threshold=2),
        update_mask=field_mask_pb2.FieldMask(paths=["publisher_threshold"]),
    )
    assert refused(lambda: world.owner.UpdateListing(threshold)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_THRESHOLD",
    )

    before = state(world)
    again = publish(world.owner, bundle, "1.0.0")
    assert again.release == release and again.tlog_proof == reply.tlog_proof
    assert state(world) == before


def test_refusals_change_nothing(world: World) -> None:
    first = export(world.export_pub, world.space, "1.0.0")
    publish(world.owner, first, "1.0.0")
    add_cube(world.publisher_vault, world.space, "Sauternes with blue cheese")
    before = state(world)

    # Other bytes under the taken id.
    other = export(world.export_pub, world.space, "1.0.0")
    assert other != first
    assert refused(lambda: publish(world.owner, other, "1.0.0")) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "RELEASE_ALREADY_EXISTS",
    )
    # A tampered bundle: one byte of a cube entry changed.
    good = export(world.export_pub, world.space, "1.1.0")
    at = good.index(b"Sauternes")
    tampered = good[:at] + b"s" + good[at + 1 :]
    code, reason = refused(lambda: publish(world.owner, tampered, "1.1.0"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and reason == "BUNDLE_DIGEST_MISMATCH"
    # Signed by a key registered to the owner that the first release did not pin.
    unpinned = export(world.export_pub2, world.space, "1.1.0")
    assert refused(lambda: publish(world.owner, unpinned, "1.1.0")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "PUBLISHER_KEY_NOT_PINNED",
    )
    # A statement naming another release id, or other terms, than the request.
    assert refused(lambda: publish(world.owner, good, "1.2.0")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "RELEASE_STATEMENT_MISMATCH",
    )
    assert refused(lambda: publish(world.owner, good, "1.1.0", OTHER_TERMS)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "RELEASE_STATEMENT_MISMATCH",
    )
    # Bad terms, a stranger, a digest the bytes do not have, a bad id.
    assert refused(lambda: publish(world.owner, good, "1.1.0", '{"license":"MIT"}'))[1] == "TERMS_MISSING_MEMBER"
    assert refused(lambda: publish(world.stranger, good, "1.1.0")) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "LISTING_OWNER_REQUIRED",
    )
    wrong = "sha256:" + "0" * 64
    assert refused(lambda: publish(world.owner, good, "1.1.0", expected_digest=wrong))[1] == "PAYLOAD_DIGEST_MISMATCH"
    assert refused(lambda: publish(world.owner, good, "v1.1"))[1] == "INVALID_NAME"
    # validate_only checks everything and stores nothing.
    checked = publish(world.owner, good, "1.1.0", validate_only=True)
    assert checked.release.name == "listings/wine/releases/1.1.0" and not checked.tlog_proof
    assert state(world) == before
    # What was refused was not kept either: the good bytes publish now.
    assert publish(world.owner, good, "1.1.0").release.log_index == before[0]


def test_the_first_release_needs_a_key_registered_to_the_owner(world: World) -> None:
    before = state(world)
    # Exported by the publisher node's admin: only its node key signs, and the marketplace knows no such key.
    admin = authorized_channel(world.publisher.address, admin_token(world.publisher))
    try:
        bundle = export(InterchangeServiceStub(admin), world.space, "1.0.0")
    finally:
        admin.close()
    assert refused(lambda: publish(world.owner, bundle, "1.0.0")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "PUBLISHER_KEY_NOT_PINNED",
    )
    assert state(world) == before


def test_releases_list_newest_first_yank_and_download(world: World) -> None:
    bundles = {}
    for version in ("1.0.0", "1.1.0-rc.1", "1.1.0", "1.10.0"):
        add_cube(world.publisher_vault, world.space, f"note {version}")
        bundles[version] = export(world.export_pub, world.space, version)
        publish(world.owner, bundles[version], version)
    # Only the first release pinned keys: one key change in all.
    assert len(world.releases.key_changes("wine")) == 1
    listed = world.stranger.ListReleases(m.ListReleasesRequest(parent="listings/wine", page_size=3))
    assert [r.name.rsplit("/", 1)[1] for r in listed.releases] == ["1.10.0", "1.1.0", "1.1.0-rc.1"]
    rest = world.stranger.ListReleases(
        m.ListReleasesRequest(parent="listings/wine", page_size=3, page_token=listed.next_page_token)
    )
    assert [r.name.rsplit("/", 1)[1] for r in rest.releases] == ["1.0.0"] and not rest.next_page_token

    name = "listings/wine/releases/1.10.0"
    assert refused(lambda: world.stranger.YankRelease(m.YankReleaseRequest(name=name, reason="x"))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "LISTING_OWNER_REQUIRED",
    )
    assert refused(lambda: world.owner.YankRelease(m.YankReleaseRequest(name=name)))[1] == "MISSING_REASON"
    yanked = world.owner.YankRelease(m.YankReleaseRequest(name=name, reason="wrong vintage"))
    assert yanked.state == m.Release.STATE_YANKED and yanked.yank.reason == "wrong vintage"
    yank_entry = parse_entry(world.node.log.entries(yanked.yank.log_index, yanked.yank.log_index + 1)[0])
    assert (yank_entry.type, yank_entry.ref, yank_entry.subject) == ("yank", yanked.log_index, yanked.statement_digest)
    assert refused(lambda: world.owner.YankRelease(m.YankReleaseRequest(name=name, reason="again"))) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "RELEASE_ALREADY_YANKED",
    )
    # Out of lists and latest; still there by exact name, with its reason.
    shown = world.stranger.ListReleases(m.ListReleasesRequest(parent="listings/wine"))
    assert name not in [r.name for r in shown.releases]
    with_yanked = world.stranger.ListReleases(m.ListReleasesRequest(parent="listings/wine", show_yanked=True))
    assert with_yanked.releases[0] == yanked
    assert world.stranger.GetRelease(m.GetReleaseRequest(name=name)) == yanked
    listing = world.stranger.GetListing(m.GetListingRequest(name="listings/wine"))
    assert listing.latest_release == "listings/wine/releases/1.1.0" and listing.release_count == 4
    only_yanked = m.ListReleasesRequest(parent="listings/wine", show_yanked=True, filter="state = YANKED")
    assert [r.name for r in world.stranger.ListReleases(only_yanked).releases] == [name]

    # Download: the owner (and admins) may; a stranger needs a license it acquired.
    pieces = list(world.owner.DownloadRelease(m.DownloadReleaseRequest(name=name)))
    assert pieces[0].release == yanked and b"".join(p.chunk for p in pieces[1:]) == bundles["1.10.0"]
    assert refused(lambda: list(world.stranger.DownloadRelease(m.DownloadReleaseRequest(name=name)))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "LICENSE_REQUIRED",
    )
    wanted = m.License(release=name, licensee="principals/buyer", licensee_key=uuid.uuid4().hex * 2)
    license = world.stranger.AcquireLicense(m.AcquireLicenseRequest(license=wanted))
    got = list(world.stranger.DownloadRelease(m.DownloadReleaseRequest(name=name, license=license.name)))
    assert b"".join(p.chunk for p in got[1:]) == bundles["1.10.0"]
    other = "listings/wine/releases/1.0.0"  # the license is of 1.10.0 only
    assert refused(
        lambda: list(world.stranger.DownloadRelease(m.DownloadReleaseRequest(name=other, license=license.name)))
    ) == (grpc.StatusCode.PERMISSION_DENIED, "LICENSE_REQUIRED")


def test_a_payload_of_the_same_bytes_let_go_keeps_the_release_bundle(world: World) -> None:
    """The bundle lives in the content-addressed blob store: the same bytes uploaded as a payload on the
    marketplace node, never bound, and swept past the grace period must leave the release's file in place."""
    bundle = export(world.export_pub, world.space, "1.0.0")
    name = publish(world.owner, bundle, "1.0.0").release.name
    market = world.market
    assert market.vault is not None
    admin = authorized_channel(market.address, admin_token(market))
    try:
        governance, vault = GovernanceServiceStub(admin), VaultServiceStub(admin)
        space = governance.CreateSpace(g.CreateSpaceRequest(space_id="uploads")).name
        written = vault.WritePayload(iter([vault_service_pb2.WritePayloadRequest(parent=space, data=bundle)]))
        assert written.blob.digest == "sha256:" + hashlib.sha256(bundle).hexdigest()
    finally:
        admin.close()
    real = market.vault.context.clock
    later = real() + timedelta(seconds=market.settings.blob_grace_seconds + 60)
    market.vault.context.clock = lambda: later
    try:
        sweep(market.vault.context)
    finally:
        market.vault.context.clock = real
    pieces = list(world.owner.DownloadRelease(m.DownloadReleaseRequest(name=name)))
    assert b"".join(p.chunk for p in pieces) == bundle
