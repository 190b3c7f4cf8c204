"""kill -9 of a marketplace server while licenses are being acquired: nothing acknowledged is lost or rewritten.

A real marketplace server runs as a child process (``tests/server/_process.py``). Four client threads acquire
licenses in a loop; once 30 replies have come back, and while calls are in flight, the server is killed with
SIGKILL and started again on the same data directory. Every reply a client received is an acknowledgement: its
license must come back from GetLicense with the same grant and proof, its grant entry must be in the log at its
index under the restarted server's checkpoint, every checkpoint seen before the kill must be a prefix of the
restarted log (a consistency proof), no tree size may carry two roots, and the log must keep appending.
Everything is checked as a buyer checks it: signed notes under the log key the server logged at start.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from _market import OPEN_TERMS
from memos_test_support import authorized_channel
from server._process import ServerFactory, ServerProcess

from memos_grpc._proto.memos.v1 import cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc._proto.memos.v1 import transparency_log_service_pb2 as t
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub
from memos_grpc._proto.memos.v1.transparency_log_service_pb2_grpc import TransparencyLogServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.marketplace import entries
from memos_grpc.marketplace.terms import Terms
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.note import NoteVerifier, open_note, parse_vkey
from memos_grpc.transparency.policy import parse_policy
from memos_grpc.transparency.proof import TlogProof, verify_proof

ENV = {"MEMOS_MARKETPLACE_ENABLED": "true", "MEMOS_MARKETPLACE_LOG_ORIGIN": "crash.test/log"}
#: The log key and the marketplace key, as the node logs them at start.
KEYS_LINE = r"vkey (?P<vkey>\S+)\), marketplace key (?P<market>[0-9a-f]{64})"
BUYER_KEY = SigningKey.generate().key_id
THREADS = 4
#: Acknowledged licenses to wait for before the kill.
ACKED_BEFORE_KILL = 30
#: Long enough that no call ends by its deadline while the server lives: every call ends by a reply or the kill.
CALL_TIMEOUT = 60


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path)
    yield factory
    factory.close()


@dataclass
class Log:
    """What a buyer believes of the log: its key, and each tree size's root as signed checkpoints showed it."""

    verifier: NoteVerifier
    #: The id of the key that signs grants (the signer of every grant entry).
    marketplace_key: str
    roots: dict[int, bytes] = field(default_factory=dict)

    @classmethod
    def of(cls, server: ServerProcess) -> Log:
        keys = server.wait_for_log(KEYS_LINE)
        name, _, _, key = parse_vkey(keys["vkey"])
        return cls(NoteVerifier.for_key(name, key), keys["market"])

    def checkpoint(self, note: str) -> Checkpoint:
        """The checkpoint of a note the log key signed; a size must always show one root."""
        checkpoint = Checkpoint.parse(open_note(note, [self.verifier]).text)
        seen = self.roots.setdefault(checkpoint.size, checkpoint.root)
        assert seen == checkpoint.root, f"two roots signed for tree size {checkpoint.size}"
        return checkpoint

    def verify(self, entry: bytes, proof: str) -> None:
        policy = parse_policy(f"log {self.verifier.vkey()}\nquorum none\n")
        report = verify_proof(entry, proof, self.verifier, policy, {}, datetime.now(UTC), 600)
        assert report, report.shortfalls


@dataclass
class Acquired:
    """The licenses the server acknowledged (replies received), and the calls still waiting for one."""

    lock: threading.Condition = field(default_factory=threading.Condition)
    licenses: list[m.License] = field(default_factory=list)
    in_flight: int = 0
    killed: bool = False
    unexpected: list[str] = field(default_factory=list)


def principal(admin: grpc.Channel, who: str) -> tuple[str, str]:
    """A new user principal and its bearer token."""
    governance = GovernanceServiceStub(admin)
    name = governance.CreatePrincipal(
        g.CreatePrincipalRequest(
            principal_id=f"{who}-{uuid.uuid4().hex[:6]}",
            principal=principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER),
        )
    ).name
    return name, governance.CreateCredential(g.CreateCredentialRequest(parent=name)).token


def publish_release(server: ServerProcess) -> tuple[str, str]:
    """A listing and its release 1.0.0, exported and published by its owner; the release name and a buyer token."""
    admin = server.channel()
    owner_name, owner_token = principal(admin, "owner")
    owner = authorized_channel(server.address, owner_token)
    governance = GovernanceServiceStub(owner)
    governance.CreateSigningKey(g.CreateSigningKeyRequest(parent=owner_name))
    space = governance.CreateSpace(g.CreateSpaceRequest(space_id="wares")).name
    cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="Rain follows a falling barometer"))
    VaultServiceStub(owner).CreateCube(
        v.CreateCubeRequest(parent=space, cube=cube, vector=v.Vector(values=[1.0] + [0.0] * 383))
    )
    market = MarketplaceServiceStub(owner)
    market.CreateListing(m.CreateListingRequest(listing_id="weather", listing=m.Listing(title="weather facts")))
    info = i.ReleaseInfo(
        listing="listings/weather",
        release="1.0.0",
        license=Terms.parse(OPEN_TERMS.encode()).license,
        terms_digest="sha256:" + hashlib.sha256(OPEN_TERMS.encode()).hexdigest(),
    )
    export = InterchangeServiceStub(owner).ExportBundle(i.ExportBundleRequest(parent=space, release=info))
    bundle = b"".join(r.chunk for r in export)
    request = m.PublishReleaseRequest(
        parent="listings/weather", release_id="1.0.0", terms_json=OPEN_TERMS, chunk=bundle
    )
    release = market.PublishRelease(iter([request]), timeout=30).release.name
    _, buyer = principal(admin, "buyer")
    owner.close()
    return str(release), buyer


