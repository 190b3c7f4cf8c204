"""The marketplace node: its two keys, its transparency log, and the publisher of witnessed checkpoints.

Turned on by ``marketplace_enabled``. At first start the node creates its marketplace key (signs license
grants, ``keys/marketplace.key``) and its log key (signs checkpoints, ``keys/log.key``), both mode 0600.
Its publisher (``publisher.py``) signs checkpoints as the log grows and publishes each once the witness
quorum has cosigned it: only published checkpoints are served, and a caller that needs a proof of its entry
waits for one (``wait_published``). An entry is appended in the transaction that writes the row it is about
(``logged``), so a published entry always has its row, on every server that shares the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError, UnavailableError
from memos_grpc.marketplace.log import TransparencyLog
from memos_grpc.marketplace.publisher import CheckpointPublisher, PublishedCheckpoint, parse_witnesses
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.settings import Settings
from memos_grpc.store.database import Connection
from memos_grpc.transparency import merkle
from memos_grpc.transparency.note import NoteVerifier, sign_note
from memos_grpc.vault.context import VaultContext

log = logging.getLogger(__name__)
#: The marketplace's and its log's key files, under the key directory.
MARKETPLACE_KEY_FILE = "marketplace.key"
LOG_KEY_FILE = "log.key"

#: GetEntries: entries when the request names no number, and the most one call returns.
_DEFAULT_ENTRIES = 256
_MAX_ENTRIES = 1000

_T = TypeVar("_T")


@contextmanager
def _proof_errors() -> Iterator[None]:
    """The Merkle library's refusals as the project's errors (its reasons are the wire's)."""
    try:
        yield
    except merkle.ProofError as exc:
        raise InvalidArgumentError(str(exc), reason=exc.reason) from exc


class MarketplaceNode:
    """The keys, the log and the checkpoint publisher of a marketplace node."""

    def __init__(self, context: VaultContext, settings: Settings) -> None:
        self.context = context
        self.settings = settings
        self.marketplace_key = SigningKey.load_or_create(settings.key_dir / MARKETPLACE_KEY_FILE)
        self.log_key = SigningKey.load_or_create(settings.key_dir / LOG_KEY_FILE)
        self.origin = settings.marketplace_log_origin or f"memos-grpc.local/log/{self.log_key.key_id[:16]}"
        self.log_verifier = NoteVerifier.for_key(self.origin, self.log_key.public_key)
        self.log = TransparencyLog(context, self.origin, lambda body: sign_note(body, self.origin, self.log_key))
        self.witnesses = parse_witnesses(settings.marketplace_witnesses)
        wanted = settings.marketplace_witness_quorum or len(self.witnesses)
        if wanted > len(self.witnesses):
            raise InvalidArgumentError(
                f"setting marketplace_witness_quorum is {wanted} but only {len(self.witnesses)} witnesses are set",
                reason=reasons.INVALID_CONFIG,
            )
        self.quorum = wanted
        self._publisher = CheckpointPublisher(self)
        log.info(
            "marketplace on: log %s (log key %s, vkey %s), marketplace key %s, %d witnesses (quorum %d)",
            self.origin,
            self.log_key.key_id,
            self.log_verifier.vkey(),
            self.marketplace_key.key_id,
            len(self.witnesses),
            self.quorum,
        )

    def policy_text(self) -> str:
        """This log's C2SP tlog-policy: its key, its witnesses and the quorum it publishes with.

        What a buyer puts in its trust root to verify proofs offline (docs/marketplace.md).
        """
        lines = [f"log {self.log_verifier.vkey()}"]
        names = []
        for number, endpoint in enumerate(self.witnesses):
            names.append(f"w{number}")
            lines.append(f"witness w{number} {endpoint.verifier.vkey()}")
        if names:
            lines.append(f"group witnesses {self.quorum} {' '.join(names)}")
            lines.append("quorum witnesses")
        else:
            lines.append("quorum none")
        return "".join(line + "\n" for line in lines)

    # -- appends and what they wait for ----------------------------------------------------------------

    def append(self, entries: Sequence[bytes]) -> list[int]:
        """Appends entries durably and wakes the publisher; returns their indexes."""
        indexes = self.log.append(entries)
        self._publisher.wake()
        return indexes

    def published(self) -> PublishedCheckpoint | None:
        """The latest published checkpoint, or None before the first."""
        return self._publisher.latest()

    def wait_published(self, size: int, timeout: float | None = None) -> PublishedCheckpoint:
        """The first published checkpoint covering ``size`` entries; UNAVAILABLE if none comes in time."""
        return self._publisher.wait(size, self.settings.checkpoint_wait_seconds if timeout is None else timeout)

    def logged(self, apply: Callable[[Connection], _T]) -> _T:
        """Runs ``apply`` in one committed write transaction and wakes the publisher; returns its result.

        ``apply`` appends its entries with ``log.append_in`` and writes the rows they are about, deciding from the
        rows it reads there (an id taken, a license revoked already): no other write, of this server or another,
        comes between, and the entries and rows commit together or not at all.
        """
        result = self.context.database.write(apply)
        self._publisher.wake()
        return result

    def wait_for_size(self, size: int, timeout: float) -> PublishedCheckpoint | None:
        """The latest published checkpoint once it covers ``size`` entries; None after ``timeout`` or a stop.

        For followers of the log (Subscribe): unlike ``wait_published`` it neither raises nor hurries the
        publisher, so a subscriber waiting for the next entry costs nothing until one is published.
        """
        return self._publisher.wait_for_size(size, timeout)

    def changes(self) -> int:
        """A counter that grows with every published checkpoint and every ``notify_followers()`` call."""
        return self._publisher.changes()

    def wait_change(self, seen: int, timeout: float) -> bool:
        """Waits until ``changes()`` passes ``seen``; False after ``timeout`` or once the node stops."""
        return self._publisher.wait_change(seen, timeout)

    def notify_followers(self) -> None:
        """Wakes log followers: an appended entry's row is written (perhaps after its checkpoint), or a client left."""
        self._publisher.notify()

    @property
    def stopped(self) -> bool:
        return self._publisher.stopped

    @property
    def publishing(self) -> bool:
        """Whether this server held the publisher's claim when it last asked (one server of a database publishes)."""
        return self._publisher.publishing

    @property
    def publish_rounds(self) -> int:
        """How many rounds this server's publisher ran holding the claim."""
        return self._publisher.rounds

    def close(self) -> None:
        self._publisher.stop()

    # -- the published log, as TransparencyLogService serves it ------------------------------------------

    def require_published(self) -> PublishedCheckpoint:
        latest = self.published()
        if latest is None:
            raise UnavailableError(
                "the log has no published checkpoint yet: try again once its witnesses cosigned one",
                reason=reasons.NO_PUBLISHED_CHECKPOINT,
            )
        return latest

    def published_size(self, asked: int, what: str) -> tuple[int, PublishedCheckpoint | None]:
        """``asked`` checked against the published size (0: that size, with its checkpoint)."""
        latest = self.require_published()
        if asked < 0 or asked > latest.checkpoint.size:
            raise InvalidArgumentError(
                f"{what} {asked} is outside 0..{latest.checkpoint.size}, the latest published size",
                reason=reasons.SIZE_OUT_OF_RANGE,
            )
        return (latest.checkpoint.size, latest) if asked == 0 else (asked, None)

    def inclusion(self, index: int, tree_size: int) -> tuple[int, bytes, list[bytes], PublishedCheckpoint | None]:
        size, checkpoint = self.published_size(tree_size, "tree_size")
        if not 0 <= index < size:
            raise InvalidArgumentError(
                f"index {index} is not in a tree of {size} entries", reason=reasons.INDEX_OUT_OF_RANGE
            )
        with _proof_errors():
            return size, self.log.entries(index, index + 1)[0], self.log.inclusion_proof(index, size), checkpoint

    def consistency(self, old_size: int, new_size: int) -> tuple[int, list[bytes], PublishedCheckpoint | None]:
        size, checkpoint = self.published_size(new_size, "new_size")
        if not 0 <= old_size <= size:
            raise InvalidArgumentError(f"old_size {old_size} is outside 0..{size}", reason=reasons.SIZE_OUT_OF_RANGE)
        with _proof_errors():
            return size, self.log.consistency_proof(old_size, size) if old_size else [], checkpoint

    def entries(self, start: int, most: int) -> tuple[int, list[bytes]]:
        size = self.require_published().checkpoint.size
        if not 0 <= start <= size:
            raise InvalidArgumentError(
                f"start_index {start} is outside 0..{size}, the latest published size",
                reason=reasons.INDEX_OUT_OF_RANGE,
            )
        if most < 0:
            raise InvalidArgumentError("max_entries must not be negative", reason=reasons.INVALID_PAGE_SIZE)
        count = min(most or _DEFAULT_ENTRIES, _MAX_ENTRIES, size - start)
        with _proof_errors():
            return size, self.log.entries(start, start + count) if count else []
