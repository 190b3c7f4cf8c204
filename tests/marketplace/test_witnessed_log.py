"""A marketplace whose checkpoints a second server witnesses, over gRPC on localhost.

Server W witnesses the log of server M; M publishes a checkpoint only once W has cosigned it. Both keys
are made before either server starts (the key files a first start would write), so each server's settings
can name the other's key. What M serves then verifies offline under M's tlog-policy, with W's cosignature.
While W is down nothing new is published, and a caller waiting for its entry's proof is told so; once W
is back, the checkpoint that waited is cosigned and published.

An idle log keeps its cosignatures fresh: once they are older than checkpoint_refresh_seconds by M's clock,
W cosigns the same checkpoint again and M serves it with the new cosignature (same size, root and log
signature). The clock tests move both servers' clocks together (they agree in life) and wake the publisher
through a waiter; one test lets a one-second interval pass to show the thread wakes by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from memos_test_support import admin_token, authorized_channel, reason_of, start_server

from memos_grpc._proto.memos.v1 import transparency_log_service_pb2 as t
from memos_grpc._proto.memos.v1.transparency_log_service_pb2_grpc import TransparencyLogServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.errors import UnavailableError
from memos_grpc.marketplace.entries import Entry
from memos_grpc.marketplace.node import MarketplaceNode
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.server.app import MemosServer
from memos_grpc.store.database import Connection
from memos_grpc.transparency.cosignature import CosignatureError, CosignatureVerifier, verify_cosigned
from memos_grpc.transparency.note import NoteVerifier, open_note, parse_note
from memos_grpc.transparency.policy import parse_policy
from memos_grpc.transparency.proof import TlogProof, verify_proof
from memos_grpc.vault.context import utc_now

ORIGIN = "market.test/log"
WITNESS_NAME = "witness.test"


def entry(n: int) -> bytes:
    return Entry("grant", f"sha256:{n:064x}", f"sha256:{n + 7:064x}", "b" * 64).encode()


@dataclass
class Pair:
    tmp: Path
    embedder: Embedder
    log_verifier: NoteVerifier
    witness_verifier: CosignatureVerifier
    witness_port: int
    market: MemosServer | None = None
    witness: MemosServer | None = None

    def start_witness(self) -> MemosServer:
        self.witness = start_server(
            self.tmp / "witness",
            self.embedder,
            listen=f"127.0.0.1:{self.witness_port}",
            witness_logs=self.log_verifier.vkey(),
            witness_name=WITNESS_NAME,
        )
        return self.witness

    def start_market(self, **extra: object) -> MemosServer:
        """M on its data directory (its keys, its log), asking W to cosign."""
        self.market = start_server(
            self.tmp / "market",
            self.embedder,
            marketplace_enabled=True,
            marketplace_log_origin=ORIGIN,
            marketplace_witnesses=f"{self.witness_verifier.vkey()}@127.0.0.1:{self.witness_port}",
            marketplace_witness_timeout_seconds=5,
            allow_plaintext_peers=True,
            **extra,
        )
        return self.market

    def restart_market(self, **extra: object) -> MemosServer:
        assert self.market is not None
        self.market.stop(grace=1)
        self.market = None
        return self.start_market(**extra)

    def node(self) -> MarketplaceNode:
        assert self.market is not None and self.market.vault is not None and self.market.vault.marketplace
        return self.market.vault.marketplace


@pytest.fixture
def pair(tmp_path: Path, embedder: Embedder) -> Iterator[Pair]:
    log_key, witness_key = SigningKey.generate(), SigningKey.generate()
    log_key.write(tmp_path / "market" / "keys" / "log.key")
    witness_key.write(tmp_path / "witness" / "keys" / "witness.key")
    # A port for W that stays W's across its restart: taken from a first start, then reused.
    probe = start_server(tmp_path / "probe", embedder)
    port = int(probe.address.rsplit(":", 1)[1])
    probe.stop(grace=1)
    p = Pair(
        tmp_path,
        embedder,
        NoteVerifier.for_key(ORIGIN, log_key.public_key),
        CosignatureVerifier.for_key(WITNESS_NAME, witness_key.public_key),
        port,
    )
    p.start_witness()
    p.start_market()
    yield p
    for server in (p.market, p.witness):
        if server is not None:
            server.stop(grace=1)


def checkpoint(server: MemosServer) -> t.Checkpoint:
    stub = TransparencyLogServiceStub(authorized_channel(server.address, admin_token(server)))
    reply: t.Checkpoint = stub.GetCheckpoint(t.GetCheckpointRequest())
    return reply


def test_checkpoints_are_published_only_once_the_witness_cosigned_them(pair: Pair) -> None:
    node = pair.node()
    assert pair.market is not None and pair.witness is not None
    published = node.wait_published(node.append([entry(n) for n in range(5)])[-1] + 1)
    served = checkpoint(pair.market)
    assert served.size == published.checkpoint.size == 5 and list(served.cosigners) == [WITNESS_NAME]
    open_note(served.note, [pair.log_verifier])
    now = int(datetime.now(UTC).timestamp())
    assert abs(verify_cosigned(served.note, pair.witness_verifier, now + 5, 600) - now) < 60
    policy = parse_policy(node.policy_text())
    assert policy.quorum == "witnesses"
    log = TransparencyLogServiceStub(authorized_channel(pair.market.address, admin_token(pair.market)))
    proof = log.GetInclusionProof(t.GetInclusionProofRequest(index=3))
    report = verify_proof(
        entry(3), proof.tlog_proof, pair.log_verifier, policy, policy.witnesses, datetime.now(UTC), 600
    )
    assert report, report.shortfalls
    # Without the witness's cosignature the same proof fails the policy.
    bare = proof.tlog_proof.split(f"\u2014 {WITNESS_NAME} ")[0]
    assert not verify_proof(entry(3), bare, pair.log_verifier, policy, policy.witnesses, datetime.now(UTC), 600)

    # The witness goes away: the log grows, but nothing new is published, and a waiting caller is told.
    pair.witness.stop(grace=1)
    pair.witness = None
    size = node.append([entry(5)])[-1] + 1
    with pytest.raises(UnavailableError) as waited:
        node.wait_published(size, timeout=1.0)
    assert waited.value.reason == "WITNESS_QUORUM_UNAVAILABLE"
    assert checkpoint(pair.market).size == 5
    # It comes back (same data, same key): the waiting checkpoint is cosigned from the size it last saw.
    pair.start_witness()
    assert node.wait_published(size, timeout=60).checkpoint.size == 6
    assert list(checkpoint(pair.market).cosigners) == [WITNESS_NAME]


def test_a_marketplace_with_an_unreachable_witness_publishes_nothing(tmp_path: Path, embedder: Embedder) -> None:
    witness_key = SigningKey.generate()
    vkey = CosignatureVerifier.for_key(WITNESS_NAME, witness_key.public_key).vkey()
    probe = start_server(tmp_path / "probe", embedder)
    dead = probe.address  # nothing listens there once the probe stops
    probe.stop(grace=1)
    market = start_server(
        tmp_path / "market",
        embedder,
        marketplace_enabled=True,
        marketplace_witnesses=f"{vkey}@{dead}",
        marketplace_witness_timeout_seconds=1,
        allow_plaintext_peers=True,
    )
    try:
        assert market.vault is not None and market.vault.marketplace is not None
        node = market.vault.marketplace
        with pytest.raises(UnavailableError):
            node.wait_published(node.append([entry(0)])[-1] + 1, timeout=1.0)
        with pytest.raises(grpc.RpcError) as refused:
            checkpoint(market)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert reason_of(refused.value) == "NO_PUBLISHED_CHECKPOINT"
    finally:
        market.stop(grace=1)


def test_a_marketplace_that_rewrites_its_history_loses_its_witness(pair: Pair) -> None:
    """A test hook rewrites the marketplace's stored log (entries 2.. replaced by others, as a log that forks
    would): the witness refuses the forked checkpoint, nothing more is published, and a proof under the
    forked tree's own signature fails a buyer's policy."""
    node = pair.node()
    assert pair.market is not None and pair.witness is not None
    node.wait_published(node.append([entry(n) for n in range(4)])[-1] + 1)
    witnessed = checkpoint(pair.market)
    assert witnessed.size == 4

    def rewrite_history(cursor: Connection) -> None:
        cursor.execute("DELETE FROM tlog_entries WHERE entry_index >= 2")
        cursor.execute("DELETE FROM tlog_nodes WHERE (node_index + 1) * (1 << level) > 2")
        cursor.execute("DELETE FROM tlog_checkpoints WHERE tree_size > 2")

    pair.market.vault.context.database.write(rewrite_history)  # type: ignore[union-attr]
    forked = node.append([entry(100 + n) for n in range(3)])  # sizes 3..5 of another history
    assert forked == [2, 3, 4]
    with pytest.raises(UnavailableError):
        node.wait_published(5, timeout=2.0)
    assert checkpoint(pair.market) == witnessed, "the fork was published"
    state = pair.witness.vault.witness.latest(ORIGIN)  # type: ignore[union-attr]
    assert state is not None and (state.size, state.root) == (4, witnessed.root_hash)

    # The forked tree's checkpoint, signed by the log alone, proves its entries to nobody who needs the witness.
    signed = node.log.checkpoint()
    assert signed.size == 5 and signed.root != witnessed.root_hash
    path = node.log.inclusion_proof(4, 5)
    forged = TlogProof(4, tuple(path), signed.note).text()
    policy = parse_policy(node.policy_text())
    report = verify_proof(entry(102), forged, pair.log_verifier, policy, policy.witnesses, datetime.now(UTC), 600)
    assert not report and report.reason == "TLOG_PROOF_QUORUM_NOT_MET"


# -- fresh cosignatures on an idle log ----------------------------------------------------------------------


def cosign_time(note: str, verifier: CosignatureVerifier) -> int:
    """The time of the witness's cosignature on ``note``, however old (only the time is wanted here)."""
    return verify_cosigned(note, verifier, 2**62, 2**62)


