"""Parametric memory: a LoRA adapter trained on memory texts, stored as safetensors plus its config, and loaded back.

Training attaches the adapter to the host's model for the length of the run
and takes it off again (``unload``), so the base weights never change.
Loading checks the config (LoRA only, target modules the model has), the
blob's format and model, and every tensor's name, dtype and shape against the
adapter the config describes before the weights are set; a refused adapter
leaves the model as it was. Nothing is unpickled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from memos_grpc import reasons
from memos_grpc.errors import CancelledError, InvalidArgumentError, ModelMismatchError
from memos_grpc.models.tensorfile import save_canonical

FORMAT = "memos-adapter"
FORMAT_VERSION = "1"
MEDIA_TYPE = "application/vnd.memos.adapter+safetensors"
#: The adapter config keys read back; anything else in a config is ignored, never passed to peft.
_CONFIG_KEYS = ("r", "lora_alpha", "target_modules", "lora_dropout", "bias", "fan_in_fan_out")
_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def _malformed(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"adapter is malformed: {message}", reason=reasons.ADAPTER_MALFORMED)


@dataclass(frozen=True)
class TrainingPlan:
    """How a LoRA adapter is trained for a transform: steps, learning rate, rank, target modules and random seed."""

    steps: int
    learning_rate: float
    rank: int
    target_modules: tuple[str, ...]
    seed: int


@dataclass(frozen=True)
class TrainedAdapter:
    """What a ParametricPayload records: the blob, its config and a description."""

    blob: bytes
    config_json: str
    rank: int
    target_modules: tuple[str, ...]
    dtype: str
    largest_shape: tuple[int, ...]
    initial_loss: float
    final_loss: float
    steps: int


def lora_config(rank: int, target_modules: Sequence[str], fan_in_fan_out: bool = False) -> LoraConfig:
    # No dropout: training is a deterministic function of the texts and the seed.
    return LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=list(target_modules),
        lora_dropout=0.0,
        bias="none",
        fan_in_fan_out=fan_in_fan_out,
        task_type="CAUSAL_LM",
    )


def _config_json(config: LoraConfig) -> str:
    fields = {key: getattr(config, key) for key in _CONFIG_KEYS}
    fields["target_modules"] = sorted(config.target_modules or [])
    return json.dumps({"peft_type": "LORA", "task_type": "CAUSAL_LM", **fields}, sort_keys=True)


#: Layer types LoRA adapts here (``Conv1D`` is transformers' transposed linear layer, as in GPT-2).
_ADAPTABLE = (torch.nn.Linear, torch.nn.Embedding)


def _adaptable(module: torch.nn.Module) -> bool:
    return isinstance(module, _ADAPTABLE) or type(module).__name__ == "Conv1D"


def check_targets(model: PreTrainedModel, target_modules: Sequence[str]) -> None:
    """Refuses targets the model has no adaptable layer of (peft would raise a less helpful error)."""
    if not target_modules:
        raise InvalidArgumentError(
            "an adapter needs at least one target module", reason=reasons.ADAPTER_TARGET_MISMATCH
        )
    leaves = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if name and _adaptable(module)}
    missing = sorted(set(target_modules) - leaves)
    if missing:
        raise InvalidArgumentError(
            f"the model has no linear or embedding layer named {', '.join(missing)}; "
            f"its {model.config.model_type} layers are {', '.join(sorted(leaves)[:12])}",
            reason=reasons.ADAPTER_TARGET_MISMATCH,
        )


def _uses_conv1d(model: PreTrainedModel) -> bool:
    # GPT-2 style models keep their projections as transposed Conv1D weights.
    return any(type(module).__name__ == "Conv1D" for module in model.modules())


def memory_loss(model: torch.nn.Module, examples: Sequence[torch.Tensor]) -> float:
    """Mean next-token loss of the model over the examples."""
    model.eval()
    with torch.no_grad():
        losses = [float(model(input_ids=ids, labels=ids).loss) for ids in examples]
    return sum(losses) / len(losses)


def training_examples(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_tokens: int) -> list[torch.Tensor]:
    """One example per text, as the tokenizer reads it, cut to ``max_tokens``; texts under two tokens teach nothing."""
    examples = []
    for text in texts:
        ids = tokenizer(text, return_tensors="pt")["input_ids"][:, : max_tokens or None]
        if ids.shape[1] >= 2:
            examples.append(ids)
    if not examples:
        raise InvalidArgumentError(
            "no memory text is two tokens or longer: there is nothing to train on", reason=reasons.TRANSFORM_EMPTY_TEXT
        )
    return examples


def train_adapter(
    model: PreTrainedModel,
    examples: Sequence[torch.Tensor],
    plan: TrainingPlan,
    fingerprint: str,
    progress: Callable[[int, float], None],
    cancelled: Callable[[], bool],
) -> TrainedAdapter:
    """Trains a LoRA adapter on ``examples`` for ``plan.steps`` steps, one example per step, in turn.

    ``progress(step, loss)`` is called after every step; ``cancelled()`` is checked before each and
    stops the run with CancelledError. The model is the same as before when this returns or raises.
    """
    check_targets(model, plan.target_modules)
    config = lora_config(plan.rank, plan.target_modules, fan_in_fan_out=_uses_conv1d(model))
    torch.manual_seed(plan.seed)
    adapted = get_peft_model(model, config)
    try:
        initial = memory_loss(adapted, examples)
        optimizer = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=plan.learning_rate)
        for step in range(plan.steps):
            if cancelled():
                raise CancelledError(f"training was cancelled after {step} of {plan.steps} steps")
            adapted.train()
            ids = examples[step % len(examples)]
            loss = adapted(input_ids=ids, labels=ids).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            progress(step + 1, loss.item())
        final = memory_loss(adapted, examples)
        if not math.isfinite(final):
            raise InvalidArgumentError(
                f"training diverged (loss {final}); lower training.learning_rate", reason=reasons.TRAINING_DIVERGED
            )
        return encode_adapter(adapted, config, fingerprint, initial, final, plan.steps)
    finally:
        adapted.unload()
        model.eval()  # type: ignore[no-untyped-call]


def encode_adapter(
    adapted: PeftModel, config: LoraConfig, fingerprint: str, initial_loss: float, final_loss: float, steps: int
) -> TrainedAdapter:
    """The adapter's weights as a safetensors blob (with format and model in its metadata), and its config."""
    state = {name: tensor.detach().contiguous() for name, tensor in get_peft_model_state_dict(adapted).items()}
    first = next(iter(state.values()))
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "model_fingerprint": fingerprint}
    return TrainedAdapter(
        blob=save_canonical(state, metadata),
        config_json=_config_json(config),
        rank=int(config.r),
        target_modules=tuple(sorted(config.target_modules or [])),
        dtype=_DTYPE_NAMES.get(first.dtype, str(first.dtype)),
        largest_shape=tuple(max((t.shape for t in state.values()), key=lambda s: math.prod(s))),
        initial_loss=initial_loss,
        final_loss=final_loss,
        steps=steps,
    )


