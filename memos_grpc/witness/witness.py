"""The witness: per log, the latest checkpoint it cosigned, and ``add_checkpoint`` (C2SP tlog-witness).

State is one row per log in ``witness_state`` (schema v10): origin, tree size, root hash, the checkpoint note
and the time of its cosignature. Every check that depends on that row, and the row's update, run in ONE write
operation on the vault's writer: two concurrent calls can never both advance from the same state (the second
sees the first's row, in the same group commit or the next). What needs no state (the note's grammar, the log's
signature, the proof's shape) is checked before the operation is queued, and the Ed25519 cosignature is made
after the commit with the time the transaction recorded, keeping the writer's share small. A cosignature is
returned only once the checkpoint it covers is durably the latest: a witness that crashed after answering
still refuses a fork of what it signed.

The witness key (``keys/witness.key``, mode 0600) is created at first start, and only on a node that witnesses
at least one log; its cosignature verifier key (type 0x04) is logged at start so that operators can put it in a
log's policy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from memos_grpc import reasons
from memos_grpc.errors import AbortedError, FailedPreconditionError, InvalidArgumentError, NotFoundError
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.store.database import Connection
from memos_grpc.store.witness import WitnessedCheckpoint, record_cosigned, witnessed_checkpoint
from memos_grpc.transparency import merkle
from memos_grpc.transparency._text import TransparencyFormatError
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.cosignature import CosignatureVerifier, cosign
from memos_grpc.transparency.log_keys import witnessed_logs
from memos_grpc.transparency.merkle import ProofError
from memos_grpc.transparency.note import NoteVerifier, open_note, parse_note
from memos_grpc.vault.context import VaultContext

log = logging.getLogger(__name__)

#: Where the witness key lives, under the key directory.
KEY_FILE = "witness.key"
#: Most hashes a consistency proof may hold: RFC 6962 gives at most ceil(log2 size) + 1 for sizes below 2**63.
MAX_PROOF_HASHES = 64


@dataclass(frozen=True)
class Cosigned:
    """What ``add_checkpoint`` returns: the cosignature lines (each ending in a newline) and the size recorded."""

    cosignatures: str
    size: int


class Witness:
    """Witnesses the logs named by the ``witness_logs`` setting."""

    def __init__(self, context: VaultContext) -> None:
        settings = context.settings
        self._context = context
        self._logs: dict[str, NoteVerifier] = witnessed_logs(settings.witness_logs)
        self._name = settings.witness_name
        self._key: SigningKey | None = None
        #: The witness's cosignature key, for log policies; None on a node that witnesses no log.
        self.verifier: CosignatureVerifier | None = None
        if self._logs:
            self._key = SigningKey.load_or_create(settings.key_dir / KEY_FILE)
            self.verifier = CosignatureVerifier.for_key(self._name, self._key.public_key)
            log.info(
                "witnessing %d log(s) (%s); witness key: %s",
                len(self._logs),
                ", ".join(sorted(self._logs)),
                self.verifier.vkey(),
            )

    @property
    def origins(self) -> list[str]:
        """The origins of the logs this node witnesses."""
        return sorted(self._logs)

    def latest(self, origin: str) -> WitnessedCheckpoint | None:
        """The latest checkpoint cosigned for ``origin``, or None before the first."""
        with self._context.database.read() as cursor:
            return witnessed_checkpoint(cursor, origin)

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], checkpoint_note: str) -> Cosigned:
        """Cosigns ``checkpoint_note`` if it extends the latest checkpoint cosigned for its log (see the module)."""
        if not self._logs:
            raise NotFoundError(
                "this node witnesses no log (its setting witness_logs is empty)", reason=reasons.WITNESS_UNKNOWN_LOG
            )
        try:
            checkpoint = Checkpoint.parse(parse_note(checkpoint_note).text)
        except TransparencyFormatError as error:
            raise _refused(error) from None
        verifier = self._logs.get(checkpoint.origin)
        if verifier is None:
            raise NotFoundError(
                f"this node does not witness the log {checkpoint.origin!r}", reason=reasons.WITNESS_UNKNOWN_LOG
            )
        try:
            # Only the log's key counts; other signatures (other witnesses', say) are ignored.
            text = open_note(checkpoint_note, [verifier]).text
        except TransparencyFormatError as error:
            raise _refused(error) from None
        _check_request(old_size, proof, checkpoint.size)
        hashes = list(proof)
        now = self._context.clock()

        def apply(cursor: Connection) -> int:
            stored = witnessed_checkpoint(cursor, checkpoint.origin)
            size, root = (0, merkle.EMPTY_ROOT) if stored is None else (stored.size, stored.root)
            latest = {"latest_size": str(size)}
            if old_size != size:
                raise AbortedError(
                    f"old_size is {old_size}, but the latest checkpoint this witness cosigned for "
                    f"{checkpoint.origin!r} has size {size}: send a consistency proof from {size}",
                    reason=reasons.WITNESS_SIZE_CONFLICT,
                    metadata=latest,
                )
            # A rollback (a checkpoint smaller than the cosigned one) cannot get here: old_size is at most the
            # checkpoint's size (SIZE_OUT_OF_RANGE above) and equals the cosigned size (the conflict above).
            if stored is not None and checkpoint.size == size and checkpoint.root != root:
                raise FailedPreconditionError(
                    f"the log {checkpoint.origin!r} signed two root hashes for the tree size {size}: it forked",
                    reason=reasons.WITNESS_FORK_DETECTED,
                    metadata=latest,
                )
            try:
                merkle.verify_consistency(size, checkpoint.size, root, checkpoint.root, hashes)
            except ProofError as error:
                raise InvalidArgumentError(str(error), reason=error.reason) from None
            timestamp = int(now.timestamp())
            latest_now = WitnessedCheckpoint(
                checkpoint.origin, checkpoint.size, checkpoint.root, checkpoint_note, timestamp
            )
            record_cosigned(cursor, latest_now)
            return timestamp

        timestamp = self._context.database.write(apply)
        assert self._key is not None  # set whenever a log is witnessed
        line = cosign(text, self._name, self._key, timestamp).line()
        return Cosigned(line, checkpoint.size)


def _check_request(old_size: int, proof: Sequence[bytes], size: int) -> None:
    """What the request must be whatever the state: old_size within the checkpoint, proof hashes of 32 bytes."""
    if not 0 <= old_size <= size:
        raise InvalidArgumentError(
            f"old_size {old_size} is not between 0 and the checkpoint's size {size}", reason=reasons.SIZE_OUT_OF_RANGE
        )
    if len(proof) > MAX_PROOF_HASHES:
        raise InvalidArgumentError(
            f"the consistency proof holds {len(proof)} hashes; RFC 6962 proofs hold at most {MAX_PROOF_HASHES}",
            reason=reasons.PROOF_WRONG_LENGTH,
        )
    for position, value in enumerate(proof):
        if len(value) != merkle.HASH_SIZE:
            raise InvalidArgumentError(
                f"hash {position} of the consistency proof is {len(value)} bytes, not {merkle.HASH_SIZE}",
                reason=reasons.HASH_MALFORMED,
            )


def _refused(error: TransparencyFormatError) -> InvalidArgumentError:
    """A note or checkpoint refusal as the caller's error, its reason kept."""
    return InvalidArgumentError(f"the checkpoint note: {error.message}", reason=error.reason)
