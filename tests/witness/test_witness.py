"""WitnessService on a real server: C2SP tlog-witness add-checkpoint over gRPC, its state in the vault's DuckDB.

The logs are real: leaves hashed and rooted with the transparency library, checkpoint bodies signed with a
log key as signed notes; consistency proofs come from merkle.consistency_proof over the logs' own subtree
hashes. The last test witnesses a TransparencyLog held by a second server's vault.
"""

from __future__ import annotations

import logging
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from memos_test_support import admin_token, authorized_channel, reason_of, start_server

from memos_grpc._proto.memos.v1 import witness_service_pb2 as w
from memos_grpc._proto.memos.v1.witness_service_pb2_grpc import WitnessServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.errors import InvalidArgumentError
from memos_grpc.marketplace.log import TransparencyLog
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.server.app import MemosServer
from memos_grpc.settings import Settings
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.cosignature import (
    CosignatureStatus,
    CosignatureVerifier,
    add_cosignature,
    check_cosignatures,
    verify_cosigned,
)
from memos_grpc.transparency.note import NoteVerifier, parse_note, sign_note
from memos_grpc.transparency.policy import parse_policy, satisfied
from memos_grpc.transparency.proof import TlogProof, verify_proof

Code = grpc.StatusCode
MAX_AGE = 600


@dataclass
class Log:
    """A real RFC 6962 log kept in memory: leaf hashes, signed checkpoints, proofs from subtree hashes."""

    origin: str
    key: SigningKey = field(default_factory=SigningKey.generate)
    leaves: list[bytes] = field(default_factory=list)

    @property
    def vkey(self) -> str:
        return NoteVerifier.for_key(self.origin, self.key.public_key).vkey()

    def grow(self, count: int) -> None:
        start = len(self.leaves)
        self.leaves += [merkle.leaf_hash(f"{self.origin} entry {n}".encode()) for n in range(start, start + count)]

    def node(self, level: int, index: int) -> bytes:
        return merkle.root_from_leaves(self.leaves[index << level : (index + 1) << level])

    def root(self, size: int) -> bytes:
        return merkle.root_from_leaves(self.leaves[:size])

    def checkpoint(self, size: int | None = None, root: bytes | None = None, key: SigningKey | None = None) -> str:
        size = len(self.leaves) if size is None else size
        body = Checkpoint(self.origin, size, self.root(size) if root is None else root).body()
        return sign_note(body, self.origin, key or self.key)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        return merkle.consistency_proof(old, len(self.leaves) if new is None else new, self.node)


@dataclass
class Witnessing:
    server: MemosServer
    stub: WitnessServiceStub
    logs: dict[str, Log]

    @property
    def verifier(self) -> CosignatureVerifier:
        verifier = self.server.vault.witness.verifier if self.server.vault else None
        assert verifier is not None
        return verifier

    def add(self, old_size: int, proof: list[bytes], note: str) -> w.AddCheckpointResponse:
        request = w.AddCheckpointRequest(old_size=old_size, consistency_proof=proof, checkpoint=note)
        response: w.AddCheckpointResponse = self.stub.AddCheckpoint(request, timeout=30)
        return response

    def refused(self, old_size: int, proof: list[bytes], note: str) -> tuple[Code, str, dict[str, str]]:
        with pytest.raises(grpc.RpcError) as caught:
            self.add(old_size, proof, note)
        return caught.value.code(), reason_of(caught.value), metadata_of(caught.value)

    def latest_size(self, log: Log) -> int | None:
        assert self.server.vault is not None
        state = self.server.vault.witness.latest(log.origin)
        return None if state is None else state.size


