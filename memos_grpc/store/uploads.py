"""Payload uploads: bytes written into the blob store, their ``blobs`` rows, and who uploaded them where.

A blob's file is written and made durable before its row is committed (``store_blob``, then ``register_blob``
in the write transaction); a crash in between leaves a file no row names, which nothing can reach. An upload
record (``blob_uploads``) lets its principal name the blob in cubes of that space for a grace period; the
checks of who may name a blob are ``vault/blob_access.py``'s, the rows they read are here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from memos_grpc.store.blobs import Blobs
from memos_grpc.store.database import Connection
from memos_grpc.store.visibility import CubeVisibility


@dataclass(frozen=True)
class StoredBlob:
    """A blob now in the blob store: its digest (``sha256:<hex>``) and size in bytes."""

    digest: str
    size: int


def _accept_any(size: int, digest: str) -> None:
    """Takes every blob as it came."""


def store_blob(
    blobs: Blobs,
    chunks: Iterable[bytes],
    max_bytes: int,
    accept: Callable[[int, str], None] = _accept_any,
) -> StoredBlob:
    """Writes ``chunks`` as one blob under its digest, hashing them on the way.

    ``accept(size, digest)`` runs once every byte is in and before the blob gets its name; it refuses by raising.
    Any failure (too many bytes, a refusal, an error raised while ``chunks`` is read) leaves nothing behind.
    """
    writer = blobs.writer(max_bytes)
    try:
        for chunk in chunks:
            writer.write(chunk)
        accept(writer.size, writer.digest)
        digest = writer.commit()
    except BaseException:
        writer.abort()
        raise
    return StoredBlob(digest, writer.size)


def register_blob(cursor: Connection, digest: str, size: int, media_type: str, create_time: datetime) -> None:
    """Records a stored blob (kept as it is if it is known already: identical bytes are stored once)."""
    cursor.execute(
        "INSERT INTO blobs VALUES (?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
        [digest, size, media_type, create_time],
    )


def record_upload(cursor: Connection, space_id: str, principal: str, digest: str, now: datetime) -> None:
    """Records that ``principal`` holds the bytes of ``digest`` in ``space_id`` (as of ``now``, or later if so)."""
    cursor.execute(
        "INSERT INTO blob_uploads VALUES (?, ?, ?, ?) ON CONFLICT (space_id, principal, digest) "
        "DO UPDATE SET upload_time = greatest(blob_uploads.upload_time, excluded.upload_time)",
        [space_id, principal, digest, now],
    )


def uploaded_since(cursor: Connection, space_id: str, principal: str, digest: str, since: datetime) -> bool:
    """Whether ``principal`` uploaded the (still stored) blob into ``space_id`` at ``since`` or later."""
    found = cursor.execute(
        "SELECT 1 FROM blob_uploads u JOIN blobs b ON b.digest = u.digest "
        "WHERE u.space_id = ? AND u.principal = ? AND u.digest = ? AND u.upload_time >= ?",
        [space_id, principal, digest, since],
    ).fetchone()
    return found is not None


def named_by_readable_cube(
    cursor: Connection, space_id: str, digest: str, now: datetime, visibility: CubeVisibility
) -> bool:
    """Whether a cube of ``space_id`` live at ``now`` names the blob and ``visibility``'s caller may read it in full."""
    readable_sql, readable_params = visibility.sql(ranked=True)
    found = cursor.execute(
        "SELECT 1 FROM cubes WHERE space_id = ? AND blob_digest = ? "
        f"AND (expire_time IS NULL OR expire_time > ?) AND {readable_sql} LIMIT 1",
        [space_id, digest, now, *readable_params],
    ).fetchone()
    return found is not None
