"""A buyer's node across four real servers on localhost: publisher P, marketplace M, witness W, buyer B.

The owner exports a release on P (signed by the key P keeps for it, registered to the owner on M) and publishes
it on M, whose log W witnesses. B's trust root names M's marketplace key and M's log policy, copied from M's own
trust root. A buyer principal acquires a license on M for its key on B and imports the release into B with the
grant and its proof; then B meters what the terms limit (recall until the count, then refusal; export refused),
follows M's log (SyncMarketplaceLog) and acts on the yank and the revocation it reads there, and suspends the
licensed cubes once it has gone past maxOfflineSeconds without a fresh cosigned checkpoint. A marketplace that
rewrites its history and publishes without its witness is refused by B, and its cubes stay suspended.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from interchange._trust import current_root, propose, trust_keys
from memos_test_support import admin_token, authorized_channel, reason_of, start_server

from memos_grpc._proto.memos.v1 import cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import held_license_service_pb2 as h
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.held_license_service_pb2_grpc import HeldLicenseServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.interchange.dsse import parse_envelope
from memos_grpc.interchange.trust import Role, TrustRoot, parse_trust_root
from memos_grpc.marketplace.entries import Entry
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.server.app import MemosServer
from memos_grpc.store.database import Connection
from memos_grpc.transparency.cosignature import CosignatureVerifier
from memos_grpc.transparency.note import NoteVerifier
from memos_grpc.transparency.proof import TlogProof

ORIGIN = "market.test/log"
WITNESS_NAME = "witness.test"
FACTS = ("Rain follows a falling barometer", "Fog forms over cold water at dawn", "Hail needs strong updrafts")
#: Recall three times, search freely, export never; the node must sync within an hour.
TERMS = json.dumps(
    {
        "license": "CC-BY-4.0",
        "permission": [
            {"action": "import"},
            {"action": "recall", "constraint": [{"leftOperand": "count", "operator": "lteq", "rightOperand": 3}]},
            {"action": "search"},
        ],
        "prohibition": [{"action": "export"}],
        "maxOfflineSeconds": 3600,
    }
)


@dataclass
class Node:
    server: MemosServer
    admin: grpc.Channel
    channels: list[grpc.Channel] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)

    def channel(self, token: str) -> grpc.Channel:
        opened = authorized_channel(self.server.address, token)
        self.channels.append(opened)
        return opened

    def principal(self, principal_id: str) -> tuple[str, grpc.Channel]:
        governance = GovernanceServiceStub(self.admin)
        name = governance.CreatePrincipal(
            g.CreatePrincipalRequest(
                principal_id=principal_id, principal=principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER)
            )
        ).name
        token = governance.CreateCredential(g.CreateCredentialRequest(parent=name)).token
        self.tokens[name] = token
        return name, self.channel(token)


@dataclass
class World:
    tmp: Path
    embedder: Embedder
    publisher: Node
    market: Node
    witness: Node
    buyer: Node
    owner: grpc.Channel  # the owner on M
    alice_market: grpc.Channel  # the buyer principal on M
    alice: grpc.Channel  # the same principal on B
    alice_key: str  # its key on B
    release: str = ""
    bundle: bytes = b""

    def acquire(self, release: str | None = None, key: str | None = None) -> m.License:
        wanted = m.License(
            release=release or self.release, licensee="principals/alice", licensee_key=key or self.alice_key
        )
        reply: m.License = MarketplaceServiceStub(self.alice_market).AcquireLicense(
            m.AcquireLicenseRequest(license=wanted)
        )
        return reply

    def import_(self, space: str, license_: m.License, bundle: bytes | None = None) -> i.ImportBundleResponse:
        first = i.ImportBundleRequest(
            parent=space,
            license=i.ReleaseLicense(grant=license_.grant_envelope, proof=license_.tlog_proof),
            chunk=bundle if bundle is not None else self.bundle,
        )
        reply: i.ImportBundleResponse = InterchangeServiceStub(self.alice).ImportBundle(iter([first]))
        return reply

    def recall(self, space: str) -> list[str]:
        plan = SchedulerServiceStub(self.alice).Recall(
            s.RecallRequest(parent=space, query="what does the weather do", token_budget=1000)
        )
        return sorted(item.cube.plaintext.text for item in plan.items)

    def search(self, space: str) -> list[str]:
        reply = VaultServiceStub(self.alice).SearchCubes(v.SearchCubesRequest(parent=space, text="weather", top_k=10))
        return sorted(r.cube.plaintext.text for r in reply.results)

    def sync(self) -> h.FollowedLog:
        reply: h.FollowedLog = HeldLicenseServiceStub(self.buyer.admin).SyncMarketplaceLog(
            h.SyncMarketplaceLogRequest()
        )
        return reply

    def held(self, license_: m.License) -> h.HeldLicense:
        name = "heldLicenses/" + license_.grant_digest.removeprefix("sha256:")
        reply: h.HeldLicense = HeldLicenseServiceStub(self.alice).GetHeldLicense(h.GetHeldLicenseRequest(name=name))
        return reply

    def space(self, space_id: str) -> str:
        return str(GovernanceServiceStub(self.alice).CreateSpace(g.CreateSpaceRequest(space_id=space_id)).name)


def _node(server: MemosServer) -> Node:
    return Node(server, authorized_channel(server.address, admin_token(server)))


def _trust_the_marketplace(buyer: Node, market: Node) -> None:
    """B's admin copies M's marketplace key and log policy from M's trust root into B's (a new version)."""
    published = GovernanceServiceStub(market.admin).GetTrustRoot(g.GetTrustRootRequest())
    theirs = parse_trust_root(parse_envelope(published.signed_envelope).payload)
    governance = GovernanceServiceStub(buyer.admin)
    ours = current_root(governance)
    keys = {**ours.keys, **{k: theirs.keys[k] for k in theirs.role("marketplace").key_ids}}
    roles = {**ours.roles, "marketplace": Role(theirs.role("marketplace").key_ids, 1)}
    propose(governance, TrustRoot(ours.version + 1, ours.expires, keys, roles, theirs.marketplace_logs))


def _publish(world: World, owner_p: grpc.Channel, owner_name: str) -> None:
    """The owner's release: three facts exported on P as release weather/1.0.0, published on M."""
    governance = GovernanceServiceStub(owner_p)
    key = governance.CreateSigningKey(g.CreateSigningKeyRequest(parent=owner_name))
    GovernanceServiceStub(world.market.admin).RegisterPublicKey(
        g.RegisterPublicKeyRequest(parent=owner_name, public_key=principal_pb2.PublicKey(public_key=key.public_key))
    )
    space = governance.CreateSpace(g.CreateSpaceRequest(space_id="wares")).name
    VaultServiceStub(owner_p).BatchCreateCubes(
        v.BatchCreateCubesRequest(
            parent=space,
            requests=[
                v.CreateCubeRequest(cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=fact)))
                for fact in FACTS
            ],
        )
    )
    info = i.ReleaseInfo(
        listing="listings/weather",
        release="1.0.0",
        license="CC-BY-4.0",
        terms_digest="sha256:" + hashlib.sha256(TERMS.encode()).hexdigest(),
    )
    world.bundle = b"".join(
        r.chunk for r in InterchangeServiceStub(owner_p).ExportBundle(i.ExportBundleRequest(parent=space, release=info))
    )
    market = MarketplaceServiceStub(world.owner)
    market.CreateListing(
        m.CreateListingRequest(listing_id="weather", listing=m.Listing(title="Weather facts", tags=["weather"]))
    )
    request = m.PublishReleaseRequest(
        parent="listings/weather", release_id="1.0.0", terms_json=TERMS, chunk=world.bundle
    )
    world.release = str(market.PublishRelease(iter([request])).release.name)


