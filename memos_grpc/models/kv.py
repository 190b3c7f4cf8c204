"""Running a model over text to get the KV cache that activation memory stores,
and continuing a forward pass from such a cache.
"""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError


def build_cache(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, text: str) -> tuple[DynamicCache, int]:
    """The model's cache after reading ``text`` once (as the tokenizer encodes it), and its token count."""
    return cache_of_ids(model, tokenizer(text, return_tensors="pt")["input_ids"])


def cache_of_ids(model: PreTrainedModel, input_ids: torch.Tensor) -> tuple[DynamicCache, int]:
    """The model's cache after reading ``input_ids`` [1, n] once, and n."""
    token_count = int(input_ids.shape[1])
    if token_count == 0:
        raise InvalidArgumentError("the text encodes to no tokens", reason=reasons.ACTIVATION_EMPTY_TEXT)
    cache = DynamicCache()
    # Only the cache is wanted: skip the output layer for all but one position (at 4,096 tokens and a 32k
    # vocabulary the full logits are 0.5 GB and a third of the time) where the model allows it.
    extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    model.eval()  # type: ignore[no-untyped-call]
    with torch.no_grad():
        model(input_ids=input_ids.to(model.device), cache=cache, use_cache=True, **extra)
    return cache, token_count


def forward_with_cache(model: PreTrainedModel, cache: DynamicCache, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits for ``input_ids`` [1, n] read after the cached tokens; the cache grows by n.

    Positions continue from the cache's length, so the result equals reading the
    cached text and ``input_ids`` in one pass.
    """
    past = cache.get_seq_length()
    positions = torch.arange(past, past + input_ids.shape[1], device=model.device).unsqueeze(0)
    model.eval()  # type: ignore[no-untyped-call]
    with torch.no_grad():
        output = model(input_ids=input_ids.to(model.device), cache=cache, position_ids=positions, use_cache=True)
    logits: torch.Tensor = output.logits
    return logits
