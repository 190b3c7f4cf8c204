"""Chunking of payload uploads: the WritePayload request stream for bytes, files or chunk iterables.

The first request carries the header fields (parent, expected digest and
size, media type) together with the first chunk.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from memos_grpc._proto.memos.v1 import vault_service_pb2 as _v


def _remaining_size(data: bytes | BinaryIO | Iterable[bytes]) -> int:
    """The number of bytes ``data`` will yield, or 0 when that is not known in advance."""
    if isinstance(data, bytes | bytearray | memoryview):
        return len(data)
    if isinstance(data, io.IOBase) and data.seekable():
        here = data.tell()
        end = data.seek(0, io.SEEK_END)
        data.seek(here)
        return end - here
    return 0


def _chunks(data: bytes | BinaryIO | Iterable[bytes], chunk_size: int) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start : start + chunk_size])
    elif hasattr(data, "read"):
        while chunk := data.read(chunk_size):
            yield chunk
    else:
        for piece in data:
            for start in range(0, len(piece), chunk_size):
                yield bytes(piece[start : start + chunk_size])


def payload_requests(
    parent: str,
    data: bytes | BinaryIO | Iterable[bytes],
    media_type: str,
    expected_digest: str,
    chunk_size: int,
) -> Iterator[_v.WritePayloadRequest]:
    """The WritePayload stream: the header fields ride on the first message with the first chunk."""
    first: _v.WritePayloadRequest | None = _v.WritePayloadRequest(
        parent=parent,
        expected_digest=expected_digest,
        expected_size=_remaining_size(data),
        media_type=media_type,
    )
    for chunk in _chunks(data, chunk_size):
        if first is not None:
            first.data = chunk
            yield first
            first = None
        else:
            yield _v.WritePayloadRequest(data=chunk)
    if first is not None:
        yield first