@pytest.fixture
def world(tmp_path: Path, embedder: Embedder) -> Iterator[World]:
    log_key, witness_key = SigningKey.generate(), SigningKey.generate()
    log_key.write(tmp_path / "market" / "keys" / "log.key")
    witness_key.write(tmp_path / "witness" / "keys" / "witness.key")
    log_vkey = NoteVerifier.for_key(ORIGIN, log_key.public_key).vkey()
    witness_vkey = CosignatureVerifier.for_key(WITNESS_NAME, witness_key.public_key).vkey()
    nodes: list[Node] = []
    try:
        witness = _node(start_server(tmp_path / "witness", embedder, witness_logs=log_vkey, witness_name=WITNESS_NAME))
        nodes.append(witness)
        market = _node(
            start_server(
                tmp_path / "market",
                embedder,
                marketplace_enabled=True,
                marketplace_log_origin=ORIGIN,
                marketplace_witnesses=f"{witness_vkey}@{witness.server.address}",
                marketplace_witness_timeout_seconds=5,
                allow_plaintext_peers=True,
            )
        )
        nodes.append(market)
        publisher = _node(start_server(tmp_path / "publisher", embedder))
        nodes.append(publisher)
        owner_name, owner = market.principal("owner")
        _, owner_p = publisher.principal("owner")
        _, alice_market = market.principal("alice")
        follower, _ = market.principal("buyer-node")
        token = GovernanceServiceStub(market.admin).CreateCredential(g.CreateCredentialRequest(parent=follower))
        token_file = tmp_path / "follow.token"
        token_file.write_text(token.token)
        token_file.chmod(0o600)
        buyer = _node(
            start_server(
                tmp_path / "buyer",
                embedder,
                marketplace_follow=market.server.address,
                marketplace_follow_token_file=str(token_file),
                marketplace_sync_seconds=3600,  # syncs happen when the test asks (SyncMarketplaceLog)
                allow_plaintext_peers=True,
            )
        )
        nodes.append(buyer)
        alice_name, alice = buyer.principal("alice")
        alice_key = GovernanceServiceStub(buyer.admin).CreateSigningKey(g.CreateSigningKeyRequest(parent=alice_name))
        _trust_the_marketplace(buyer, market)
        world = World(
            tmp_path, embedder, publisher, market, witness, buyer, owner, alice_market, alice, alice_key.key_id
        )
        _publish(world, owner_p, owner_name)
        yield world
    finally:
        for node in reversed(nodes):
            for opened in (node.admin, *node.channels):
                opened.close()
            node.server.stop(grace=1)


