"""pgvector's ``vector`` as the store reads and writes embeddings: little-endian float32 bytes, as in DuckDB.

A live cube's embedding is a ``vector`` on PostgreSQL, so an HNSW index can search it, and a BLOB of float32 on
DuckDB. The store's code handles bytes on both: every connection of the backend loads a ``vector`` as those
bytes (``register``), and ``vector_text`` writes bytes in pgvector's text form for COPY. PostgreSQL prints a
float4 with the fewest digits that read back to the same value, and Python's shortest repr of a float32 widened to
a double does the same the other way, so a vector makes the round trip unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
from psycopg.adapt import Loader
from psycopg.types import TypeInfo


class _VectorBytesLoader(Loader):
    """Text ``[x,y,...]`` to little-endian float32 bytes."""

    def load(self, data: Any) -> bytes:
        text = bytes(data)[1:-1].decode()
        if not text:
            return b""
        return np.array(text.split(","), dtype="<f4").tobytes()


def register(connection: psycopg.Connection[Any]) -> None:
    """Makes ``connection`` load every ``vector`` as float32 bytes (the extension must exist)."""
    info = TypeInfo.fetch(connection, "vector")
    if info is None:
        raise RuntimeError("the vector extension is missing from the database")
    connection.adapters.register_loader(info.oid, _VectorBytesLoader)


def vector_text(data: bytes | None) -> str | None:
    """Little-endian float32 bytes as pgvector's text form (None stays None)."""
    if data is None:
        return None
    return "[" + ",".join(map(repr, np.frombuffer(data, dtype="<f4").tolist())) + "]"
