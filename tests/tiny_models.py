"""Tiny causal language models built from configs with fixed seeds, saved as safetensors.

A 2-layer GPT-2 and a 2-layer Llama with grouped-query attention, sharing a
word-level tokenizer built in code: nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

_TEXT = """
the cat sat on mat alice likes green tea and bob prefers coffee in morning
what does drink who where is office it on floor three my name
"""
WORDS = _TEXT.split()


def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"[UNK]": 0, "[BOS]": 1} | {word: index + 2 for index, word in enumerate(dict.fromkeys(WORDS))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", bos_token="[BOS]")


def save_gpt2(directory: Path, seed: int = 0) -> Path:
    words = tokenizer()
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(words), n_positions=64, n_layer=2, n_head=2, n_embd=32, bos_token_id=1, eos_token_id=1
    )
    GPT2LMHeadModel(config).save_pretrained(directory, safe_serialization=True)
    words.save_pretrained(directory)
    return directory


def save_llama(directory: Path, seed: int = 0) -> Path:
    words = tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    words.save_pretrained(directory)
    return directory