def metadata_of(error: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return dict(info.metadata)
    raise AssertionError("no ErrorInfo")


@pytest.fixture
def witnessing(tmp_path: Path, embedder: Embedder) -> Iterator[Witnessing]:
    logs = {name: Log(name) for name in ("example.com/log-a", "example.com/log-b")}
    server = start_server(
        tmp_path / "witness",
        embedder,
        witness_logs=",".join(log.vkey for log in logs.values()),
        witness_name="witness.example.com",
    )
    # No credential: as in tlog-witness, the log's signature is what authorizes AddCheckpoint.
    channel = grpc.insecure_channel(server.address)
    try:
        yield Witnessing(server, WitnessServiceStub(channel), logs)
    finally:
        channel.close()
        server.stop(grace=1)


def now() -> int:
    return int(time.time())


# -- the protocol ------------------------------------------------------------------------------------------


def test_first_checkpoint_then_growth_are_cosigned_and_the_cosignature_verifies(witnessing: Witnessing) -> None:
    log = witnessing.logs["example.com/log-a"]
    log.grow(5)
    first = log.checkpoint()
    response = witnessing.add(0, [], first)
    assert response.size == 5
    assert response.cosignatures.startswith("\u2014 witness.example.com ") and response.cosignatures.endswith("\n")
    cosigned = add_cosignature(first, parse_note(first + response.cosignatures).signatures[-1])
    assert now() - MAX_AGE <= verify_cosigned(cosigned, witnessing.verifier, now(), MAX_AGE) <= now()

    log.grow(8)  # 5 -> 13: neither size a power of two, the longest kind of proof
    second = log.checkpoint()
    response = witnessing.add(5, log.proof(5), second)
    assert response.size == 13 and witnessing.latest_size(log) == 13
    verify_cosigned(second + response.cosignatures, witnessing.verifier, now(), MAX_AGE)
    # The other log is untouched: its state starts at 0.
    assert witnessing.latest_size(witnessing.logs["example.com/log-b"]) is None


def test_the_same_checkpoint_twice_is_cosigned_twice_and_changes_nothing(witnessing: Witnessing) -> None:
    log = witnessing.logs["example.com/log-a"]
    log.grow(3)
    note = log.checkpoint()
    first = witnessing.add(0, [], note)
    again = witnessing.add(3, [], note)
    assert (first.size, again.size) == (3, 3)
    for response in (first, again):
        verify_cosigned(note + response.cosignatures, witnessing.verifier, now(), MAX_AGE)
    assert witnessing.latest_size(log) == 3


def test_a_cosigned_checkpoint_satisfies_a_policy_that_names_the_witness(witnessing: Witnessing) -> None:
    log = witnessing.logs["example.com/log-b"]
    log.grow(1)
    note = log.checkpoint()
    cosigned = note + witnessing.add(0, [], note).cosignatures
    other = CosignatureVerifier.for_key("other.example.com", SigningKey.generate().public_key)
    policy = parse_policy(
        f"log {log.vkey}\nwitness ours {witnessing.verifier.vkey()}\nwitness theirs {other.vkey()}\n"
        "group both all ours theirs\ngroup either any ours theirs\nquorum either\n"
    )
    parsed = parse_note(cosigned)
    results = check_cosignatures(parsed.text, parsed.signatures, policy.witnesses, now(), MAX_AGE)
    fresh = {r.name for r in results if r.status is CosignatureStatus.FRESH}
    assert fresh == {"ours"}
    assert satisfied(policy, fresh)
    # The same cosignature falls short of a quorum that also needs a witness that did not cosign.
    strict = parse_policy(
        f"log {log.vkey}\nwitness ours {witnessing.verifier.vkey()}\nwitness theirs {other.vkey()}\n"
        "group both all ours theirs\nquorum both\n"
    )
    assert not satisfied(strict, fresh)


@pytest.mark.parametrize("damage", ["flipped", "one_short", "one_long", "empty"])
def test_a_bad_consistency_proof_is_refused_and_changes_nothing(witnessing: Witnessing, damage: str) -> None:
    log = witnessing.logs["example.com/log-a"]
    log.grow(6)
    witnessing.add(0, [], log.checkpoint())
    log.grow(5)
    proof = log.proof(6)
    assert len(proof) >= 2
    bad = {
        "flipped": [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]],
        "one_short": proof[:-1],
        "one_long": [*proof, proof[-1]],
        "empty": [],
    }[damage]
    reason = "PROOF_INVALID" if damage == "flipped" else "PROOF_WRONG_LENGTH"
    assert witnessing.refused(6, bad, log.checkpoint())[:2] == (Code.INVALID_ARGUMENT, reason)
    assert witnessing.latest_size(log) == 6
    # The good proof still works afterwards.
    assert witnessing.add(6, proof, log.checkpoint()).size == 11


