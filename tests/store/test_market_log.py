"""memos_grpc.store.market_log on a real database: entries and subtree hashes as the tree needs them, one signed
checkpoint per size, published notes and the first one covering an entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memos_grpc.errors import StorageError
from memos_grpc.store import market_log
from memos_grpc.store.database import Connection, Database
from memos_grpc.store.market_log import STORED_LEVEL, SignedCheckpoint
from memos_grpc.transparency import merkle

T0 = datetime(2030, 1, 1, tzinfo=UTC)
CHUNK = 1 << STORED_LEVEL


def _entry(index: int) -> bytes:
    return f"entry {index}\n".encode()


def _append(database: Database, entries: list[bytes]) -> list[int]:
    leaves = [merkle.leaf_hash(entry) for entry in entries]

    def apply(cursor: Connection) -> list[int]:
        return market_log.append_leaves(cursor, market_log.log_size(cursor), entries, leaves, T0)

    return database.write(apply)


def test_an_empty_log_has_nothing(database: Database) -> None:
    with database.read() as cursor:
        assert market_log.log_size(cursor) == 0
        assert market_log.leaf_hash(cursor, 0) is None
        assert market_log.entries_between(cursor, 0, 10) == []
        assert market_log.subtree_hashes(cursor, [(0, 0), (STORED_LEVEL, 0)]) == {}
        assert market_log.latest_checkpoint(cursor) is None
        assert market_log.checkpoint_of_size(cursor, 0) is None
        assert market_log.latest_published_note(cursor) is None
        assert market_log.first_published_covering(cursor, 0) is None


def test_appended_entries_give_the_subtree_hashes_of_the_tree(database: Database) -> None:
    """Batches that straddle the edges of stored chunks: every complete subtree's hash, stored or hashed from its
    leaves, is the one merkle computes from the entries; an incomplete one is not given; only the large ones are
    stored."""
    entries: list[bytes] = []
    for batch in (1, CHUNK - 2, 3, CHUNK + 5, 700):
        new = [_entry(len(entries) + n) for n in range(batch)]
        assert _append(database, new) == list(range(len(entries), len(entries) + batch))
        entries += new
    leaves = [merkle.leaf_hash(entry) for entry in entries]
    size = len(entries)
    keys = [
        (level, index)
        for level in range(size.bit_length())
        for index in range(size >> level)
        if level >= STORED_LEVEL - 1 or index % 97 == 0
    ]
    with database.read() as cursor:
        assert market_log.log_size(cursor) == size
        found = market_log.subtree_hashes(cursor, keys)
        incomplete = market_log.subtree_hashes(cursor, [(1, size // 2), (STORED_LEVEL, size // CHUNK)])
        assert market_log.leaf_hash(cursor, size - 1) == leaves[-1]
        assert market_log.entries_between(cursor, CHUNK - 1, CHUNK + 2) == entries[CHUNK - 1 : CHUNK + 2]
        assert market_log.entries_between(cursor, size - 2, size + 5) == entries[-2:]
        levels = {int(r[0]) for r in cursor.execute("SELECT DISTINCT level FROM tlog_nodes").fetchall()}
    assert size % 2 == 1 and size % CHUNK  # so that the last pair and the last chunk are incomplete
    assert set(found) == set(keys)
    for (level, index), value in found.items():
        assert value == merkle.root_from_leaves(leaves[index << level : (index + 1) << level]), (level, index)
    assert incomplete == {}
    assert levels == {STORED_LEVEL, STORED_LEVEL + 1}
    with database.read() as cursor:
        root = merkle.tree_root(
            size, lambda level, index: market_log.subtree_hashes(cursor, [(level, index)])[(level, index)]
        )
    assert root == merkle.root_from_leaves(leaves)


def test_a_size_is_signed_once_and_the_largest_is_the_latest(database: Database) -> None:
    first = SignedCheckpoint(3, b"\x01" * 32, "origin\n3\nroot\n\n- sig\n")
    database.write(lambda cursor: market_log.insert_checkpoint(cursor, first, T0))
    later = SignedCheckpoint(5, b"\x02" * 32, "origin\n5\nroot\n\n- sig\n")
    database.write(lambda cursor: market_log.insert_checkpoint(cursor, later, T0 + timedelta(seconds=1)))
    with pytest.raises(StorageError):
        other = SignedCheckpoint(3, b"\x03" * 32, "another root for size 3")
        database.write(lambda cursor: market_log.insert_checkpoint(cursor, other, T0))
    with database.read() as cursor:
        assert market_log.checkpoint_of_size(cursor, 3) == first
        assert market_log.checkpoint_of_size(cursor, 4) is None
        assert market_log.latest_checkpoint(cursor) == later


def test_published_notes_keep_the_first_until_republished(database: Database) -> None:
    database.write(lambda cursor: market_log.publish_checkpoint(cursor, 4, "note 4", T0))
    database.write(lambda cursor: market_log.publish_checkpoint(cursor, 4, "another note 4", T0))
    database.write(lambda cursor: market_log.publish_checkpoint(cursor, 9, "note 9", T0))
    with database.read() as cursor:
        assert market_log.latest_published_note(cursor) == "note 9"
        assert market_log.first_published_covering(cursor, 0) == (4, "note 4")
        assert market_log.first_published_covering(cursor, 3) == (4, "note 4")
        assert market_log.first_published_covering(cursor, 4) == (9, "note 9")
        assert market_log.first_published_covering(cursor, 9) is None
    database.write(lambda cursor: market_log.republish_checkpoint(cursor, 4, "note 4 cosigned again", T0))
    with database.read() as cursor:
        assert market_log.first_published_covering(cursor, 1) == (4, "note 4 cosigned again")
        assert market_log.latest_published_note(cursor) == "note 9"
