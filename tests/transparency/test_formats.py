"""What the vectors cannot show: signing round-trips through opening, proof files written and read back, and a
report that names every shortfall at once."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from memos_grpc.primitives.keys import SigningKey
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint, CheckpointError
from memos_grpc.transparency.cosignature import CosignatureVerifier, add_cosignature, cosign, verify_cosigned
from memos_grpc.transparency.note import NoteError, NoteVerifier, open_note, sign_note
from memos_grpc.transparency.policy import parse_policy
from memos_grpc.transparency.proof import Check, TlogProof, verify_proof

LOG_KEY = SigningKey.from_seed(hashlib.sha256(b"test-log").digest())
WITNESS_KEY = SigningKey.from_seed(hashlib.sha256(b"test-witness").digest())
NOW = 1_780_000_000
ENTRIES = [b"entry %d" % n for n in range(5)]
LEAVES = [merkle.leaf_hash(e) for e in ENTRIES]


def node(level: int, index: int) -> bytes:
    return merkle.root_from_leaves(LEAVES[index << level : (index + 1) << level])


def cosigned_checkpoint(when: int) -> tuple[Checkpoint, str]:
    checkpoint = Checkpoint("example.com/log", len(LEAVES), merkle.root_from_leaves(LEAVES))
    note = sign_note(checkpoint.body(), checkpoint.origin, LOG_KEY)
    return checkpoint, add_cosignature(note, cosign(checkpoint.body(), "witness.example", WITNESS_KEY, when))


def test_signed_and_cosigned_checkpoint_opens_and_verifies() -> None:
    checkpoint, note = cosigned_checkpoint(NOW - 5)
    opened = open_note(note, [NoteVerifier.for_key("example.com/log", LOG_KEY.public_key)])
    assert opened.verified_by == ("example.com/log",)
    assert Checkpoint.parse(opened.text) == checkpoint
    witness = CosignatureVerifier.for_key("witness.example", WITNESS_KEY.public_key)
    assert verify_cosigned(note, witness, NOW, 60) == NOW - 5


def test_signing_refuses_text_a_note_cannot_carry() -> None:
    for text in ("no newline", "a\n\nb\n", "a\r\n", "\n"):
        with pytest.raises(NoteError) as caught:
            sign_note(text, "example.com/log", LOG_KEY)
        assert caught.value.reason == "NOTE_MALFORMED"
    with pytest.raises(NoteError):
        sign_note("a\n", "has space", LOG_KEY)


def test_checkpoint_refuses_values_its_text_could_not_hold() -> None:
    root = bytes(32)
    for origin, size, digest, reason in (
        ("", 1, root, "CHECKPOINT_ORIGIN_INVALID"),
        ("log\nx", 1, root, "CHECKPOINT_ORIGIN_INVALID"),
        ("log", -1, root, "CHECKPOINT_SIZE_INVALID"),
        ("log", 1 << 63, root, "CHECKPOINT_SIZE_INVALID"),
        ("log", 1, bytes(31), "CHECKPOINT_ROOT_INVALID"),
    ):
        with pytest.raises(CheckpointError) as caught:
            Checkpoint(origin, size, digest)
        assert caught.value.reason == reason


def test_proof_file_round_trips() -> None:
    _, note = cosigned_checkpoint(NOW)
    proof = TlogProof(2, tuple(merkle.inclusion_proof(2, 5, node)), note, extra=b"context")
    assert TlogProof.parse(proof.text()) == proof
    assert proof.text().startswith("c2sp.org/tlog-proof@v1\nextra Y29udGV4dA==\nindex 2\n")


def test_report_names_every_shortfall() -> None:
    _, note = cosigned_checkpoint(NOW - 120)
    log = NoteVerifier.for_key("example.com/log", LOG_KEY.public_key)
    witness = CosignatureVerifier.for_key("witness.example", WITNESS_KEY.public_key)
    policy = parse_policy(f"log {log.vkey()}\nwitness W {witness.vkey()}\nquorum W\n")
    text = TlogProof(2, tuple(merkle.inclusion_proof(2, 5, node)), note).text()
    now = datetime.fromtimestamp(NOW, UTC)

    assert verify_proof(ENTRIES[2], text, log, policy, policy.witnesses, now, 300)
    report = verify_proof(ENTRIES[3], text, log, policy, policy.witnesses, now, 60)
    assert not report
    assert [s.check for s in report.shortfalls] == [Check.INCLUSION, Check.FRESHNESS]
    assert report.reason == "TLOG_PROOF_INCLUSION_INVALID"
    assert report.stale_witnesses == ("W",)
    assert report.fresh_witnesses == ()