def log_signature_lines(note: str) -> list[str]:
    return [signature.line() for signature in parse_note(note).signatures if signature.name == ORIGIN]


def move_clocks(pair: Pair, offset: timedelta) -> None:
    for server in (pair.market, pair.witness):
        assert server is not None and server.vault is not None
        server.vault.context.clock = lambda: utc_now() + offset


def served_after(pair: Pair, after: int, timeout: float = 60.0) -> t.Checkpoint:
    """The checkpoint M serves once its cosignature is dated after ``after``; waits on M's change counter."""
    node = pair.node()
    deadline = time.monotonic() + timeout
    while True:
        seen = node.changes()
        assert pair.market is not None
        served = checkpoint(pair.market)
        if cosign_time(served.note, pair.witness_verifier) > after:
            return served
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no cosignature dated after {after} was served within {timeout} s"
        node.wait_change(seen, remaining)


def test_an_idle_log_is_cosigned_again_once_its_cosignatures_age(pair: Pair) -> None:
    node = pair.node()
    assert pair.market is not None and pair.witness is not None and pair.witness.vault is not None
    size = node.append([entry(n) for n in range(3)])[-1] + 1
    node.wait_published(size)
    first = checkpoint(pair.market)
    first_time = cosign_time(first.note, pair.witness_verifier)
    witnessed = pair.witness.vault.witness.latest(ORIGIN)
    assert witnessed is not None and witnessed.size == size

    # Past the refresh interval by both clocks, with nothing appended: a buyer allowing that much offline
    # time would now find the served cosignature stale.
    refresh = node.settings.checkpoint_refresh_seconds
    offset = timedelta(seconds=refresh + 60)
    move_clocks(pair, offset)
    moved_now = int((utc_now() + offset).timestamp())
    with pytest.raises(CosignatureError) as stale:
        verify_cosigned(first.note, pair.witness_verifier, moved_now, int(refresh))
    assert stale.value.reason == "COSIGNATURE_STALE"
    node.wait_published(size)  # a waiter wakes the publisher, which reads the moved clock

    refreshed = served_after(pair, first_time)
    assert (refreshed.size, refreshed.root_hash) == (first.size, first.root_hash)
    assert refreshed.note != first.note
    open_note(refreshed.note, [pair.log_verifier])
    assert log_signature_lines(refreshed.note) == log_signature_lines(first.note), "the log signed again"
    later = verify_cosigned(refreshed.note, pair.witness_verifier, moved_now + 5, int(refresh))
    assert later >= first_time + refresh
    assert list(refreshed.cosigners) == [WITNESS_NAME]
    published = node.published()
    assert published is not None and published.note == refreshed.note
    # The witness cosigned what it had: same size and root, a new time.
    state = pair.witness.vault.witness.latest(ORIGIN)
    assert state is not None and (state.size, state.root) == (witnessed.size, witnessed.root)
    assert state.cosign_time == later
    # A proof served now carries the fresh cosignature and meets the policy at the buyer's strictest age.
    stub = TransparencyLogServiceStub(authorized_channel(pair.market.address, admin_token(pair.market)))
    proof = stub.GetInclusionProof(t.GetInclusionProofRequest(index=1))
    policy = parse_policy(node.policy_text())
    moved = datetime.fromtimestamp(moved_now + 5, UTC)
    report = verify_proof(entry(1), proof.tlog_proof, pair.log_verifier, policy, policy.witnesses, moved, int(refresh))
    assert report, report.shortfalls

    # A restart serves the refreshed note, not the first one.
    pair.restart_market()
    assert checkpoint(pair.market).note == refreshed.note


