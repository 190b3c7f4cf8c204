"""The marketplace's transparency log as stored: entries, subtree hashes, signed and published checkpoints.

Four tables (schema v8, v9): ``tlog_entries`` (index, entry bytes, leaf hash, time), ``tlog_nodes`` (the hash of
every complete subtree of at least ``2**STORED_LEVEL`` leaves by (level, index), written in the transaction that
completes it), ``tlog_checkpoints`` (one signed note per tree size) and ``tlog_published`` (the cosigned note the
node publishes per tree size). Smaller subtrees are hashed from their leaves when asked for, read by a range of
``tlog_entries`` (stored in index order, so DuckDB reads one row group): every lookup a proof or an append makes
then costs the same at any log size, since ``tlog_nodes`` holds about n/512 rows to join against, not 2n.

The tree's rules (which subtrees a root or a proof needs, the log's size limit, never two roots for one size)
stay with the log (``memos_grpc.marketplace.log``); these functions read and write rows in the caller's
transaction. An append and a publication note ``MARKET_LOG`` in the change log: the other servers of a PostgreSQL
database then wake their publisher (one of them publishes) and read the published checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from memos_grpc.store.database import SPLIT_LIST, Connection, id_list
from memos_grpc.transparency import merkle

#: The change kind of entries appended or a checkpoint published.
MARKET_LOG = "market_log"
#: Complete subtrees of at least 2**STORED_LEVEL leaves are stored in ``tlog_nodes``; smaller ones are hashed
#: from their leaves.
STORED_LEVEL = 10
_CHUNK = 1 << STORED_LEVEL

#: Stored hashes of the (level, index) pairs given as two ``id_list`` parameters of the same length.
_NODES_SQL = f"""
    SELECT n.level, n.node_index, n.hash
    FROM tlog_nodes n
    JOIN (
        SELECT CAST(unnest({SPLIT_LIST}) AS SMALLINT) AS level, CAST(unnest({SPLIT_LIST}) AS BIGINT) AS node_index
    ) wanted USING (level, node_index)
"""
_SIZE_SQL = "SELECT coalesce(max(entry_index) + 1, 0) FROM tlog_entries"
_LEAVES_SQL = "SELECT leaf_hash FROM tlog_entries WHERE entry_index >= ? AND entry_index < ? ORDER BY entry_index"


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint the log signed: its tree size, root hash and the signed note text."""

    size: int
    root: bytes
    note: str


# -- entries and subtrees ------------------------------------------------------------------------------------


def log_size(cursor: Connection) -> int:
    """The number of committed entries."""
    row = cursor.execute(_SIZE_SQL).fetchone()
    return int(row[0]) if row is not None else 0


def append_leaves(
    cursor: Connection, size: int, entries: Sequence[bytes], leaves: Sequence[bytes], now: datetime
) -> list[int]:
    """Writes ``entries`` (with their leaf hashes) after the first ``size`` and the subtrees they complete.

    ``size`` is the log's size read in this transaction; returns the new entries' indexes.
    """
    # The right edge of the tree: the complete subtrees the new leaves will be paired with.
    edge = [(level, (size >> level) - 1) for level in range(size.bit_length()) if size >> level & 1]
    known = subtree_hashes(cursor, edge)
    new_nodes: list[tuple[int, int, bytes]] = []
    for offset, leaf in enumerate(leaves):
        level, index, value = 0, size + offset, leaf
        known[(0, index)] = leaf
        new_nodes.append((0, index, leaf))
        while index & 1:  # a right child completes its parent
            value = merkle.node_hash(known[(level, index - 1)], value)
            level, index = level + 1, index >> 1
            known[(level, index)] = value
            new_nodes.append((level, index, value))
    new_nodes = [node for node in new_nodes if node[0] >= STORED_LEVEL]
    # One Arrow table per statement: DuckDB's executemany costs about half a millisecond per row.
    cursor.insert_table(
        "tlog_entries",
        pa.table(
            {
                "entry_index": pa.array(range(size, size + len(entries)), pa.int64()),
                "entry": pa.array(entries, pa.binary()),
                "leaf_hash": pa.array(leaves, pa.binary()),
                "append_time": pa.array([now] * len(entries), pa.timestamp("us", tz="UTC")),
            }
        ),
    )
    cursor.insert_table(
        "tlog_nodes",
        pa.table(
            {
                "level": pa.array([n[0] for n in new_nodes], pa.int16()),
                "node_index": pa.array([n[1] for n in new_nodes], pa.int64()),
                "hash": pa.array([n[2] for n in new_nodes], pa.binary()),
            }
        ),
    )
    cursor.changed(MARKET_LOG)
    return list(range(size, size + len(entries)))