def test_a_proof_hash_of_the_wrong_length_and_a_non_empty_first_proof_are_refused(witnessing: Witnessing) -> None:
    log = witnessing.logs["example.com/log-a"]
    log.grow(4)
    note = log.checkpoint()
    assert witnessing.refused(0, [b"\x00" * 31], note)[:2] == (Code.INVALID_ARGUMENT, "HASH_MALFORMED")
    assert witnessing.refused(0, [log.root(4)], note)[:2] == (Code.INVALID_ARGUMENT, "PROOF_WRONG_LENGTH")
    assert witnessing.latest_size(log) is None


def test_a_size_conflict_names_the_latest_size(witnessing: Witnessing) -> None:
    log = witnessing.logs["example.com/log-a"]
    log.grow(7)
    witnessing.add(0, [], log.checkpoint())
    log.grow(2)
    # The caller believes the witness has seen nothing (or some other size): it is told 7.
    for believed in (0, 3, 8):
        code, reason, metadata = witnessing.refused(believed, log.proof(believed), log.checkpoint())
        assert (code, reason, metadata) == (Code.ABORTED, "WITNESS_SIZE_CONFLICT", {"latest_size": "7"})
    assert witnessing.latest_size(log) == 7
    assert witnessing.add(7, log.proof(7), log.checkpoint()).size == 9


def test_a_rollback_is_refused(witnessing: Witnessing) -> None:
    log = witnessing.logs["example.com/log-a"]
    log.grow(10)
    witnessing.add(0, [], log.checkpoint())
    older = log.checkpoint(size=6)
    # From the cosigned size, the old size is above the checkpoint's; from its own size, it is not the latest.
    assert witnessing.refused(10, [], older)[:2] == (Code.INVALID_ARGUMENT, "SIZE_OUT_OF_RANGE")
    assert witnessing.refused(6, [], older) == (Code.ABORTED, "WITNESS_SIZE_CONFLICT", {"latest_size": "10"})
    assert witnessing.refused(-1, [], older)[:2] == (Code.INVALID_ARGUMENT, "SIZE_OUT_OF_RANGE")
    assert witnessing.latest_size(log) == 10


def test_a_fork_is_detected(witnessing: Witnessing) -> None:
    log = witnessing.logs["example.com/log-a"]
    log.grow(4)
    witnessing.add(0, [], log.checkpoint())
    forked = Log(log.origin, key=log.key)  # same key, other history
    forked.leaves = [*log.leaves[:3], merkle.leaf_hash(b"rewritten")]
    code, reason, metadata = witnessing.refused(4, [], forked.checkpoint())
    assert (code, reason, metadata) == (Code.FAILED_PRECONDITION, "WITNESS_FORK_DETECTED", {"latest_size": "4"})
    # A longer forked history is caught by its proof.
    forked.grow(3)
    assert witnessing.refused(4, forked.proof(4), forked.checkpoint())[:2] == (Code.INVALID_ARGUMENT, "PROOF_INVALID")
    assert witnessing.latest_size(log) == 4


def test_an_unknown_log_and_another_key_are_refused(witnessing: Witnessing) -> None:
    stranger = Log("example.com/not-witnessed")
    stranger.grow(2)
    assert witnessing.refused(0, [], stranger.checkpoint())[:2] == (Code.NOT_FOUND, "WITNESS_UNKNOWN_LOG")

    log = witnessing.logs["example.com/log-a"]
    log.grow(2)
    impostor = log.checkpoint(key=SigningKey.generate())  # right origin, another key: ignored, so unverified
    assert witnessing.refused(0, [], impostor)[:2] == (Code.INVALID_ARGUMENT, "NOTE_UNVERIFIED")
    # A line under the log's own name and key id that does not verify is refused as such.
    good = log.checkpoint()
    body, signature_line = good.split("\n\n")
    tampered = body.replace("\n2\n", "\n3\n") + "\n\n" + signature_line
    assert witnessing.refused(0, [], tampered)[:2] == (Code.INVALID_ARGUMENT, "NOTE_SIGNATURE_INVALID")
    assert witnessing.refused(0, [], "not a note")[:2] == (Code.INVALID_ARGUMENT, "NOTE_MALFORMED")
    unsigned_body = sign_note("example.com/log-a\n2\nnot base64\n", log.origin, log.key)
    assert witnessing.refused(0, [], unsigned_body)[:2] == (Code.INVALID_ARGUMENT, "CHECKPOINT_ROOT_INVALID")
    assert witnessing.latest_size(log) is None
    # Other signatures next to the log's are ignored.
    assert witnessing.add(0, [], good + impostor.split("\n\n")[1]).size == 2