def test_the_publisher_wakes_by_itself_when_the_refresh_is_due(pair: Pair) -> None:
    """No clock moved: with a one-second interval, the idle publisher's own deadline brings the refresh."""
    pair.restart_market(checkpoint_refresh_seconds=1)
    node = pair.node()
    assert pair.market is not None
    node.wait_published(node.append([entry(0), entry(1)])[-1] + 1)
    first = checkpoint(pair.market)
    refreshed = served_after(pair, cosign_time(first.note, pair.witness_verifier))
    assert (refreshed.size, refreshed.root_hash) == (first.size, first.root_hash) == (2, first.root_hash)
    assert log_signature_lines(refreshed.note) == log_signature_lines(first.note)
    assert node.log.size() == 2


class _Warned(logging.Handler):
    """Sets ``seen`` when the publisher warns that a refresh fell short of its quorum."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("refreshing the checkpoint"):
            self.seen.set()


def test_a_refresh_the_witness_misses_keeps_the_older_note_until_it_is_back(pair: Pair) -> None:
    node = pair.node()
    assert pair.market is not None and pair.witness is not None
    size = node.append([entry(n) for n in range(2)])[-1] + 1
    node.wait_published(size)
    first = checkpoint(pair.market)
    first_time = cosign_time(first.note, pair.witness_verifier)
    offset = timedelta(seconds=node.settings.checkpoint_refresh_seconds + 60)
    move_clocks(pair, offset)
    pair.witness.stop(grace=1)
    pair.witness = None

    warned = _Warned()
    publisher_log = logging.getLogger("memos_grpc.marketplace.publisher")
    publisher_log.addHandler(warned)
    try:
        node.wait_published(size)  # wakes the publisher: the refresh is due, and the witness is down
        assert warned.seen.wait(30), "the publisher never tried to refresh"
    finally:
        publisher_log.removeHandler(warned)
    assert checkpoint(pair.market) == first, "a refresh without the quorum replaced the published note"

    # W is back (its clock too): the publisher retries on its own, without an append.
    pair.start_witness()
    move_clocks(pair, offset)
    refreshed = served_after(pair, first_time)
    assert (refreshed.size, refreshed.root_hash) == (first.size, first.root_hash)
    assert node.log.size() == size
