"""What both phases of bench/activation.py use: the seeded token ids, the word-level text that encodes to
exactly those ids, the median (min-max) summary of timings, and the plain-text table the reports print."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterable, Sequence

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

MB = 1e6


def memory_ids(args: argparse.Namespace, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The N memory token ids and the question's, [1, N] and [1, Q], seeded by N."""
    generator = torch.Generator().manual_seed(args.seed * 1_000_003 + n)
    memory = torch.randint(0, args.vocab, (1, n), generator=generator)
    question = torch.randint(0, args.vocab, (1, args.question_tokens), generator=generator)
    return memory, question


def words(ids: Iterable[int]) -> str:
    """The text the word-level tokenizer reads as exactly ``ids``."""
    return " ".join(f"w{i}" for i in ids)


def word_tokenizer(vocab: int) -> PreTrainedTokenizerFast:
    """One word per id, ``w0`` .. ``w{vocab-1}``, split on whitespace, with no special tokens added."""
    core = Tokenizer(models.WordLevel(vocab={f"w{i}": i for i in range(vocab)}))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core)  # type: ignore[no-untyped-call]


def summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {"median_ms": statistics.median(ms), "min_ms": ms[0], "max_ms": ms[-1]}


def table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