def test_concurrent_calls_from_one_state_advance_it_exactly_once(witnessing: Witnessing) -> None:
    log = witnessing.logs["example.com/log-b"]
    log.grow(3)
    witnessing.add(0, [], log.checkpoint())
    # Eight callers, each with a different larger checkpoint, all from the cosigned size 3.
    log.grow(8)
    requests = [(3, log.proof(3, size), log.checkpoint(size)) for size in range(4, 12)]
    start = threading.Barrier(len(requests))
    outcomes: list[tuple[int, str]] = []
    lock = threading.Lock()

    def call(old: int, proof: list[bytes], note: str) -> None:
        start.wait()
        try:
            result: tuple[int, str] = (witnessing.add(old, proof, note).size, "")
        except grpc.RpcError as error:
            result = (-1, f"{error.code().name} {reason_of(error)} {metadata_of(error)}")
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=call, args=request) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [size for size, _ in outcomes if size >= 0]
    assert len(winners) == 1, outcomes
    # Every other caller is told the size the winner recorded: none advanced from 3 as well.
    conflict = f"ABORTED WITNESS_SIZE_CONFLICT {{'latest_size': '{winners[0]}'}}"
    assert sorted(error for _, error in outcomes if error) == [conflict] * 7
    assert witnessing.latest_size(log) == winners[0]


def test_the_state_and_the_key_survive_a_restart(tmp_path: Path, embedder: Embedder) -> None:
    log = Log("example.com/durable")
    log.grow(9)
    overrides = {"witness_logs": log.vkey}
    server = start_server(tmp_path / "data", embedder, **overrides)
    try:
        with authorized_channel(server.address, admin_token(server)) as channel:
            WitnessServiceStub(channel).AddCheckpoint(w.AddCheckpointRequest(checkpoint=log.checkpoint()))
        assert server.vault is not None and server.vault.witness.verifier is not None
        vkey = server.vault.witness.verifier.vkey()
    finally:
        server.stop(grace=1)

    server = start_server(tmp_path / "data", embedder, **overrides)
    try:
        assert server.vault is not None and server.vault.witness.verifier is not None
        assert server.vault.witness.verifier.vkey() == vkey
        with authorized_channel(server.address, admin_token(server)) as channel:
            stub = WitnessServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.AddCheckpoint(w.AddCheckpointRequest(old_size=0, checkpoint=log.checkpoint()))
            assert metadata_of(caught.value) == {"latest_size": "9"}
            log.grow(1)
            request = w.AddCheckpointRequest(old_size=9, consistency_proof=log.proof(9), checkpoint=log.checkpoint())
            assert stub.AddCheckpoint(request).size == 10
    finally:
        server.stop(grace=1)


# -- configuration and the key -------------------------------------------------------------------------------


def test_the_witness_key_is_made_only_for_a_witnessing_node_and_its_vkey_is_logged(
    tmp_path: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    plain = start_server(tmp_path / "plain", embedder)
    try:
        assert plain.vault is not None and plain.vault.witness.verifier is None
        assert not (plain.settings.key_dir / "witness.key").exists()
        with authorized_channel(plain.address, admin_token(plain)) as channel:
            log = Log("example.com/log")
            log.grow(1)
            with pytest.raises(grpc.RpcError) as caught:
                WitnessServiceStub(channel).AddCheckpoint(w.AddCheckpointRequest(checkpoint=log.checkpoint()))
            assert (caught.value.code(), reason_of(caught.value)) == (Code.NOT_FOUND, "WITNESS_UNKNOWN_LOG")
    finally:
        plain.stop(grace=1)

    caplog.set_level(logging.INFO, logger="memos_grpc.witness.witness")
    witness = start_server(tmp_path / "witness", embedder, witness_logs=Log("example.com/log").vkey)
    try:
        assert witness.vault is not None and witness.vault.witness.verifier is not None
        path = witness.settings.key_dir / "witness.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        vkey = witness.vault.witness.verifier.vkey()
        assert vkey.startswith("memos-grpc-witness+")
        assert any(vkey in record.getMessage() for record in caplog.records)
        # It is a cosignature key (type 0x04) a policy accepts as a witness.
        parse_policy(f"witness me {vkey}\nquorum me\n")
    finally:
        witness.stop(grace=1)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("example.com/log+00000000+AAAA", "not a log's verifier key"),
        ("garbage", "not a log's verifier key"),
        (",", "item 1"),
        ("WITNESS", "type 0x04"),
        ("TWICE", "two keys for the log"),
    ],
)
def test_invalid_witness_logs_stop_start_up_naming_the_setting(value: str, fragment: str) -> None:
    if value == "WITNESS":
        value = CosignatureVerifier.for_key("example.com/w", SigningKey.generate().public_key).vkey()
    elif value == "TWICE":
        value = f"{Log('example.com/log').vkey}, {Log('example.com/log').vkey}"
    with pytest.raises(InvalidArgumentError) as caught:
        Settings.load(environ={"MEMOS_WITNESS_LOGS": value})
    assert caught.value.reason == "INVALID_CONFIG"
    assert "witness_logs" in caught.value.message and fragment in caught.value.message


