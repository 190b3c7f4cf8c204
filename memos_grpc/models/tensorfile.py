"""safetensors bytes that depend only on their tensors and metadata, so that equal content has one digest.

safetensors writes its header's metadata map in hash order, which differs
from call to call: two encodings of the same cache would be two blobs in the
content-addressed store. ``save_canonical`` rewrites the header with sorted
keys. It is the same JSON, so the same length, and every tensor offset stays
valid; the padding that aligns the data is kept.
"""

from __future__ import annotations

import json

import torch
from safetensors.torch import save as save_tensors


def save_canonical(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """``safetensors.torch.save`` with the header's keys in sorted order."""
    data = save_tensors(tensors, metadata=metadata)
    length = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + length]
    canonical = json.dumps(json.loads(header), sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(canonical) > length:  # not expected: the writer's JSON is compact too
        raise ValueError("a canonical safetensors header came out longer than the writer's")
    return data[:8] + canonical.ljust(length, b" ") + data[8 + length :]