def leaf_hash(cursor: Connection, index: int) -> bytes | None:
    """The leaf hash of entry ``index``, or None when the log has no such entry."""
    row = cursor.execute("SELECT leaf_hash FROM tlog_entries WHERE entry_index = ?", [index]).fetchone()
    return None if row is None else bytes(row[0])


def entries_between(cursor: Connection, start: int, end: int) -> list[bytes]:
    """The entries ``[start, end)`` in index order (those the log holds)."""
    rows = cursor.execute(
        "SELECT entry FROM tlog_entries WHERE entry_index >= ? AND entry_index < ? ORDER BY entry_index",
        [start, end],
    ).fetchall()
    return [bytes(row[0]) for row in rows]


def subtree_hashes(cursor: Connection, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The hashes of these complete subtrees by (level, index): stored ones read in one query, small ones hashed
    from their leaves. A subtree not complete (yet) is left out, as if unstored."""
    stored = [key for key in keys if key[0] >= STORED_LEVEL]
    found: dict[tuple[int, int], bytes] = {}
    if stored:
        rows = cursor.execute(_NODES_SQL, [id_list(k[0] for k in stored), id_list(k[1] for k in stored)]).fetchall()
        found = {(int(level), int(index)): bytes(value) for level, index, value in rows}
    by_chunk: dict[int, list[tuple[int, int]]] = {}
    for level, index in keys:
        if level < STORED_LEVEL:  # it lies inside one aligned chunk of _CHUNK leaves
            by_chunk.setdefault((index << level) // _CHUNK, []).append((level, index))
    for chunk, wanted in by_chunk.items():
        start = chunk * _CHUNK
        leaves = [bytes(row[0]) for row in cursor.execute(_LEAVES_SQL, [start, start + _CHUNK]).fetchall()]
        for level, index in wanted:
            first = (index << level) - start
            if first + (1 << level) <= len(leaves):
                found[(level, index)] = merkle.root_from_leaves(leaves[first : first + (1 << level)])
    return found


# -- signed checkpoints ---------------------------------------------------------------------------------------


def checkpoint_of_size(cursor: Connection, size: int) -> SignedCheckpoint | None:
    """The checkpoint signed for tree size ``size``, if one was."""
    row = cursor.execute("SELECT root, note FROM tlog_checkpoints WHERE tree_size = ?", [size]).fetchone()
    return None if row is None else SignedCheckpoint(size, bytes(row[0]), str(row[1]))


def insert_checkpoint(cursor: Connection, checkpoint: SignedCheckpoint, sign_time: datetime) -> None:
    """Keeps a newly signed checkpoint (the tree size's primary key refuses a second one for the same size)."""
    cursor.execute(
        "INSERT INTO tlog_checkpoints VALUES (?, ?, ?, ?)",
        [checkpoint.size, checkpoint.root, checkpoint.note, sign_time],
    )


def latest_checkpoint(cursor: Connection) -> SignedCheckpoint | None:
    """The signed checkpoint of the largest tree size, or None before the first signing."""
    row = cursor.execute(
        "SELECT tree_size, root, note FROM tlog_checkpoints ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    return None if row is None else SignedCheckpoint(int(row[0]), bytes(row[1]), str(row[2]))


# -- published checkpoints ------------------------------------------------------------------------------------


def publish_checkpoint(cursor: Connection, size: int, note: str, publish_time: datetime) -> None:
    """Records the cosigned note published for ``size``; a size published already keeps its note."""
    cursor.execute(
        "INSERT INTO tlog_published VALUES (?, ?, ?) ON CONFLICT (tree_size) DO NOTHING", [size, note, publish_time]
    )
    cursor.changed(MARKET_LOG)


def republish_checkpoint(cursor: Connection, size: int, note: str, publish_time: datetime) -> None:
    """Replaces the published note of ``size`` (the same checkpoint, cosigned again)."""
    cursor.execute(
        "UPDATE tlog_published SET note = ?, publish_time = ? WHERE tree_size = ?", [note, publish_time, size]
    )
    cursor.changed(MARKET_LOG)


def latest_published_note(cursor: Connection) -> str | None:
    """The published note of the largest tree size, or None before the first publication."""
    row = cursor.execute("SELECT note FROM tlog_published ORDER BY tree_size DESC LIMIT 1").fetchone()
    return None if row is None else str(row[0])


def first_published_covering(cursor: Connection, index: int) -> tuple[int, str] | None:
    """(tree size, note) of the first published checkpoint that covers entry ``index``, or None yet."""
    row = cursor.execute(
        "SELECT tree_size, note FROM tlog_published WHERE tree_size > ? ORDER BY tree_size LIMIT 1", [index]
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))
