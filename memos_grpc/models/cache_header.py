"""The memos-activation blob header: what a stored KV cache says about itself, read and checked from bytes alone.

A blob is safetensors: 8 bytes of little-endian length, a JSON object naming
each tensor (``layers.{i}.key`` / ``layers.{i}.value``) with its dtype, shape
and byte span, and the format's metadata (model, dtype, layers, heads,
head_dim, tokens). Everything here is plain JSON and arithmetic, so the vault
can describe a cache without loading torch or transformers; the codec that
builds and reads the tensors is ``activation``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError

FORMAT = "memos-activation"
FORMAT_VERSION = "1"


@dataclass(frozen=True)
class StoredDtype:
    """How one element type is written: its safetensors code and its size in bytes."""

    code: str
    itemsize: int


#: dtype name (as in ActivationPayload.dtype, and torch's attribute name) -> how the blob stores it.
DTYPES: dict[str, StoredDtype] = {
    "float32": StoredDtype("F32", 4),
    "float16": StoredDtype("F16", 2),
    "bfloat16": StoredDtype("BF16", 2),
}
_CODE_TO_NAME = {stored.code: name for name, stored in DTYPES.items()}
_METADATA_KEYS = ("format", "format_version", "model_fingerprint", "num_layers", "num_heads", "head_dim", "dtype")
#: A cache header lists two small entries per layer; anything near this is not one of ours.
_MAX_HEADER_BYTES = 16 << 20


def malformed(message: str) -> InvalidArgumentError:
    """The error for a blob whose structure is broken (truncated, inconsistent, not this format)."""
    return InvalidArgumentError(f"activation blob is malformed: {message}", reason=reasons.ACTIVATION_MALFORMED)


@dataclass(frozen=True)
class CacheHeader:
    """A blob's validated description; its fields fill an ActivationPayload."""

    fingerprint: str
    num_layers: int
    num_heads: int
    head_dim: int
    dtype: str
    token_count: int

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Shape of each key (and value) tensor: [batch, heads, tokens, head_dim]."""
        return (1, self.num_heads, self.token_count, self.head_dim)


def _positive_int(metadata: dict[str, str], key: str) -> int:
    text = metadata[key]
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise malformed(f"metadata {key}={text!r} is not a positive integer")
    return int(text)


def _read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The JSON header and the size of the data buffer after it."""
    if len(data) < 8:
        raise malformed(f"{len(data)} bytes is shorter than the 8-byte header length (truncated?)")
    header_length = int.from_bytes(data[:8], "little")
    if header_length < 2 or header_length > _MAX_HEADER_BYTES or 8 + header_length > len(data):
        raise malformed(f"header length {header_length} does not fit a {len(data)}-byte blob (truncated?)")
    try:
        header = json.loads(data[8 : 8 + header_length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise malformed(f"header is not JSON: {error}") from error
    if not isinstance(header, dict):
        raise malformed("header is not a JSON object")
    return header, len(data) - 8 - header_length


def _read_metadata(header: dict[str, Any]) -> CacheHeader:
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise malformed("no string metadata in the header")
    missing = [key for key in (*_METADATA_KEYS, "token_count") if key not in metadata]
    if missing:
        raise malformed(f"metadata lacks {', '.join(missing)}")
    if metadata["format"] != FORMAT:
        raise malformed(f"format is {metadata['format']!r}, not {FORMAT!r}")
    if metadata["format_version"] != FORMAT_VERSION:
        raise InvalidArgumentError(
            f"activation format version {metadata['format_version']!r} is not supported (only {FORMAT_VERSION})",
            reason=reasons.ACTIVATION_VERSION_UNSUPPORTED,
        )
    if metadata["dtype"] not in DTYPES:
        raise InvalidArgumentError(
            f"activation dtype {metadata['dtype']!r} is not one of {', '.join(DTYPES)}",
            reason=reasons.ACTIVATION_DTYPE_MISMATCH,
        )
    if not metadata["model_fingerprint"]:
        raise malformed("metadata model_fingerprint is empty")
    return CacheHeader(
        fingerprint=metadata["model_fingerprint"],
        num_layers=_positive_int(metadata, "num_layers"),
        num_heads=_positive_int(metadata, "num_heads"),
        head_dim=_positive_int(metadata, "head_dim"),
        dtype=metadata["dtype"],
        token_count=_positive_int(metadata, "token_count"),
    )


def _check_tensors(header: dict[str, Any], described: CacheHeader, buffer_size: int) -> None:
    entries = {name: entry for name, entry in header.items() if name != "__metadata__"}
    if len(entries) != 2 * described.num_layers:
        # Checked first so a huge num_layers in a small blob costs nothing.
        raise malformed(f"{len(entries)} tensors cannot be the keys and values of {described.num_layers} layers")
    expected_names = {f"layers.{i}.{kind}" for i in range(described.num_layers) for kind in ("key", "value")}
    if set(entries) != expected_names:
        extra, absent = sorted(set(entries) - expected_names), sorted(expected_names - set(entries))
        raise malformed(f"tensor names do not match {described.num_layers} layers (extra {extra}, missing {absent})")
    stored = DTYPES[described.dtype]
    spans = []
    for name in sorted(entries):
        entry = entries[name]
        if not isinstance(entry, dict):
            raise malformed(f"{name} has no tensor description")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not (
            isinstance(dtype, str)
            and isinstance(shape, list)
            and all(type(n) is int and n >= 0 for n in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(n) is int and n >= 0 for n in offsets)
        ):
            raise malformed(f"{name} has a bad dtype, shape or data_offsets")
        if dtype != stored.code:
            found = _CODE_TO_NAME.get(dtype, dtype)
            raise InvalidArgumentError(
                f"{name} is {found} but the blob says {described.dtype}", reason=reasons.ACTIVATION_DTYPE_MISMATCH
            )
        if tuple(shape) != described.shape:
            raise InvalidArgumentError(
                f"{name} has shape {shape}; every tensor must be {list(described.shape)} "
                "([batch, heads, tokens, head_dim], the same token count in every layer)",
                reason=reasons.ACTIVATION_SHAPE_MISMATCH,
            )
        begin, end = offsets
        if end - begin != math.prod(shape) * stored.itemsize:
            raise malformed(
                f"{name} spans {end - begin} bytes, not the {math.prod(shape) * stored.itemsize} its shape needs"
            )
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise malformed("tensor data overlaps or leaves gaps")
        position = end
    if position != buffer_size:
        raise malformed(f"tensor data needs {position} bytes but {buffer_size} follow the header (truncated?)")


def inspect_cache(data: bytes) -> CacheHeader:
    """Validates a blob's structure (header, metadata, names, dtypes, shapes, offsets) without loading tensors."""
    header, buffer_size = _read_header(data)
    described = _read_metadata(header)
    _check_tensors(header, described, buffer_size)
    return described


def describe_cache(size: int, read: Callable[[int, int], bytes]) -> CacheHeader | None:
    """The validated description of a stored memos-activation blob of ``size`` bytes, read from its header alone.

    ``read(offset, count)`` returns the blob's ``count`` bytes from ``offset``; only the 8-byte length and the
    JSON header are read. None when the blob is not one (no safetensors header naming the memos-activation
    format): the vault keeps other blobs opaque. A blob that names the format is checked as ``inspect_cache`` does.
    """
    if size < 8:
        return None
    length = int.from_bytes(read(0, 8), "little")
    if length < 2 or length > _MAX_HEADER_BYTES or 8 + length > size:
        return None
    raw = read(8, length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        return None
    described = _read_metadata(header)
    _check_tensors(header, described, size - 8 - length)
    return described


def describe_cache_file(path: Path) -> CacheHeader | None:
    """``describe_cache`` of the blob in a file."""
    with open(path, "rb") as handle:

        def read(offset: int, count: int) -> bytes:
            handle.seek(offset)
            return handle.read(count)

        return describe_cache(os.fstat(handle.fileno()).st_size, read)