def _read_config(config_json: str) -> dict[str, Any]:
    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as error:
        raise _malformed(f"adapter_config_json is not JSON: {error}") from error
    if not isinstance(config, dict):
        raise _malformed("adapter_config_json is not a JSON object")
    if config.get("peft_type") != "LORA":
        raise _malformed(f"peft_type is {config.get('peft_type')!r}; only LORA adapters are supported")
    rank, alpha, targets = config.get("r"), config.get("lora_alpha"), config.get("target_modules")
    if (
        type(rank) is not int
        or rank < 1
        or not isinstance(alpha, int | float)
        or isinstance(alpha, bool)
        or not math.isfinite(alpha)
    ):
        raise _malformed("r must be a positive integer and lora_alpha a finite number")
    if not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets):
        raise _malformed("target_modules must be a list of module names")
    if config.get("bias", "none") != "none":
        raise _malformed("only adapters without bias terms (bias: none) are supported")
    return config


def _tensor_table(blob: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        tensors = load_tensors(blob)
    except SafetensorError as error:
        raise _malformed(f"not a safetensors file ({error}); truncated?") from error
    # safetensors' Python API does not return the metadata of in-memory bytes: read it from the header.
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + length])
    metadata = header.get("__metadata__") or {}
    return tensors, metadata


def load_adapter(model: PreTrainedModel, fingerprint: str, blob: bytes, config_json: str) -> PeftModel:
    """``model`` with the adapter attached, ready to run; ``unload()`` the result to take it off.

    ``fingerprint`` is the model's own. Every check runs before the adapter's weights are set, and a
    refused adapter is taken off again, so an error leaves the model as it was.
    """
    config = _read_config(config_json)
    tensors, metadata = _tensor_table(blob)
    if metadata.get("format") != FORMAT:
        raise _malformed(f"format is {metadata.get('format')!r}, not {FORMAT!r}")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise _malformed(f"format version {metadata.get('format_version')!r} is not supported (only {FORMAT_VERSION})")
    if not metadata.get("model_fingerprint"):
        raise _malformed("metadata names no model_fingerprint")
    if metadata.get("model_fingerprint") != fingerprint:
        raise ModelMismatchError(
            f"adapter was trained for model {metadata.get('model_fingerprint')}, not {fingerprint}"
        )
    check_targets(model, config["target_modules"])
    lora = lora_config(config["r"], config["target_modules"], fan_in_fan_out=_uses_conv1d(model))
    lora.lora_alpha = config["lora_alpha"]
    adapted = get_peft_model(model, lora)
    try:
        expected = get_peft_model_state_dict(adapted)
        extra, missing = sorted(set(tensors) - set(expected)), sorted(set(expected) - set(tensors))
        if extra or missing:
            raise InvalidArgumentError(
                f"adapter tensors do not match targets {config['target_modules']} of this model "
                f"(unexpected: {extra[:3]}, missing: {missing[:3]})",
                reason=reasons.ADAPTER_TARGET_MISMATCH,
            )
        for name, want in expected.items():
            got = tensors[name]
            if got.dtype != want.dtype:
                raise InvalidArgumentError(
                    f"{name} is {got.dtype}; the model needs {want.dtype}", reason=reasons.ADAPTER_DTYPE_MISMATCH
                )
            if got.shape != want.shape:
                raise InvalidArgumentError(
                    f"{name} has shape {list(got.shape)}; rank {config['r']} on this model needs {list(want.shape)}",
                    reason=reasons.ADAPTER_SHAPE_MISMATCH,
                )
            if not bool(torch.isfinite(got).all()):
                raise _malformed(f"{name} holds NaN or infinite values")
        set_peft_model_state_dict(adapted, tensors)
    except BaseException:
        adapted.unload()
        raise
    adapted.eval()
    return adapted