def test_witness_logs_and_name_are_read_from_the_environment_and_checked() -> None:
    logs = [Log("example.com/a"), Log("example.com/b")]
    settings = Settings.load(
        environ={"MEMOS_WITNESS_LOGS": f" {logs[0].vkey} ,{logs[1].vkey}", "MEMOS_WITNESS_NAME": "w.example.com"}
    )
    assert settings.witness_logs.count(",") == 1 and settings.witness_name == "w.example.com"
    for bad in ("", "two words", "a+b"):
        with pytest.raises(InvalidArgumentError, match="witness_name"):
            Settings.load(environ={"MEMOS_WITNESS_NAME": bad})


# -- two servers: a log on one, its witness on the other -------------------------------------------------------


def test_a_server_witnesses_the_transparency_log_of_another_over_grpc(tmp_path: Path, embedder: Embedder) -> None:
    origin = "market.example.com/log"
    log_key = SigningKey.generate()
    log_verifier = NoteVerifier.for_key(origin, log_key.public_key)
    market = start_server(tmp_path / "market", embedder)
    witness = start_server(tmp_path / "witness", embedder, witness_logs=log_verifier.vkey(), witness_name="w1")
    channel = authorized_channel(witness.address, admin_token(witness))
    try:
        assert market.vault is not None and witness.vault is not None
        tlog = TransparencyLog(market.vault.context, origin, lambda body: sign_note(body, origin, log_key))
        stub = WitnessServiceStub(channel)
        witness_key = witness.vault.witness.verifier
        assert witness_key is not None

        entries = [f"entry {n}\n".encode() for n in range(21)]
        tlog.append(entries[:5])
        first = tlog.checkpoint()
        cosigned = stub.AddCheckpoint(w.AddCheckpointRequest(old_size=0, checkpoint=first.note))
        assert cosigned.size == 5
        tlog.append(entries[5:])
        second = tlog.checkpoint()
        cosigned = stub.AddCheckpoint(
            w.AddCheckpointRequest(
                old_size=5, consistency_proof=tlog.consistency_proof(5, second.size), checkpoint=second.note
            )
        )
        assert cosigned.size == 21
        note = second.note + cosigned.cosignatures
        verify_cosigned(note, witness_key, now(), MAX_AGE)

        # A buyer's offline check: entry 17 in the log, under the log's key and the witness's quorum.
        policy = parse_policy(f"log {log_verifier.vkey()}\nwitness w1 {witness_key.vkey()}\nquorum w1\n")
        proof = TlogProof(17, tuple(tlog.inclusion_proof(17, second.size)), note).text()
        checked = verify_proof(entries[17], proof, log_verifier, policy, policy.witnesses, datetime.now(UTC), MAX_AGE)
        assert checked, checked.shortfalls
        assert checked.fresh_witnesses == ("w1",)
        # The same proof without the cosignature falls short of the quorum.
        bare = TlogProof(17, tuple(tlog.inclusion_proof(17, second.size)), second.note).text()
        short = verify_proof(entries[17], bare, log_verifier, policy, policy.witnesses, datetime.now(UTC), MAX_AGE)
        assert short.reason == "TLOG_PROOF_QUORUM_NOT_MET"
    finally:
        channel.close()
        witness.stop(grace=1)
        market.stop(grace=1)