def _forged(n: int) -> bytes:
    return Entry("grant", f"sha256:{n:064x}", f"sha256:{n + 7:064x}", "b" * 64).encode()


def _refused(call: object, *args: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call(*args)  # type: ignore[operator]
    return refused.value.code(), reason_of(refused.value)


def test_a_licensed_release_is_imported_metered_and_revoked_across_four_servers(world: World) -> None:
    # Found on the marketplace by text, acquired for alice's key on B, imported there with grant and proof.
    found = MarketplaceServiceStub(world.alice_market).SearchListings(m.SearchListingsRequest(text="weather facts"))
    assert [r.listing.name for r in found.results] == ["listings/weather"]
    license_ = world.acquire()
    space = world.space("bought")
    imported = world.import_(space, license_)
    assert imported.created_count == len(FACTS)
    listed = VaultServiceStub(world.alice).ListCubes(v.ListCubesRequest(parent=space))
    assert {c.license.release for c in listed.cubes} == {world.release}
    assert {c.license.grant_digest for c in listed.cubes} == {license_.grant_digest}
    held = world.held(license_)
    assert held.state == h.HELD_LICENSE_STATE_ACTIVE and held.cube_count == len(FACTS)

    # Search is unmetered by these terms; recall is counted, three times, then the cubes leave Recall.
    assert world.search(space) == sorted(FACTS)
    for _ in range(3):
        assert world.recall(space) == sorted(FACTS)
    assert world.recall(space) == []
    assert world.search(space) == sorted(FACTS)
    uses = {a.action: a for a in world.held(license_).actions}
    assert (uses["recall"].uses, uses["recall"].allowed, uses["recall"].reason) == (3, False, "LICENSE_LIMIT_REACHED")
    assert (uses["import"].uses, uses["search"].uses) == (1, 2)
    # Counted in the audit log too, one event per counted use.
    events = GovernanceServiceStub(world.buyer.admin).ListAuditEvents(
        g.ListAuditEventsRequest(page_size=1000, filter='method = "license.recall"')
    )
    assert len(events.events) == 3 and {e.resource for e in events.events} == {held.name}
    # Export is prohibited: refused with its reason, and nothing counted.
    code, reason = _refused(
        lambda: b"".join(
            r.chunk for r in InterchangeServiceStub(world.alice).ExportBundle(i.ExportBundleRequest(parent=space))
        )
    )
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "LICENSE_ACTION_NOT_PERMITTED")

    # The owner yanks the release: once B has synced, it refuses to import it again (its cubes stay usable).
    MarketplaceServiceStub(world.owner).YankRelease(m.YankReleaseRequest(name=world.release, reason="wrong units"))
    again = world.acquire()  # still acquirable by its exact name
    followed = world.sync()
    assert followed.origin == ORIGIN and followed.last_error_reason == ""
    assert world.held(license_).release_yanked
    code, reason = _refused(world.import_, world.space("again"), again)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RELEASE_YANKED")

    # The owner revokes alice's license: after B's next sync its cubes leave Search, and their uses are refused.
    MarketplaceServiceStub(world.owner).RevokeLicense(m.RevokeLicenseRequest(name=license_.name, reason="unpaid"))
    assert world.search(space) == sorted(FACTS), "B acts on the log it has read, not before"
    world.sync()
    assert world.search(space) == [] and world.recall(space) == []
    revoked = world.held(license_)
    assert (revoked.state, revoked.state_reason) == (h.HELD_LICENSE_STATE_REVOKED, "LICENSE_REVOKED")


