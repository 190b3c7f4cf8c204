"""Content-addressed payload blobs: ``blobs/sha256/<2 hex>/<64 hex>`` under the data dir.

A blob is written to a temporary file while it is hashed, fsynced, and only
then renamed to its digest's path, so a crash never leaves a half-written blob
under a real name. Identical payloads are stored once.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """Receives a blob's bytes chunk by chunk, hashing them on the way."""

    def __init__(self, store: BlobStore, max_bytes: int) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self.size = 0
        self._temp = store.temp_dir / f"{uuid.uuid4().hex}.part"
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
        """Makes the blob durable under its digest and returns the digest."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = self.digest
        final = self._store.path_for(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._temp, final)
        _fsync_dir(final.parent)
        return digest

    def abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)


class BlobStore:
    """The blob directory of one vault."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.temp_dir = root / "tmp"
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        (root / "sha256").mkdir(parents=True, exist_ok=True)
        # Temporary files are left only by a crash mid-upload: nothing refers to them.
        for leftover in self.temp_dir.glob("*.part"):
            leftover.unlink(missing_ok=True)

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
            raise NotFoundError(f"blob {digest} is missing from the vault", reason=reasons.BLOB_NOT_FOUND) from exc
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if offset > size:
                raise InvalidArgumentError(
                    f"read_offset {offset} is past the end of the {size}-byte payload",
                    reason=reasons.OFFSET_OUT_OF_RANGE,
                )
            handle.seek(offset)
            remaining = size - offset if limit <= 0 else min(limit, size - offset)
            while remaining > 0:
                chunk = handle.read(min(chunk_bytes, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def staging_path(self) -> Path:
        """A fresh temporary path for a blob whose digest is checked elsewhere (see ``adopt``)."""
        return self.temp_dir / f"{uuid.uuid4().hex}.part"

    def adopt(self, temp: Path, digest: str) -> None:
        """Moves a fully written, already verified temporary file into place under ``digest``, durably."""
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        final = self.path_for(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        _fsync_dir(final.parent)

    def delete(self, digest: str) -> None:
        self.path_for(digest).unlink(missing_ok=True)
