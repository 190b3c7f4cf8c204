"""The transparency log in a real vault's DuckDB: appends, proofs from stored hashes, checkpoints, durability.

Every root and proof the log serves must equal what ``merkle`` computes from the leaves themselves; appends
queued together (the writer's group commit) or made from many threads must take consecutive, distinct indexes;
a restart keeps every entry and signs no second root for a size; kill -9 loses no acknowledged entry.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _log_child import KEY, ORIGIN, entry_bytes, open_vault, sign

from memos_grpc.errors import InvalidArgumentError
from memos_grpc.marketplace.log import MAX_ENTRY_BYTES, STORED_LEVEL, TransparencyLog
from memos_grpc.node import Node
from memos_grpc.store.database import Connection
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.merkle import ProofError
from memos_grpc.transparency.note import NoteVerifier, open_note

VERIFIER = NoteVerifier.for_key(ORIGIN, KEY.public_key)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Node]:
    opened = open_vault(tmp_path / "data")
    yield opened
    opened.close()


def make_log(vault: Node) -> TransparencyLog:
    return TransparencyLog(vault.context, ORIGIN, sign)


def entry(n: int) -> bytes:
    return f"memstore-entry/v1\ntype grant\nsubject sha256:{n:064x}\n".encode()


def reference_nodes(leaves: list[bytes]) -> merkle.NodeSource:
    def node(level: int, index: int) -> bytes:
        return merkle.root_from_leaves(leaves[index << level : (index + 1) << level])

    return node


def assert_log_matches(log: TransparencyLog, entries: list[bytes]) -> None:
    """Everything the log serves equals what merkle computes from ``entries`` themselves."""
    leaves = [merkle.leaf_hash(e) for e in entries]
    roots = [merkle.root_from_leaves(leaves[:size]) for size in range(len(leaves) + 1)]
    assert log.size() == len(entries)
    assert log.entries(0, len(entries)) == entries
    assert log.root() == roots[-1]
    node = reference_nodes(leaves)
    for size in range(len(leaves) + 1):
        assert log.root(size) == roots[size]
        for index in range(size):
            proof = log.inclusion_proof(index, size)
            assert proof == merkle.inclusion_proof(index, size, node)
            merkle.verify_inclusion(log.leaf(index), index, size, proof, roots[size])
        for old in range(size + 1):
            proof = log.consistency_proof(old, size)
            merkle.verify_consistency(old, size, roots[old], roots[size], proof)


def test_appends_take_consecutive_indexes_and_every_root_and_proof_matches_the_leaves(vault: Node) -> None:
    log = make_log(vault)
    assert log.size() == 0
    assert log.root() == merkle.EMPTY_ROOT
    entries: list[bytes] = []
    for batch in (1, 3, 7, 1, 0, 12, 2, 6):
        new = [entry(len(entries) + n) for n in range(batch)]
        assert log.append(new) == list(range(len(entries), len(entries) + batch))
        entries += new
    assert len(entries) == 32
    assert_log_matches(log, entries)
    assert log.entries(5, 9) == entries[5:9]
    assert log.entries(32, 32) == []


def test_queued_appends_share_one_commit_and_take_indexes_in_queue_order(vault: Node) -> None:
    """Appends queued behind a busy writer are committed together; each reads the size in the transaction."""
    log = make_log(vault)
    log.append([entry(0)])
    release = threading.Event()
    writer_busy = threading.Event()

    def hold_the_writer(_: Connection) -> None:
        writer_busy.set()
        release.wait(30)

    held = vault.context.database.submit(hold_the_writer)
    assert writer_busy.wait(30)
    batches = [[entry(100 + 10 * b + n) for n in range(1 + b % 3)] for b in range(12)]
    futures = [log.submit(batch) for batch in batches]
    release.set()
    held.result(30)
    expected, entries = 1, [entry(0)]
    for batch, future in zip(batches, futures, strict=True):
        assert future.result(30) == list(range(expected, expected + len(batch)))
        expected += len(batch)
        entries += batch
    assert_log_matches(log, entries)


def test_appends_from_many_threads_take_distinct_indexes(vault: Node) -> None:
    log = make_log(vault)
    placed: dict[int, bytes] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for batch in range(15):
                new = [entry_bytes(thread, batch, n) for n in range(1 + batch % 3)]
                indexes = log.append(new)
                assert indexes == list(range(indexes[0], indexes[0] + len(new)))
                with lock:
                    for index, value in zip(indexes, new, strict=True):
                        assert index not in placed
                        placed[index] = value
        except BaseException as exc:  # surfaced below: a thread's assertion must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(placed) == list(range(8 * (5 * 1 + 5 * 2 + 5 * 3)))
    ordered = [placed[i] for i in range(len(placed))]
    assert log.entries(0, len(ordered)) == ordered
    assert log.root() == merkle.root_from_leaves([merkle.leaf_hash(e) for e in ordered])
    size = len(ordered)
    for index in (0, 1, size // 2, size - 1):
        merkle.verify_inclusion(merkle.leaf_hash(ordered[index]), index, size, log.inclusion_proof(index), log.root())


def test_bad_appends_and_reads_are_refused_and_change_nothing(vault: Node) -> None:
    log = make_log(vault)
    log.append([entry(0), entry(1), bytes(MAX_ENTRY_BYTES)])  # exactly 64 KiB is taken
    root = log.root()
    with pytest.raises(InvalidArgumentError) as caught:
        log.append([entry(2), bytes(MAX_ENTRY_BYTES + 1)])
    assert caught.value.reason == "LOG_ENTRY_TOO_LARGE"
    assert "entry 1" in str(caught.value)
    with pytest.raises(TypeError, match="log entry 1 is str"):
        log.append([entry(2), "text"])  # type: ignore[list-item]
    assert (log.size(), log.root()) == (3, root)

    refused = [
        (lambda: log.inclusion_proof(3, 3), "INDEX_OUT_OF_RANGE"),
        (lambda: log.inclusion_proof(0, 4), "SIZE_OUT_OF_RANGE"),
        (lambda: log.root(4), "SIZE_OUT_OF_RANGE"),
        (lambda: log.root(-1), "SIZE_OUT_OF_RANGE"),
        (lambda: log.consistency_proof(2, 4), "SIZE_OUT_OF_RANGE"),
        (lambda: log.consistency_proof(3, 2), "SIZE_OUT_OF_RANGE"),
        (lambda: log.leaf(3), "INDEX_OUT_OF_RANGE"),
        (lambda: log.leaf(-1), "INDEX_OUT_OF_RANGE"),
        (lambda: log.entries(2, 4), "INDEX_OUT_OF_RANGE"),
        (lambda: log.entries(2, 1), "INDEX_OUT_OF_RANGE"),
    ]
    for call, reason in refused:
        with pytest.raises(ProofError) as proof_error:
            call()
        assert proof_error.value.reason == reason


def test_checkpoints_are_signed_once_per_size_even_across_a_restart(tmp_path: Path) -> None:
    signed: list[str] = []

    def counting_sign(body: str) -> str:
        signed.append(body)
        return sign(body)

    first = open_vault(tmp_path / "data")
    log = TransparencyLog(first.context, ORIGIN, counting_sign)
    empty = log.checkpoint()
    assert (empty.size, empty.root) == (0, merkle.EMPTY_ROOT)
    entries = [entry(n) for n in range(5)]
    log.append(entries)
    five = log.checkpoint()
    assert log.checkpoint() == five  # the same size again: the stored note, not a new signature
    assert len(signed) == 2
    opened = open_note(five.note, [VERIFIER])
    assert opened.verified_by == (ORIGIN,)
    assert Checkpoint.parse(opened.text) == Checkpoint(ORIGIN, 5, log.root(), ())
    assert log.latest_checkpoint() == five
    first.close()

    second = open_vault(tmp_path / "data")
    try:

        def must_not_sign(body: str) -> str:
            raise AssertionError(f"signed again after the restart: {body!r}")

        reopened = TransparencyLog(second.context, ORIGIN, must_not_sign)
        assert reopened.checkpoint() == five
        assert_log_matches(reopened, entries)
        # A new size is signed, by whatever key the log has now; the stored sizes keep their notes.
        other_key = TransparencyLog(second.context, ORIGIN, counting_sign)
        other_key.append([entry(5)])
        six = other_key.checkpoint()
        assert (six.size, len(signed)) == (6, 3)
        assert reopened.latest_checkpoint() == six
        with second.context.database.read() as cursor:
            rows = cursor.execute("SELECT tree_size FROM tlog_checkpoints ORDER BY tree_size").fetchall()
        assert rows == [(0,), (5,), (6,)]
    finally:
        second.close()


def test_a_checkpoint_table_refuses_a_second_root_for_a_size(vault: Node) -> None:
    """The rule is the database's, not only the log's: a second row for a signed size cannot be written."""
    log = make_log(vault)
    log.append([entry(0)])
    log.checkpoint()
    other_root = merkle.leaf_hash(b"other")

    def second_root(cursor: Connection) -> None:
        cursor.execute(
            "INSERT INTO tlog_checkpoints VALUES (1, ?, 'forged', now())",
            [other_root],
        )

    with pytest.raises(Exception, match=r"(?i)constraint|duplicate"):
        vault.context.database.write(second_root)
    assert log.checkpoint().root == log.root()


def test_a_sign_callable_that_signs_something_else_is_refused(vault: Node) -> None:
    log = TransparencyLog(vault.context, ORIGIN, lambda body: sign(body.replace("\n", "\nextra\n", 1)))
    with pytest.raises(ValueError, match="does not hold the checkpoint body"):
        log.checkpoint()
    assert log.latest_checkpoint() is None


def test_no_acknowledged_entry_is_lost_to_kill_9(tmp_path: Path) -> None:
    """The child appends from four threads, holds the writer with one more append queued, and SIGKILLs itself."""
    data_dir = tmp_path / "data"
    script = Path(__file__).with_name("_log_child.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMOS_")}
    env.update({"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    child = subprocess.run(
        [sys.executable, str(script), str(data_dir), "4", "20"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    lines = child.stdout.splitlines()
    assert lines[-1] == "queued", child.stdout[-2000:] + child.stderr[-3000:]
    acked = {int(index): bytes.fromhex(value) for _, index, value in (line.split() for line in lines[:-1])}
    sent = sum(1 + (thread + batch) % 3 for thread in range(4) for batch in range(20))  # the child's batches
    assert len(acked) == len(lines) - 1 == sent  # every entry acknowledged once, no index twice

    vault = open_vault(data_dir)
    try:
        log = make_log(vault)
        # Every acknowledged entry is there, at its index, with its hash; the queued append never committed.
        assert log.size() == len(acked)
        assert sorted(acked) == list(range(len(acked)))
        stored = log.entries(0, len(acked))
        for index, value in acked.items():
            assert stored[index] == value
            assert log.leaf(index) == merkle.leaf_hash(value)
        assert log.root() == merkle.root_from_leaves([merkle.leaf_hash(acked[i]) for i in range(len(acked))])
        # The stored subtree hashes survived too: the log keeps appending and proving from them.
        assert log.append([entry(0)]) == [len(acked)]
        size = log.size()
        root = merkle.root_from_leaves([merkle.leaf_hash(e) for e in [*stored, entry(0)]])
        assert log.root() == root
        for index in range(0, size, 7):
            merkle.verify_inclusion(log.leaf(index), index, size, log.inclusion_proof(index), root)
    finally:
        vault.close()


def test_proofs_across_stored_and_hashed_subtrees_match_the_leaves(vault: Node) -> None:
    """Subtrees of 2**STORED_LEVEL leaves and more are read from tlog_nodes, smaller ones hashed from their leaves:
    on a log of several such chunks (appended in batches that straddle chunk edges), every root, inclusion and
    consistency proof at sizes and indexes around the edges equals what merkle computes from the entries."""
    log = make_log(vault)
    chunk = 1 << STORED_LEVEL
    entries: list[bytes] = []
    for batch in (1, chunk - 2, 3, chunk + 5, 1, 2 * chunk - 7, 300):
        new = [entry(len(entries) + n) for n in range(batch)]
        assert log.append(new) == list(range(len(entries), len(entries) + batch))
        entries += new
    leaves = [merkle.leaf_hash(e) for e in entries]
    node = reference_nodes(leaves)
    sizes = sorted({1, chunk - 1, chunk, chunk + 1, 2 * chunk, 3 * chunk - 1, 4 * chunk, len(entries)})
    assert log.root() == merkle.root_from_leaves(leaves)
    for size in sizes:
        root = merkle.root_from_leaves(leaves[:size])
        assert log.root(size) == root
        for index in sorted({0, 1, chunk - 1, chunk, chunk + 1, size // 2, size - 2, size - 1} & set(range(size))):
            proof = log.inclusion_proof(index, size)
            assert proof == merkle.inclusion_proof(index, size, node), (index, size)
            merkle.verify_inclusion(leaves[index], index, size, proof, root)
        for old in sorted({0, 1, chunk - 1, chunk, chunk + 3, size // 3, size - 1, size} & set(range(size + 1))):
            proof = log.consistency_proof(old, size)
            assert proof == merkle.consistency_proof(old, size, node), (old, size)
    # Only the large subtrees are stored.
    with vault.context.database.read() as cursor:
        levels = {int(r[0]) for r in cursor.execute("SELECT DISTINCT level FROM tlog_nodes").fetchall()}
    assert levels and min(levels) == STORED_LEVEL