def test_past_max_offline_seconds_without_a_fresh_checkpoint_the_cubes_are_suspended(world: World) -> None:
    license_ = world.acquire()
    space = world.space("bought")
    world.import_(space, license_)
    assert world.recall(space) == sorted(FACTS)
    vault = world.buyer.server.vault
    assert vault is not None
    real = vault.context.clock
    vault.context.clock = lambda: real() + timedelta(seconds=3601)  # an hour later: the last sync is too old
    try:
        assert world.recall(space) == [] and world.search(space) == []
        held = world.held(license_)
        assert (held.state, held.state_reason) == (h.HELD_LICENSE_STATE_SUSPENDED, "LICENSE_SUSPENDED")
    finally:
        vault.context.clock = real
    # Suspension is a matter of time, not a state left behind: with a fresh checkpoint they are back.
    assert world.sync().fresh_time.seconds > 0
    assert world.recall(space) == sorted(FACTS)


def test_the_buyer_refuses_what_it_cannot_verify_and_changes_nothing(world: World) -> None:
    space = world.space("bought")
    license_ = world.acquire()
    stub = VaultServiceStub(world.alice)

    def nothing_imported() -> bool:
        return not stub.ListCubes(v.ListCubesRequest(parent=space)).cubes

    # A tampered release: one byte of a cube entry changed.
    tampered = bytearray(world.bundle)
    at = tampered.find(FACTS[0].encode())
    tampered[at] ^= 0x20
    code, reason = _refused(world.import_, space, license_, bytes(tampered))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and reason.startswith("BUNDLE_")
    # A grant for another licensee (the same principal with a key that is not alice's on B).
    other = world.acquire(key=SigningKey.generate().key_id)
    assert _refused(world.import_, space, other) == (grpc.StatusCode.FAILED_PRECONDITION, "LICENSEE_KEY_NOT_REGISTERED")
    # A proof for another entry: the other grant's proof with alice's.
    assert other.tlog_proof != license_.tlog_proof
    mixed = m.License()
    mixed.CopyFrom(license_)
    mixed.tlog_proof = other.tlog_proof
    assert _refused(world.import_, space, mixed)[1] == "TLOG_PROOF_INCLUSION_INVALID"
    # A release without a license: refused even when B trusts the node that signed it.
    plain = i.ImportBundleRequest(parent=space, chunk=world.bundle)
    code, reason = _refused(InterchangeServiceStub(world.alice).ImportBundle, iter([plain]))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BUNDLE_UNTRUSTED_SIGNER")
    publisher_root = GovernanceServiceStub(world.publisher.admin).GetTrustRoot(g.GetTrustRootRequest())
    trust_keys(GovernanceServiceStub(world.buyer.admin), publisher_root)
    code, reason = _refused(InterchangeServiceStub(world.alice).ImportBundle, iter([plain]))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RELEASE_LICENSE_REQUIRED")
    assert nothing_imported()
    assert not HeldLicenseServiceStub(world.alice).ListHeldLicenses(h.ListHeldLicensesRequest()).held_licenses


