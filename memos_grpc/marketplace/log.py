"""The marketplace's transparency log: a durable, append-only RFC 6962 tree in the vault's DuckDB.

Three tables (schema v8): ``tlog_entries`` (index, entry bytes, leaf hash, time), ``tlog_nodes`` (the hash of
every complete subtree by (level, index), written in the transaction that completes it) and
``tlog_checkpoints`` (one signed note per tree size). Roots and proofs are computed from stored subtree hashes,
at most a couple per level, never by rebuilding the tree. The rows are read and written by
``memos_grpc.store.market_log``; the tree's rules (bounds, the log's size limit, one root per size) stay here.

Every change goes through the vault's writer. An ``append`` is one write operation: it reads the tree size and
the right-edge subtree hashes inside the transaction, so concurrent appends queued together share one group
commit and still take consecutive indexes, and so do the appends of servers sharing a PostgreSQL database (their
write transactions run one at a time); its indexes are returned only once committed, so an acknowledged entry
survives kill -9. The entry bytes are hashed before the operation is queued, keeping the writer thread's share to
the few node hashes an append completes. ``append_in`` appends inside a caller's transaction, so that an entry
and the row it is about commit together.

A checkpoint is signed for the current size unless one is stored for that size already, in which case the stored
note is returned: the log never signs two roots for one size, and a restart re-signs nothing. The tree size's
primary key makes that a rule of the database, not of this process. Signing is a callable (checkpoint body ->
signed note text), so the key and the note format stay with their owners.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import TypeVar

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError, ResourceExhaustedError, StorageError
from memos_grpc.store import market_log
from memos_grpc.store.database import Connection
from memos_grpc.store.market_log import STORED_LEVEL as STORED_LEVEL
from memos_grpc.store.market_log import SignedCheckpoint
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.merkle import ProofError
from memos_grpc.vault.context import VaultContext

#: The largest entry the log takes (MARKETPLACE.md: entries are small line-oriented text).
MAX_ENTRY_BYTES = 64 * 1024
#: The most entries one ``entries`` read returns.
MAX_READ_ENTRIES = 1000

_T = TypeVar("_T")


class TransparencyLog:
    """The vault's transparency log.

    ``origin`` is the checkpoint origin line (the log's name); ``sign`` turns a checkpoint body into the signed
    note text (the note module with the log key, in production).
    """

    def __init__(self, context: VaultContext, origin: str, sign: Callable[[str], str]) -> None:
        Checkpoint(origin, 0, merkle.EMPTY_ROOT, ())  # refuses a malformed origin now, not at the first signing
        self._context = context
        self._origin = origin
        self._sign = sign

    @property
    def origin(self) -> str:
        return self._origin

    # -- appends -------------------------------------------------------------------------------------------

    def append(self, entries: Sequence[bytes]) -> list[int]:
        """Appends ``entries`` in order, durably; returns their indexes once committed."""
        return self.submit(entries).result()

    def submit(self, entries: Sequence[bytes]) -> Future[list[int]]:
        """Queues an append and returns at once; the future holds the indexes once they are committed."""
        checked = [_checked_entry(position, entry) for position, entry in enumerate(entries)]
        leaves = [merkle.leaf_hash(entry) for entry in checked]
        now = self._context.clock()
        return self._context.database.submit(lambda cursor: _append(cursor, checked, leaves, now))

    def append_in(self, cursor: Connection, entries: Sequence[bytes]) -> list[int]:
        """Appends ``entries`` in the caller's write transaction; returns their indexes (durable once it commits).

        Numbered from the size read in that transaction, so the caller's rows can carry the indexes.
        """
        checked = [_checked_entry(position, entry) for position, entry in enumerate(entries)]
        return _append(cursor, checked, [merkle.leaf_hash(entry) for entry in checked], self._context.clock())

    # -- reads ----------------------------------------------------------------------------------------------

    def size(self) -> int:
        """The number of committed entries."""
        with self._context.database.read() as cursor:
            return market_log.log_size(cursor)

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the first ``size`` entries (default: all of them)."""
        with self._context.database.read() as cursor:
            size = self._checked_size(cursor, size)
            return self._computed(cursor, lambda node: merkle.tree_root(size, node))

    def leaf(self, index: int) -> bytes:
        """The leaf hash of entry ``index``."""
        with self._context.database.read() as cursor:
            found = market_log.leaf_hash(cursor, _checked_index(index))
            if found is None:
                size = market_log.log_size(cursor)
                raise ProofError(reasons.INDEX_OUT_OF_RANGE, f"index {index} is not in the log ({size} entries)")
            return found

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)``, at most ``MAX_READ_ENTRIES``; ``end`` may not pass the log's size."""
        with self._context.database.read() as cursor:
            size = market_log.log_size(cursor)
            if type(start) is not int or type(end) is not int or not 0 <= start <= end <= size:
                raise ProofError(
                    reasons.INDEX_OUT_OF_RANGE, f"entries [{start}, {end}) are not in the log ({size} entries)"
                )
            if end - start > MAX_READ_ENTRIES:
                raise InvalidArgumentError(
                    f"at most {MAX_READ_ENTRIES} entries are read at once, not {end - start}",
                    reason=reasons.LOG_RANGE_TOO_LARGE,
                )
            return market_log.entries_between(cursor, start, end)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The proof that entry ``index`` is in the tree of ``size`` entries (default: the whole log)."""
        with self._context.database.read() as cursor:
            size = self._checked_size(cursor, size)
            return self._computed(cursor, lambda node: merkle.inclusion_proof(index, size, node))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The proof that the tree of ``new_size`` (default: the whole log) extends the tree of ``old_size``."""
        with self._context.database.read() as cursor:
            new_size = self._checked_size(cursor, new_size)
            return self._computed(cursor, lambda node: merkle.consistency_proof(old_size, new_size, node))

    # -- checkpoints ------------------------------------------------------------------------------------------

    def checkpoint(self) -> SignedCheckpoint:
        """The signed checkpoint of the current tree: the stored one if this size was signed, else a new one."""
        with self._context.database.read() as cursor:
            size = market_log.log_size(cursor)
            root = self._computed(cursor, lambda node: merkle.tree_root(size, node))
            stored = market_log.checkpoint_of_size(cursor, size)
        if stored is not None:
            return _same_root(stored, root)
        body = Checkpoint(self._origin, size, root, ()).body()
        note = self._sign(body)
        if not note.startswith(body + "\n"):
            raise ValueError("the signer returned a note that does not hold the checkpoint body")
        now = self._context.clock()

        def apply(cursor: Connection) -> SignedCheckpoint:
            existing = market_log.checkpoint_of_size(cursor, size)
            if existing is not None:  # signed meanwhile by another caller: keep the first note
                return existing
            signed = SignedCheckpoint(size, root, note)
            market_log.insert_checkpoint(cursor, signed, now)
            return signed

        return _same_root(self._context.database.write(apply), root)

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        """The stored checkpoint of the largest tree size, or None before the first signing."""
        with self._context.database.read() as cursor:
            return market_log.latest_checkpoint(cursor)

    # -- helpers ------------------------------------------------------------------------------------------------

    def _checked_size(self, cursor: Connection, size: int | None) -> int:
        current = market_log.log_size(cursor)
        if size is None:
            return current
        if type(size) is not int or not 0 <= size <= current:
            raise ProofError(reasons.SIZE_OUT_OF_RANGE, f"tree size {size!r} is not in the log (0 to {current})")
        return size

    @staticmethod
    def _computed(cursor: Connection, compute: Callable[[merkle.NodeSource], _T]) -> _T:
        """Runs ``compute`` over stored hashes read in one query.

        Which nodes a proof or root needs depends only on the sizes, never on the hashes, so a first run with
        placeholder hashes lists them; the second run reads them from what one query fetched.
        """
        wanted: list[tuple[int, int]] = []

        def record(level: int, index: int) -> bytes:
            wanted.append((level, index))
            return bytes(merkle.HASH_SIZE)

        compute(record)
        stored = market_log.subtree_hashes(cursor, wanted)

        def node(level: int, index: int) -> bytes:
            try:
                return stored[(level, index)]
            except KeyError:
                raise StorageError(f"the log's stored hash of subtree ({level}, {index}) is missing") from None

        return compute(node)


