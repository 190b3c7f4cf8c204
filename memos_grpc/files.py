"""Files only their owner may read (tokens, private keys): written whole, atomically, durably, mode 0600."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` with mode 0600 from the first byte on, replacing the file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def create_private(path: Path, data: bytes) -> bool:
    """Writes ``data`` to a new file ``path`` (mode 0600, durably) unless one exists: True if this call made it.

    The file appears whole or not at all, and of two processes creating it at once (servers sharing a key
    directory, starting together) exactly one succeeds; the other reads what the first wrote.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # fails if ``path`` exists, unlike a rename
        except FileExistsError:
            return False
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return True
    finally:
        os.unlink(temp)
