"""The server's causal language model: loaded once from a local directory, fingerprinted once.

Transforms (KV caches, LoRA training) run on it one at a time, on the
operations thread; nothing else touches it. Only safetensors weights are read
and no code from the directory runs (``trust_remote_code`` stays off), and
nothing is downloaded: the directory must hold the whole model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import scheduler_service_pb2
from memos_grpc.errors import FailedPreconditionError, InvalidArgumentError
from memos_grpc.models.activation import CacheSpec, encode_cache
from memos_grpc.models.cache_header import CacheHeader, inspect_cache
from memos_grpc.models.fingerprint import model_fingerprint
from memos_grpc.models.kv import cache_of_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComputedCache:
    """A KV cache as the vault stores it: the safetensors bytes and their validated description."""

    blob: bytes
    header: CacheHeader


class ModelHost:
    """One loaded model, its tokenizer, fingerprint and cache spec."""

    def __init__(self, directory: Path) -> None:
        started = time.monotonic()
        self.directory = directory
        # A fast tokenizer is one Rust object; calls from RPC threads and the operations thread take turns.
        self._tokenizer_lock = threading.Lock()
        self.fingerprint = model_fingerprint(directory)
        try:
            self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, use_safetensors=True)
        except (OSError, ValueError) as error:
            raise InvalidArgumentError(
                f"cannot load a causal language model from {directory}: {error}", reason=reasons.MODEL_DIRECTORY_INVALID
            ) from error
        self.model: PreTrainedModel = model
        self.model.eval()  # type: ignore[no-untyped-call]
        # The base weights never train (an adapter's do); peft would freeze them anyway and not thaw them.
        self.model.requires_grad_(False)
        self.spec = CacheSpec.for_model(self.model, self.fingerprint)
        config = self.model.config.get_text_config(decoder=True)
        self.max_positions = int(
            getattr(config, "max_position_embeddings", 0) or getattr(config, "n_positions", 0) or 0
        )
        self.model_type = str(self.model.config.model_type)
        log.info(
            "model %s loaded from %s in %.1fs (%d parameters)",
            self.fingerprint,
            directory,
            time.monotonic() - started,
            self.parameter_count,
        )

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def default_target_modules(self) -> list[str]:
        """peft's LoRA targets for this architecture (attention projections)."""
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TARGETS

        found = TARGETS.get(self.model_type)
        if not found:
            raise FailedPreconditionError(
                f"no default LoRA target modules are known for {self.model_type}; name them in training.target_modules",
                reason=reasons.ADAPTER_TARGET_MISMATCH,
            )
        return list(found)

    def info(self) -> scheduler_service_pb2.ModelInfo:
        try:
            targets = self.default_target_modules()
        except FailedPreconditionError:
            targets = []
        return scheduler_service_pb2.ModelInfo(
            fingerprint=self.fingerprint,
            model_type=self.model_type,
            num_layers=self.spec.num_layers,
            num_kv_heads=self.spec.num_heads,
            head_dim=self.spec.head_dim,
            dtype=self.spec.dtype,
            parameter_count=self.parameter_count,
            max_positions=self.max_positions,
            default_target_modules=targets,
        )

    def token_ids(self, text: str) -> list[int]:
        """How the model reads ``text``, checked against its longest sequence."""
        with self._tokenizer_lock:
            ids: list[int] = self.tokenizer(text)["input_ids"]
        if not ids:
            raise InvalidArgumentError("the text encodes to no tokens", reason=reasons.ACTIVATION_EMPTY_TEXT)
        if self.max_positions and len(ids) > self.max_positions:
            raise InvalidArgumentError(
                f"the text is {len(ids)} tokens; the model reads at most {self.max_positions}",
                reason=reasons.TEXT_TOO_LONG_FOR_MODEL,
            )
        return ids

    def examples(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Training examples of the texts (``training_examples``), cut to the model's longest sequence."""
        from memos_grpc.models.parametric import training_examples

        with self._tokenizer_lock:
            return training_examples(self.tokenizer, texts, self.max_positions)

    def compute_cache(self, text: str) -> ComputedCache:
        """The model's KV cache over ``text``, encoded; the description is read back from the bytes."""
        ids = torch.tensor([self.token_ids(text)])
        with torch.inference_mode():
            cache, token_count = cache_of_ids(self.model, ids)
        blob = encode_cache(cache, self.fingerprint, token_count)
        return ComputedCache(blob, inspect_cache(blob))


def load_model_host(directory: str) -> ModelHost:
    """The host for the ``model_dir`` setting; a clear error when the directory or the extra is missing."""
    path = Path(directory).expanduser()
    try:
        import peft  # noqa: F401  (the [models] extra; training needs it)
    except ImportError as error:
        raise FailedPreconditionError(
            "model_dir is set but the models extra is not installed: pip install 'memos-grpc[models]'",
            reason=reasons.MODELS_EXTRA_MISSING,
        ) from error
    return ModelHost(path)
