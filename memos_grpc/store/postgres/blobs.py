"""Payload blobs in the PostgreSQL database (``blob_chunks``, migration 0003), for servers that share it.

The bytes live where the records do, so every server sharing the database reads every blob, and a backup of
the database holds the payloads too. A blob is spooled to a local temporary file while it is hashed
(``BlobWriter``), then inserted as 1 MiB chunks in one committed transaction on the writer thread before any
row names it, as the file store fsyncs and renames before. A read fetches one chunk per statement, each on a
pooled connection taken for that statement only, so a slow reader holds no connection between chunks.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

from memos_grpc.errors import StorageError
from memos_grpc.store.blobs import BlobWriter, missing, parse_digest, past_the_end, scratch_dir
from memos_grpc.store.cursor import Cursor
from memos_grpc.store.postgres.database import PostgresDatabase

#: The size of every chunk of a blob but its last (fixed by migration 0003: sizes and offsets are computed from it).
CHUNK_BYTES = 1 << 20


class PgBlobStore:
    """The blobs of a vault whose records are in PostgreSQL; temporary files go under ``temp_dir`` (local)."""

    def __init__(self, database: PostgresDatabase, temp_dir: Path) -> None:
        self._database = database
        self.temp_dir = scratch_dir(temp_dir)

    def exists(self, digest: str) -> bool:
        parse_digest(digest)
        with self._database.read() as cursor:
            found = cursor.execute("SELECT 1 FROM blob_chunks WHERE digest = ? AND chunk = 0", [digest]).fetchone()
        return found is not None

    def writer(self, max_bytes: int) -> BlobWriter:
        return BlobWriter(self, max_bytes)

    def size(self, digest: str) -> int:
        parse_digest(digest)
        with self._database.read() as cursor:
            last = cursor.execute(
                "SELECT chunk, length(data) FROM blob_chunks WHERE digest = ? ORDER BY chunk DESC LIMIT 1", [digest]
            ).fetchone()
        if last is None:
            raise missing(digest)
        return int(last[0]) * CHUNK_BYTES + int(last[1])

    def read(self, digest: str, *, offset: int = 0, limit: int = 0, chunk_bytes: int) -> Iterator[bytes]:
        """Yields the blob's bytes from ``offset``, at most ``limit`` of them (0: to the end)."""
        size = self.size(digest)
        if offset > size:
            raise past_the_end(offset, size)
        end = size if limit <= 0 else min(size, offset + limit)
        position = offset
        while position < end:
            index, start = divmod(position, CHUNK_BYTES)
            wanted = min(CHUNK_BYTES - start, end - position)
            with self._database.read() as cursor:
                row = cursor.execute(
                    "SELECT substring(data FROM CAST(? AS INTEGER) FOR CAST(? AS INTEGER)) FROM blob_chunks "
                    "WHERE digest = ? AND chunk = ?",
                    [start + 1, wanted, digest, index],
                ).fetchone()
            if row is None:
                raise missing(digest)  # deleted while it was being read
            data = bytes(row[0])
            if len(data) != wanted:
                raise StorageError(f"blob {digest} has a chunk {index} of the wrong size in the database")
            for piece in range(0, wanted, chunk_bytes):
                yield data[piece : piece + chunk_bytes]
            position += wanted

    def staging_path(self) -> Path:
        return self.temp_dir / f"{uuid.uuid4().hex}.part"

    def adopt(self, temp: Path, digest: str) -> None:
        """Inserts the file's bytes as the blob's chunks in one committed transaction, then removes the file."""
        parse_digest(digest)

        def insert(cursor: Cursor) -> None:
            if cursor.execute("SELECT 1 FROM blob_chunks WHERE digest = ? AND chunk = 0", [digest]).fetchone():
                return  # the same bytes are stored already
            with open(temp, "rb") as handle:
                for index in itertools.count():
                    data = handle.read(CHUNK_BYTES)
                    if not data and index > 0:
                        break
                    # An empty blob is one empty chunk: chunk 0 is what says a blob is stored.
                    cursor.execute("INSERT INTO blob_chunks VALUES (?, ?, ?)", [digest, index, data])

        self._database.write(insert)
        temp.unlink(missing_ok=True)

    def delete(self, digest: str) -> None:
        parse_digest(digest)
        # Called after a commit, on the applier thread (``removal.forget_removed``): a write queued for the writer
        # thread would wait for the applier to answer it, which waits for this call. One statement in autocommit
        # is a transaction of its own. (The commit that released the blob took its chunks already: migration 0003.)
        with self._database.read() as cursor:
            cursor.execute("DELETE FROM blob_chunks WHERE digest = ?", [digest])