def acquire_until_killed(stub: MarketplaceServiceStub, release: str, acquired: Acquired) -> None:
    """Acquires licenses one after another until a call fails because the server was killed."""
    wanted = m.License(release=release, licensee="principals/buyer", licensee_key=BUYER_KEY)
    while True:
        with acquired.lock:
            if acquired.killed:
                return
            acquired.in_flight += 1
        try:
            reply = stub.AcquireLicense(m.AcquireLicenseRequest(license=wanted), timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            with acquired.lock:
                acquired.in_flight -= 1
                if not acquired.killed or error.code() != grpc.StatusCode.UNAVAILABLE:
                    acquired.unexpected.append(f"{error.code()}: {error.details()}")
                acquired.lock.notify_all()
            return
        with acquired.lock:  # a reply that arrives after the kill was still sent before it: acknowledged
            acquired.in_flight -= 1
            acquired.licenses.append(reply)
            acquired.lock.notify_all()


def test_no_acknowledged_license_is_lost_when_the_marketplace_server_is_killed(
    servers: ServerFactory, tmp_path: Path
) -> None:
    first = servers.start(tmp_path / "data", ENV)
    log = Log.of(first)
    release, buyer_token = publish_release(first)
    acquired = Acquired()
    channels = [authorized_channel(first.address, buyer_token) for _ in range(THREADS)]
    workers = [
        threading.Thread(target=acquire_until_killed, args=(MarketplaceServiceStub(c), release, acquired))
        for c in channels
    ]
    for worker in workers:
        worker.start()
    with acquired.lock:
        # Waits on the count, and kills only while a call is on its way: the kill lands in the middle of appends.
        done = acquired.lock.wait_for(
            lambda: (
                bool(acquired.unexpected) or (len(acquired.licenses) >= ACKED_BEFORE_KILL and acquired.in_flight > 0)
            ),
            timeout=120,
        )
        assert done and not acquired.unexpected, acquired.unexpected or first.log_tail()
        first.kill9()
        acquired.killed = True
    for worker in workers:
        worker.join(timeout=CALL_TIMEOUT + 10)
        assert not worker.is_alive(), "a call outlived the killed server"
    for channel in channels:
        channel.close()
    assert not acquired.unexpected, acquired.unexpected
    licenses = acquired.licenses
    assert len({x.name for x in licenses}) == len({x.log_index for x in licenses}) == len(licenses)
    # Every checkpoint the proofs showed before the kill: signed by the log key, one root per size.
    for license in licenses:
        log.checkpoint(TlogProof.parse(license.tlog_proof).checkpoint)
    before = dict(log.roots)

    second = servers.start(tmp_path / "data", ENV)
    restarted = Log.of(second)  # the same keys after the restart
    assert (restarted.verifier, restarted.marketplace_key) == (log.verifier, log.marketplace_key)
    buyer = MarketplaceServiceStub(authorized_channel(second.address, buyer_token))
    tlog = TransparencyLogServiceStub(second.channel())
    now = log.checkpoint(tlog.GetCheckpoint(t.GetCheckpointRequest(), timeout=10).note)
    assert now.size >= max(before), f"the log shrank to {now.size} entries from {max(before)}"

    for license in licenses:
        # The license reads back as acknowledged: same grant, same index, same proof.
        again = buyer.GetLicense(m.GetLicenseRequest(name=license.name), timeout=10)
        assert (again.grant_envelope, again.grant_digest, again.log_index, again.tlog_proof) == (
            license.grant_envelope,
            license.grant_digest,
            license.log_index,
            license.tlog_proof,
        )
        # Its grant entry is at its index in the restarted log, under the restarted checkpoint.
        index = license.log_index
        (stored,) = tlog.GetEntries(t.GetEntriesRequest(start_index=index, max_entries=1), timeout=10).entries
        entry = entries.parse(stored.data)
        assert (stored.index, entry.type, entry.statement, entry.signer) == (
            index,
            "grant",
            license.grant_digest,
            log.marketplace_key,
        )
        log.verify(stored.data, license.tlog_proof)
        inclusion = tlog.GetInclusionProof(t.GetInclusionProofRequest(index=index, tree_size=now.size), timeout=10)
        assert (inclusion.tree_size, inclusion.entry) == (now.size, stored.data)
        merkle.verify_inclusion(merkle.leaf_hash(stored.data), index, now.size, list(inclusion.hashes), now.root)

    # Every tree seen before the kill is a prefix of the restarted one: its signed root was not rewritten.
    for size, root in before.items():
        proof = tlog.GetConsistencyProof(t.GetConsistencyProofRequest(old_size=size, new_size=now.size), timeout=10)
        assert proof.new_size == now.size
        merkle.verify_consistency(size, now.size, root, now.root, list(proof.hashes))

    # The log appends after the restart, its proof verifies, and its checkpoint extends the one before.
    wanted = m.License(release=release, licensee="principals/buyer", licensee_key=BUYER_KEY)
    after = buyer.AcquireLicense(m.AcquireLicenseRequest(license=wanted), timeout=30)
    assert after.log_index >= now.size
    (stored,) = tlog.GetEntries(t.GetEntriesRequest(start_index=after.log_index, max_entries=1), timeout=10).entries
    log.verify(stored.data, after.tlog_proof)
    latest = log.checkpoint(TlogProof.parse(after.tlog_proof).checkpoint)
    proof = tlog.GetConsistencyProof(t.GetConsistencyProofRequest(old_size=now.size, new_size=latest.size), timeout=10)
    merkle.verify_consistency(now.size, latest.size, now.root, latest.root, list(proof.hashes))
