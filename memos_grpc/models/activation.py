"""The activation-memory codec: a model's KV cache as a safetensors blob, and back.

Decoding validates the whole header (metadata, tensor names, dtypes, shapes,
offsets) against the model before any tensor is built; nothing is unpickled.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer

from memos_grpc.errors import FailedPreconditionError, InvalidArgumentError, ModelMismatchError
from memos_grpc.models.tensorfile import save_canonical

FORMAT = "memos-activation"
FORMAT_VERSION = "1"
MALFORMED = "ACTIVATION_MALFORMED"
SHAPE_MISMATCH = "ACTIVATION_SHAPE_MISMATCH"
DTYPE_MISMATCH = "ACTIVATION_DTYPE_MISMATCH"
VERSION_UNSUPPORTED = "ACTIVATION_VERSION_UNSUPPORTED"
MODEL_UNSUPPORTED = "ACTIVATION_MODEL_UNSUPPORTED"
MODEL_MISMATCH = "MODEL_MISMATCH"

#: dtype name (as in ActivationPayload.dtype) -> (torch dtype, safetensors code, bytes per element).
_DTYPES: dict[str, tuple[torch.dtype, str, int]] = {
    "float32": (torch.float32, "F32", 4),
    "float16": (torch.float16, "F16", 2),
    "bfloat16": (torch.bfloat16, "BF16", 2),
}
_CODE_TO_NAME = {code: name for name, (_, code, _) in _DTYPES.items()}
_TORCH_TO_NAME = {dtype: name for name, (dtype, _, _) in _DTYPES.items()}
_METADATA_KEYS = ("format", "format_version", "model_fingerprint", "num_layers", "num_heads", "head_dim", "dtype")
#: A cache header lists two small entries per layer; anything near this is not one of ours.
_MAX_HEADER_BYTES = 16 << 20


def _malformed(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"activation blob is malformed: {message}", reason=MALFORMED)


@dataclass(frozen=True)
class CacheSpec:
    """What a cache must look like to be loaded into one model."""

    fingerprint: str
    num_layers: int
    num_heads: int
    head_dim: int
    dtype: str
    device: str = "cpu"

    @classmethod
    def for_model(cls, model: PreTrainedModel, fingerprint: str) -> CacheSpec:
        """The spec of ``model`` (fingerprinted by the caller from its directory).

        Models whose cache is not one plain full-attention layer per decoder
        layer (sliding windows, linear attention, KV sharing) are refused: their
        caches keep less than every token, which this format does not describe.
        """
        config = model.config.get_text_config(decoder=True)
        layer_types = {type(layer) for layer in DynamicCache(config=config).layers}
        num_layers = int(config.num_hidden_layers)
        if layer_types - {DynamicLayer}:
            names = ", ".join(sorted(kind.__name__ for kind in layer_types))
            raise FailedPreconditionError(
                f"model {fingerprint} uses cache layers ({names}) that activation memory cannot store",
                reason=MODEL_UNSUPPORTED,
            )
        num_attention_heads = int(config.num_attention_heads)
        num_heads = getattr(config, "num_key_value_heads", None) or num_attention_heads
        head_dim = getattr(config, "head_dim", None) or int(config.hidden_size) // num_attention_heads
        dtype = _TORCH_TO_NAME.get(model.dtype)
        if dtype is None:
            raise FailedPreconditionError(
                f"model {fingerprint} runs in {model.dtype}; activation memory stores only {', '.join(_DTYPES)}",
                reason=MODEL_UNSUPPORTED,
            )
        return cls(fingerprint, num_layers, int(num_heads), int(head_dim), dtype, str(model.device))


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


def _layer_tensors(cache: Cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    pairs = []
    for index, layer in enumerate(cache.layers):
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if (
            type(layer) is not DynamicLayer
            or not isinstance(keys, torch.Tensor)
            or not isinstance(values, torch.Tensor)
        ):
            raise InvalidArgumentError(
                f"cache layer {index} is a {type(layer).__name__} without key/value tensors; "
                "only full-attention dynamic caches can be stored",
                reason=MODEL_UNSUPPORTED,
            )
        pairs.append((keys, values))
    return pairs


def encode_cache(cache: Cache, fingerprint: str, token_count: int) -> bytes:
    """A safetensors blob of the cache: ``layers.{i}.key`` / ``layers.{i}.value`` and their description."""
    pairs = _layer_tensors(cache)
    if not pairs:
        raise InvalidArgumentError("the cache holds no layers", reason=SHAPE_MISMATCH)
    if not fingerprint:
        raise InvalidArgumentError("a cache needs the fingerprint of its model", reason=MODEL_MISMATCH)
    first = pairs[0][0]
    dtype = _TORCH_TO_NAME.get(first.dtype)
    if dtype is None:
        raise InvalidArgumentError(
            f"cache dtype {first.dtype} is not one of {', '.join(_DTYPES)}", reason=DTYPE_MISMATCH
        )
    if first.dim() != 4 or first.shape[0] != 1 or first.shape[2] != token_count or token_count < 1:
        raise InvalidArgumentError(
            f"cache tensors are {list(first.shape)}; expected [1, heads, {token_count}, head_dim] (one sequence)",
            reason=SHAPE_MISMATCH,
        )
    tensors: dict[str, torch.Tensor] = {}
    for index, (keys, values) in enumerate(pairs):
        for kind, tensor in (("key", keys), ("value", values)):
            if tensor.shape != first.shape or tensor.dtype != first.dtype:
                raise InvalidArgumentError(
                    f"layers.{index}.{kind} is {tensor.dtype} {list(tensor.shape)}; "
                    f"layer 0 is {first.dtype} {list(first.shape)}",
                    reason=SHAPE_MISMATCH if tensor.shape != first.shape else DTYPE_MISMATCH,
                )
            tensors[f"layers.{index}.{kind}"] = tensor.detach().to("cpu").contiguous()
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_fingerprint": fingerprint,
        "num_layers": str(len(pairs)),
        "num_heads": str(first.shape[1]),
        "head_dim": str(first.shape[3]),
        "dtype": dtype,
        "token_count": str(token_count),
    }
    return save_canonical(tensors, metadata)


def _positive_int(metadata: dict[str, str], key: str) -> int:
    text = metadata[key]
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise _malformed(f"metadata {key}={text!r} is not a positive integer")
    return int(text)


def _read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The JSON header and the size of the data buffer after it."""
    if len(data) < 8:
        raise _malformed(f"{len(data)} bytes is shorter than the 8-byte header length (truncated?)")
    header_length = int.from_bytes(data[:8], "little")
    if header_length < 2 or header_length > _MAX_HEADER_BYTES or 8 + header_length > len(data):
        raise _malformed(f"header length {header_length} does not fit a {len(data)}-byte blob (truncated?)")
    try:
        header = json.loads(data[8 : 8 + header_length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _malformed(f"header is not JSON: {error}") from error
    if not isinstance(header, dict):
        raise _malformed("header is not a JSON object")
    return header, len(data) - 8 - header_length


def _read_metadata(header: dict[str, Any]) -> CacheHeader:
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _malformed("no string metadata in the header")
    missing = [key for key in (*_METADATA_KEYS, "token_count") if key not in metadata]
    if missing:
        raise _malformed(f"metadata lacks {', '.join(missing)}")
    if metadata["format"] != FORMAT:
        raise _malformed(f"format is {metadata['format']!r}, not {FORMAT!r}")
    if metadata["format_version"] != FORMAT_VERSION:
        raise InvalidArgumentError(
            f"activation format version {metadata['format_version']!r} is not supported (only {FORMAT_VERSION})",
            reason=VERSION_UNSUPPORTED,
        )
    if metadata["dtype"] not in _DTYPES:
        raise InvalidArgumentError(
            f"activation dtype {metadata['dtype']!r} is not one of {', '.join(_DTYPES)}", reason=DTYPE_MISMATCH
        )
    if not metadata["model_fingerprint"]:
        raise _malformed("metadata model_fingerprint is empty")
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
        raise _malformed(f"{len(entries)} tensors cannot be the keys and values of {described.num_layers} layers")
    expected_names = {f"layers.{i}.{kind}" for i in range(described.num_layers) for kind in ("key", "value")}
    if set(entries) != expected_names:
        extra, absent = sorted(set(entries) - expected_names), sorted(expected_names - set(entries))
        raise _malformed(f"tensor names do not match {described.num_layers} layers (extra {extra}, missing {absent})")
    _, code, itemsize = _DTYPES[described.dtype]
    spans = []
    for name in sorted(entries):
        entry = entries[name]
        if not isinstance(entry, dict):
            raise _malformed(f"{name} has no tensor description")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not (
            isinstance(dtype, str)
            and isinstance(shape, list)
            and all(type(n) is int and n >= 0 for n in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(n) is int and n >= 0 for n in offsets)
        ):
            raise _malformed(f"{name} has a bad dtype, shape or data_offsets")
        if dtype != code:
            found = _CODE_TO_NAME.get(dtype, dtype)
            raise InvalidArgumentError(f"{name} is {found} but the blob says {described.dtype}", reason=DTYPE_MISMATCH)
        if tuple(shape) != described.shape:
            raise InvalidArgumentError(
                f"{name} has shape {shape}; every tensor must be {list(described.shape)} "
                "([batch, heads, tokens, head_dim], the same token count in every layer)",
                reason=SHAPE_MISMATCH,
            )
        begin, end = offsets
        if end - begin != math.prod(shape) * itemsize:
            raise _malformed(f"{name} spans {end - begin} bytes, not the {math.prod(shape) * itemsize} its shape needs")
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise _malformed("tensor data overlaps or leaves gaps")
        position = end
    if position != buffer_size:
        raise _malformed(f"tensor data needs {position} bytes but {buffer_size} follow the header (truncated?)")


def inspect_cache(data: bytes) -> CacheHeader:
    """Validates a blob's structure (header, metadata, names, dtypes, shapes, offsets) without loading tensors."""
    header, buffer_size = _read_header(data)
    described = _read_metadata(header)
    _check_tensors(header, described, buffer_size)
    return described


def describe_cache_file(path: Path) -> CacheHeader | None:
    """The validated description of a stored memos-activation blob, read from its header alone.

    None when the file is not one (no safetensors header naming the memos-activation format): the
    vault keeps other blobs opaque. A file that names the format is checked as ``inspect_cache`` does.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        first = handle.read(8)
        if len(first) < 8:
            return None
        length = int.from_bytes(first, "little")
        if length < 2 or length > _MAX_HEADER_BYTES or 8 + length > size:
            return None
        raw = handle.read(length)
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


def _check_against(described: CacheHeader, expected: CacheSpec) -> None:
    if described.fingerprint != expected.fingerprint:
        raise ModelMismatchError(
            f"activation was computed by model {described.fingerprint}, not by {expected.fingerprint}"
        )
    if described.dtype != expected.dtype:
        raise InvalidArgumentError(
            f"activation is {described.dtype} but the model runs in {expected.dtype}", reason=DTYPE_MISMATCH
        )
    got = (described.num_layers, described.num_heads, described.head_dim)
    want = (expected.num_layers, expected.num_heads, expected.head_dim)
    if got != want:
        raise InvalidArgumentError(
            f"activation has (layers, kv heads, head_dim) = {got}; the model needs {want}", reason=SHAPE_MISMATCH
        )


def decode_cache(data: bytes, expected: CacheSpec) -> DynamicCache:
    """A fresh cache from ``data``, after checking it fits the model ``expected`` describes.

    The cache grows when a forward pass uses it, so decode once per generation.
    """
    described = inspect_cache(data)
    _check_against(described, expected)
    try:
        tensors = load_tensors(data)
    except SafetensorError as error:
        raise _malformed(str(error)) from error
    pairs = []
    for index in range(described.num_layers):
        keys, values = tensors[f"layers.{index}.key"], tensors[f"layers.{index}.value"]
        pairs.append((keys.to(expected.device), values.to(expected.device)))
    return DynamicCache(pairs)