def _append(cursor: Connection, entries: Sequence[bytes], leaves: Sequence[bytes], now: datetime) -> list[int]:
    """Appends checked entries after the size read in this transaction; returns their indexes."""
    if not entries:
        return []
    size = market_log.log_size(cursor)
    if size + len(entries) > merkle.MAX_SIZE:
        raise ResourceExhaustedError("the log is full (2**63 - 1 entries)", reason=reasons.LOG_FULL)
    return market_log.append_leaves(cursor, size, entries, leaves, now)


def _checked_entry(position: int, entry: bytes) -> bytes:
    if not isinstance(entry, bytes):
        raise TypeError(f"log entry {position} is {type(entry).__name__}, not bytes")
    if len(entry) > MAX_ENTRY_BYTES:
        raise InvalidArgumentError(
            f"log entry {position} is {len(entry)} bytes; the log takes at most {MAX_ENTRY_BYTES}",
            reason=reasons.LOG_ENTRY_TOO_LARGE,
        )
    return entry


def _checked_index(index: int) -> int:
    if type(index) is not int or not 0 <= index <= merkle.MAX_SIZE:
        raise ProofError(reasons.INDEX_OUT_OF_RANGE, f"index {index!r} is not a log index")
    return index


def _same_root(stored: SignedCheckpoint, root: bytes) -> SignedCheckpoint:
    """A stored checkpoint whose root differs from the tree's means the stored tree changed: never hand it out."""
    if stored.root != root:
        raise StorageError(
            f"the log signed root {stored.root.hex()} for size {stored.size} but its stored tree now gives "
            f"{root.hex()}: the log's tables were altered"
        )
    return stored
