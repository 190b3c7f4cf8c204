"""Content-addressed payload blobs: what the vault's components use of a blob store (``Blobs``), and the files.

A blob is named by the sha256 of its bytes. It is written to a local temporary file while it is hashed
(``BlobWriter``) and handed to the store only when complete (``Blobs.adopt``), so a crash never leaves a
half-written blob under a real name; identical payloads are stored once. ``BlobStore`` keeps blobs as files,
``blobs/sha256/<2 hex>/<64 hex>`` under the data dir (the embedded backend); ``PgBlobStore``
(``store/postgres/blobs.py``) keeps them in the PostgreSQL database, for servers that share it.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError, NotFoundError, ResourceExhaustedError

DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")


def parse_digest(digest: str) -> str:
    """Returns the hex part of ``sha256:<hex>``; raises on any other form."""
    if not DIGEST_PATTERN.fullmatch(digest):
        raise InvalidArgumentError(
            f"digest {digest[:80]!r} is not of the form sha256:<64 lowercase hex>", reason=reasons.INVALID_DIGEST
        )
    return digest.split(":", 1)[1]


def missing(digest: str) -> NotFoundError:
    """The error for a blob the store does not hold."""
    return NotFoundError(f"blob {digest} is missing from the vault", reason=reasons.BLOB_NOT_FOUND)


def past_the_end(offset: int, size: int) -> InvalidArgumentError:
    """The error for a read that starts after the last byte."""
    return InvalidArgumentError(
        f"read_offset {offset} is past the end of the {size}-byte payload", reason=reasons.OFFSET_OUT_OF_RANGE
    )


def scratch_dir(temp_dir: Path) -> Path:
    """Makes the directory of a store's temporary files and empties it; returns it.

    Temporary files are left only by a crash mid-upload: nothing refers to them.
    """
    temp_dir.mkdir(parents=True, exist_ok=True)
    for leftover in temp_dir.glob("*.part"):
        leftover.unlink(missing_ok=True)
    return temp_dir


class Blobs(Protocol):
    """A blob store, whichever backend keeps the bytes: what the vault's components use of it."""

    @property
    def temp_dir(self) -> Path:
        """Local scratch space for files on their way into the store (and spooled exports)."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether the store holds the blob."""
        ...

    def writer(self, max_bytes: int) -> BlobWriter:
        """A writer for a new blob of at most ``max_bytes``; its ``commit`` puts it in the store."""
        ...

    def read(self, digest: str, *, offset: int = 0, limit: int = 0, chunk_bytes: int) -> Iterator[bytes]:
        """Yields the blob's bytes from ``offset``, at most ``limit`` of them (0: to the end), in pieces of at most
        ``chunk_bytes``. Raises BLOB_NOT_FOUND for a blob it does not hold, OFFSET_OUT_OF_RANGE for an offset past
        the end (when iterated)."""
        ...

    def size(self, digest: str) -> int:
        """The blob's size in bytes; raises BLOB_NOT_FOUND for a blob the store does not hold."""
        ...

    def staging_path(self) -> Path:
        """A fresh temporary path for a blob whose digest is checked elsewhere (see ``adopt``)."""
        ...

    def adopt(self, temp: Path, digest: str) -> None:
        """Puts a fully written, already verified temporary file in the store under ``digest``, durably, and
        consumes the file. A digest the store holds already is kept as it is (content addressing)."""
        ...

    def delete(self, digest: str) -> None:
        """Drops the blob's bytes (nothing when the store does not hold them)."""
        ...


class BlobWriter:
    """Receives a blob's bytes chunk by chunk into a temporary file, hashing them on the way; ``commit`` hands the
    file to its store under the digest, ``abort`` drops it."""

    def __init__(self, store: Blobs, max_bytes: int) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self.size = 0
        self._temp = store.staging_path()
        self._file = open(self._temp, "wb")  # noqa: SIM115 - closed in commit/abort

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._max_bytes:
            raise ResourceExhaustedError(
                f"payload exceeds the limit of {self._max_bytes} bytes (max_payload_bytes)",
                reason=reasons.PAYLOAD_TOO_LARGE,
            )
        self._hash.update(data)
        self._file.write(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self) -> str:
        """Makes the blob durable in the store under its digest and returns the digest."""
        self._file.close()
        digest = self.digest
        self._store.adopt(self._temp, digest)
        return digest

    def abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """The blob directory of one vault: each blob a file named by its digest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.temp_dir = scratch_dir(root / "tmp")
        (root / "sha256").mkdir(parents=True, exist_ok=True)

    def path_for(self, digest: str) -> Path:
        hex_digest = parse_digest(digest)
        return self.root / "sha256" / hex_digest[:2] / hex_digest

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def writer(self, max_bytes: int) -> BlobWriter:
        return BlobWriter(self, max_bytes)

    def read(self, digest: str, *, offset: int = 0, limit: int = 0, chunk_bytes: int) -> Iterator[bytes]:
        """Yields the blob's bytes from ``offset``, at most ``limit`` of them (0: to the end)."""
        path = self.path_for(digest)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError as exc:
            raise missing(digest) from exc
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if offset > size:
                raise past_the_end(offset, size)
            handle.seek(offset)
            remaining = size - offset if limit <= 0 else min(limit, size - offset)
            while remaining > 0:
                chunk = handle.read(min(chunk_bytes, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def size(self, digest: str) -> int:
        try:
            return self.path_for(digest).stat().st_size
        except FileNotFoundError as exc:
            raise missing(digest) from exc

    def staging_path(self) -> Path:
        return self.temp_dir / f"{uuid.uuid4().hex}.part"

    def adopt(self, temp: Path, digest: str) -> None:
        """Renames the file under ``digest`` once its bytes are on disk, then makes the rename durable too."""
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        final = self.path_for(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        _fsync_dir(final.parent)

    def delete(self, digest: str) -> None:
        self.path_for(digest).unlink(missing_ok=True)