def test_a_marketplace_that_forks_and_publishes_without_its_witness_is_refused(world: World) -> None:
    license_ = world.acquire()
    space = world.space("bought")
    world.import_(space, license_)
    accepted = world.sync()
    market = world.market.server
    assert market.vault is not None and market.vault.marketplace is not None
    node = market.vault.marketplace
    size = accepted.tree_size

    def rewrite_history(cursor: Connection) -> None:  # the test hook: the last entry replaced by others
        cursor.execute("DELETE FROM tlog_entries WHERE entry_index >= ?", [size - 1])
        cursor.execute("DELETE FROM tlog_nodes WHERE (node_index + 1) * (1 << level) > ?", [size - 1])
        cursor.execute("DELETE FROM tlog_checkpoints WHERE tree_size > ?", [size - 1])

    market.vault.context.database.write(rewrite_history)
    assert node.append([_forged(1), _forged(2)]) == [size - 1, size]
    # W refuses the forked checkpoint, so M publishes nothing new and B keeps what it had.
    assert world.sync().tree_size == size
    # M restarted without its witness publishes the forked history on its log key alone: B refuses it.
    address = market.address
    market.stop(grace=1)
    world.market.server = start_server(
        market.settings.data_dir,
        world.embedder,
        listen=address,
        marketplace_enabled=True,
        marketplace_log_origin=ORIGIN,
    )
    restarted = world.market.server.vault.marketplace  # type: ignore[union-attr]
    assert restarted is not None and restarted.wait_published(size + 1, timeout=30).checkpoint.size == size + 1
    code, reason = _refused(world.sync)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TLOG_QUORUM_NOT_MET")
    logs = HeldLicenseServiceStub(world.buyer.admin).ListFollowedLogs(h.ListFollowedLogsRequest()).logs
    assert [(f.tree_size, f.last_error_reason) for f in logs] == [(size, "TLOG_QUORUM_NOT_MET")]
    # The forked tree's checkpoint in a proof does not import either.
    forked = world.market.server.vault.marketplace.log.checkpoint()  # type: ignore[union-attr]
    proof = TlogProof.parse(license_.tlog_proof)
    replayed = m.License()
    replayed.CopyFrom(license_)
    replayed.tlog_proof = TlogProof(proof.index, proof.path, forked.note).text()
    assert _refused(world.import_, world.space("forked"), replayed)[1] in (
        "TLOG_PROOF_QUORUM_NOT_MET",
        "TLOG_PROOF_INCLUSION_INVALID",
    )


def test_the_buyer_node_pulls_a_licensed_release_from_the_marketplace_itself(world: World) -> None:
    """ImportRelease: B dials the marketplace it follows with alice's token there, reads her license and streams the
    release into the same licensed import; a token that may not read the license, or no token, imports nothing."""
    license_ = world.acquire()
    space = world.space("pulled")
    held = HeldLicenseServiceStub(world.alice)
    token = world.market.tokens["principals/alice"]
    request = h.ImportReleaseRequest(parent=space, license=license_.name, marketplace_token=token)
    pulled = held.ImportRelease(request)
    assert pulled.created_count == len(FACTS)
    assert world.search(space) == sorted(FACTS)
    assert world.held(license_).cube_count == len(FACTS)

    other = world.space("refused")
    assert _refused(held.ImportRelease, h.ImportReleaseRequest(parent=other, license=license_.name)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_MARKETPLACE_TOKEN",
    )
    bad = h.ImportReleaseRequest(parent=other, license="licenses/nope!", marketplace_token=token)
    assert _refused(held.ImportRelease, bad) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME")
    # M refuses a token it does not know (its code travels in the metadata); nothing is imported.
    stranger = h.ImportReleaseRequest(parent=other, license=license_.name, marketplace_token="not-a-token")
    assert _refused(held.ImportRelease, stranger) == (grpc.StatusCode.FAILED_PRECONDITION, "MARKETPLACE_REFUSED")
    assert not VaultServiceStub(world.alice).ListCubes(v.ListCubesRequest(parent=other)).cubes
