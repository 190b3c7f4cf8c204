"""What the vault reads from a cube's stored blob itself: the header of a memos-activation KV cache.

A cache made with ``encode_cache`` describes itself (model, dtype, layers,
heads, tokens). When a cube is created or imported with such a blob, its header is checked
(truncated or inconsistent files are refused) and the ActivationPayload is
filled from it, or refused where it says otherwise: a plan's token budget
relies on ``token_count``. Blobs in any other format stay opaque. Only the header
module is read, so describing a cache loads neither torch nor transformers.
"""

from __future__ import annotations

from pathlib import Path

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc.errors import InvalidArgumentError, NotFoundError
from memos_grpc.models.cache_header import CacheHeader, describe_cache, describe_cache_file
from memos_grpc.store.blobs import Blobs


def describe_activation(payload: cube_pb2.ActivationPayload, path: Path) -> None:
    """Checks ``payload`` against its blob (a file at ``path``, as an import stages it) and fills what it leaves
    unset. A no-op for blobs in other formats.
    """
    if not path.is_file():
        return  # the create reports BLOB_NOT_FOUND
    _check_and_fill(payload, describe_cache_file(path))


def describe_stored_activation(payload: cube_pb2.ActivationPayload, blobs: Blobs) -> None:
    """As ``describe_activation``, for a blob in the blob store: only its header is read from the store."""
    digest = payload.blob.digest
    try:
        size = blobs.size(digest)
    except NotFoundError:
        return  # the create reports BLOB_NOT_FOUND

    def read(offset: int, count: int) -> bytes:
        return b"".join(blobs.read(digest, offset=offset, limit=count, chunk_bytes=count))

    _check_and_fill(payload, describe_cache(size, read))


def _check_and_fill(payload: cube_pb2.ActivationPayload, described: CacheHeader | None) -> None:
    if described is None:
        return
    if payload.model_fingerprint != described.fingerprint:
        raise InvalidArgumentError(
            f"cube.activation.model_fingerprint is {payload.model_fingerprint}, "
            f"but its blob was computed by {described.fingerprint}",
            reason=reasons.ACTIVATION_MALFORMED,
        )
    if payload.dtype and payload.dtype != described.dtype:
        raise InvalidArgumentError(
            f"cube.activation.dtype is {payload.dtype}, but its blob holds {described.dtype}",
            reason=reasons.ACTIVATION_DTYPE_MISMATCH,
        )
    given = (list(payload.shape), payload.num_layers, payload.num_heads, payload.token_count)
    stored = (list(described.shape), described.num_layers, described.num_heads, described.token_count)
    for name, mine, theirs in zip(("shape", "num_layers", "num_heads", "token_count"), given, stored, strict=True):
        if mine and mine != theirs:
            raise InvalidArgumentError(
                f"cube.activation.{name} is {mine}, but its blob says {theirs}",
                reason=reasons.ACTIVATION_SHAPE_MISMATCH,
            )
    payload.dtype = described.dtype
    payload.shape[:] = list(described.shape)
    payload.num_layers, payload.num_heads, payload.token_count = stored[1:]
