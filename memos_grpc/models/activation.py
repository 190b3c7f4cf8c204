"""The activation-memory codec: a model's KV cache as a safetensors blob, and back.

Decoding validates the whole header (metadata, tensor names, dtypes, shapes,
offsets) against the model before any tensor is built; nothing is unpickled.
The header format itself, which needs no torch, is ``cache_header``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer

from memos_grpc import reasons
from memos_grpc.errors import FailedPreconditionError, InvalidArgumentError, ModelMismatchError
from memos_grpc.models.cache_header import (
    DTYPES,
    FORMAT,
    FORMAT_VERSION,
    CacheHeader,
    inspect_cache,
    malformed,
)
from memos_grpc.models.tensorfile import save_canonical

#: The torch dtype of each stored dtype; the names in ``DTYPES`` are torch's own attribute names.
_TORCH_TO_NAME: dict[torch.dtype, str] = {getattr(torch, name): name for name in DTYPES}


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
                reason=reasons.ACTIVATION_MODEL_UNSUPPORTED,
            )
        num_attention_heads = int(config.num_attention_heads)
        num_heads = getattr(config, "num_key_value_heads", None) or num_attention_heads
        head_dim = getattr(config, "head_dim", None) or int(config.hidden_size) // num_attention_heads
        dtype = _TORCH_TO_NAME.get(model.dtype)
        if dtype is None:
            raise FailedPreconditionError(
                f"model {fingerprint} runs in {model.dtype}; activation memory stores only {', '.join(DTYPES)}",
                reason=reasons.ACTIVATION_MODEL_UNSUPPORTED,
            )
        return cls(fingerprint, num_layers, int(num_heads), int(head_dim), dtype, str(model.device))


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
                reason=reasons.ACTIVATION_MODEL_UNSUPPORTED,
            )
        pairs.append((keys, values))
    return pairs


def encode_cache(cache: Cache, fingerprint: str, token_count: int) -> bytes:
    """A safetensors blob of the cache: ``layers.{i}.key`` / ``layers.{i}.value`` and their description."""
    pairs = _layer_tensors(cache)
    if not pairs:
        raise InvalidArgumentError("the cache holds no layers", reason=reasons.ACTIVATION_SHAPE_MISMATCH)
    if not fingerprint:
        raise InvalidArgumentError("a cache needs the fingerprint of its model", reason=reasons.MODEL_MISMATCH)
    first = pairs[0][0]
    dtype = _TORCH_TO_NAME.get(first.dtype)
    if dtype is None:
        raise InvalidArgumentError(
            f"cache dtype {first.dtype} is not one of {', '.join(DTYPES)}", reason=reasons.ACTIVATION_DTYPE_MISMATCH
        )
    if first.dim() != 4 or first.shape[0] != 1 or first.shape[2] != token_count or token_count < 1:
        raise InvalidArgumentError(
            f"cache tensors are {list(first.shape)}; expected [1, heads, {token_count}, head_dim] (one sequence)",
            reason=reasons.ACTIVATION_SHAPE_MISMATCH,
        )
    tensors: dict[str, torch.Tensor] = {}
    for index, (keys, values) in enumerate(pairs):
        for kind, tensor in (("key", keys), ("value", values)):
            if tensor.shape != first.shape or tensor.dtype != first.dtype:
                raise InvalidArgumentError(
                    f"layers.{index}.{kind} is {tensor.dtype} {list(tensor.shape)}; "
                    f"layer 0 is {first.dtype} {list(first.shape)}",
                    reason=reasons.ACTIVATION_SHAPE_MISMATCH
                    if tensor.shape != first.shape
                    else reasons.ACTIVATION_DTYPE_MISMATCH,
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


def _check_against(described: CacheHeader, expected: CacheSpec) -> None:
    if described.fingerprint != expected.fingerprint:
        raise ModelMismatchError(
            f"activation was computed by model {described.fingerprint}, not by {expected.fingerprint}"
        )
    if described.dtype != expected.dtype:
        raise InvalidArgumentError(
            f"activation is {described.dtype} but the model runs in {expected.dtype}",
            reason=reasons.ACTIVATION_DTYPE_MISMATCH,
        )
    got = (described.num_layers, described.num_heads, described.head_dim)
    want = (expected.num_layers, expected.num_heads, expected.head_dim)
    if got != want:
        raise InvalidArgumentError(
            f"activation has (layers, kv heads, head_dim) = {got}; the model needs {want}",
            reason=reasons.ACTIVATION_SHAPE_MISMATCH,
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
        raise malformed(str(error)) from error
    pairs = []
    for index in range(described.num_layers):
        keys, values = tensors[f"layers.{index}.key"], tensors[f"layers.{index}.value"]
        pairs.append((keys.to(expected.device), values.to(expected.device)))
    return DynamicCache(pairs)
