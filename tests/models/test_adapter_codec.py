"""Parametric memory on tiny GPT-2 and Llama models: LoRA training, the adapter codec, and refused adapters.

The core proofs: training lowers the loss on the memory texts and leaves the
base model as it was; an adapter stored as bytes and loaded back gives the same
logits as the adapter that was trained. Every bad adapter is refused with its
reason and leaves nothing attached to the model.
"""

from __future__ import annotations

import io
import json
import pickle
import random
from collections.abc import Callable
from functools import partial
from pathlib import Path

import peft
import pytest
import torch
import transformers
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from tiny_models import save_gpt2, save_llama

from memos_grpc.errors import CancelledError, InvalidArgumentError, MemosError, ModelMismatchError
from memos_grpc.models.host import ModelHost
from memos_grpc.models.parametric import (
    TrainedAdapter,
    TrainingPlan,
    check_targets,
    encode_adapter,
    load_adapter,
    lora_config,
    memory_loss,
    train_adapter,
    training_examples,
)

TEXTS = ("alice likes green tea", "bob prefers coffee in morning", "my office is on floor three")
PROBE = "what does alice drink"
RANK = 4
SAVERS: dict[str, Callable[[Path], Path]] = {"gpt2": save_gpt2, "llama": save_llama}

transformers.utils.logging.disable_progress_bar()


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelHost]:
    root = tmp_path_factory.mktemp("hosts")
    return {name: ModelHost(save(root / name)) for name, save in SAVERS.items()}


@pytest.fixture(scope="module")
def gpt2(hosts: dict[str, ModelHost]) -> ModelHost:
    return hosts["gpt2"]


def plan(host: ModelHost, steps: int) -> TrainingPlan:
    return TrainingPlan(
        steps=steps, learning_rate=1e-2, rank=RANK, target_modules=tuple(host.default_target_modules()), seed=0
    )


def examples(host: ModelHost) -> list[torch.Tensor]:
    return training_examples(host.tokenizer, TEXTS, 64)


def train(host: ModelHost, steps: int) -> TrainedAdapter:
    return train_adapter(
        host.model, examples(host), plan(host, steps), host.fingerprint, lambda *_: None, cancelled=lambda: False
    )


@pytest.fixture(scope="module")
def gpt2_adapter(gpt2: ModelHost) -> TrainedAdapter:
    return train(gpt2, 5)


def probe_ids(host: ModelHost) -> torch.Tensor:
    ids: torch.Tensor = host.tokenizer(PROBE, return_tensors="pt")["input_ids"]
    return ids


def logits(model: torch.nn.Module, host: ModelHost) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = model(input_ids=probe_ids(host)).logits
    return out


def has_lora(host: ModelHost) -> bool:
    return any("lora" in name for name, _ in host.model.named_modules())


def assert_untouched(host: ModelHost, before: torch.Tensor) -> None:
    assert not has_lora(host)
    assert torch.equal(logits(host.model, host), before)


def refused_load(
    host: ModelHost, error_type: type[MemosError], reason: str, blob: bytes, config_json: str
) -> MemosError:
    """The load is refused with ``reason`` and the model is left exactly as it was."""
    before = logits(host.model, host)
    with pytest.raises(error_type) as caught:
        load_adapter(host.model, host.fingerprint, blob, config_json)
    assert caught.value.reason == reason, caught.value.message
    assert_untouched(host, before)
    return caught.value


def unpack(blob: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    length = int.from_bytes(blob[:8], "little")
    metadata: dict[str, str] = json.loads(blob[8 : 8 + length])["__metadata__"]
    return load_tensors(blob), metadata


def edited(config_json: str, **changes: object) -> str:
    return json.dumps(json.loads(config_json) | changes)


# --- training -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAVERS))
def test_training_lowers_the_loss_and_leaves_the_base_model_unchanged(hosts: dict[str, ModelHost], name: str) -> None:
    host = hosts[name]
    steps = 15
    before = logits(host.model, host)
    seen: list[tuple[int, float]] = []
    trained = train_adapter(
        host.model,
        examples(host),
        plan(host, steps),
        host.fingerprint,
        lambda step, loss: seen.append((step, loss)),
        cancelled=lambda: False,
    )
    assert trained.final_loss < trained.initial_loss
    assert trained.initial_loss == pytest.approx(memory_loss(host.model, examples(host)), rel=1e-6)
    assert [step for step, _ in seen] == list(range(1, steps + 1))
    assert all(loss > 0 for _, loss in seen)
    assert (trained.rank, trained.steps, trained.dtype) == (RANK, steps, "float32")
    assert trained.target_modules == tuple(sorted(host.default_target_modules()))
    assert_untouched(host, before)


def test_the_default_targets_are_the_attention_projections(hosts: dict[str, ModelHost]) -> None:
    assert hosts["gpt2"].default_target_modules() == ["c_attn"]
    assert sorted(hosts["llama"].default_target_modules()) == ["q_proj", "v_proj"]
    llama = hosts["llama"].model.config
    assert llama.num_key_value_heads < llama.num_attention_heads


def test_cancelling_stops_training_and_leaves_the_model_unchanged(gpt2: ModelHost) -> None:
    before = logits(gpt2.model, gpt2)
    seen: list[int] = []
    with pytest.raises(CancelledError) as caught:
        train_adapter(
            gpt2.model,
            examples(gpt2),
            plan(gpt2, 10),
            gpt2.fingerprint,
            lambda step, _loss: seen.append(step),
            cancelled=lambda: len(seen) >= 3,
        )
    assert caught.value.reason == "OPERATION_CANCELLED"
    assert "3 of 10" in caught.value.message
    assert seen == [1, 2, 3]
    assert_untouched(gpt2, before)


def test_texts_under_two_tokens_teach_nothing(gpt2: ModelHost) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        training_examples(gpt2.tokenizer, ["", "alice", "   "], 64)
    assert caught.value.reason == "TRANSFORM_EMPTY_TEXT"
    kept = training_examples(gpt2.tokenizer, ["alice", "alice likes green tea"], 2)
    assert [tuple(ids.shape) for ids in kept] == [(1, 2)]


# --- the core proof -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAVERS))
def test_a_reloaded_adapter_gives_the_same_logits(hosts: dict[str, ModelHost], name: str) -> None:
    host = hosts[name]
    base = logits(host.model, host)
    targets = host.default_target_modules()
    config = lora_config(RANK, targets, fan_in_fan_out=name == "gpt2")
    torch.manual_seed(0)
    adapted = peft.get_peft_model(host.model, config)
    try:
        # LoRA's B starts at zero: a few steps make the adapter change the model's output.
        optimizer = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=1e-2)
        adapted.train()
        for ids in examples(host):
            loss = adapted(input_ids=ids, labels=ids).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        adapted.eval()
        expected = logits(adapted, host)
        trained = encode_adapter(adapted, config, host.fingerprint, 0.0, 0.0, len(TEXTS))
    finally:
        adapted.unload()
    assert_untouched(host, base)
    assert not torch.equal(expected, base)
    tensors, metadata = unpack(trained.blob)
    assert metadata == {"format": "memos-adapter", "format_version": "1", "model_fingerprint": host.fingerprint}
    assert any(name.endswith("lora_B.weight") and tensor.abs().max() > 0 for name, tensor in tensors.items())

    reloaded = load_adapter(host.model, host.fingerprint, trained.blob, trained.config_json)
    try:
        assert torch.equal(logits(reloaded, host), expected)
    finally:
        reloaded.unload()
    assert_untouched(host, base)


@pytest.mark.parametrize("name", sorted(SAVERS))
def test_the_recorded_final_loss_is_the_reloaded_adapters_loss(hosts: dict[str, ModelHost], name: str) -> None:
    host = hosts[name]
    trained = train(host, 6)
    reloaded = load_adapter(host.model, host.fingerprint, trained.blob, trained.config_json)
    try:
        assert memory_loss(reloaded, examples(host)) == trained.final_loss
    finally:
        reloaded.unload()
    assert not has_lora(host)


# --- refusals -------------------------------------------------------------------------------------------------


def test_truncated_and_garbage_blobs_are_refused(gpt2: ModelHost, gpt2_adapter: TrainedAdapter) -> None:
    blob, config = gpt2_adapter.blob, gpt2_adapter.config_json
    noise = random.Random(0).randbytes(4096)
    for bad in (blob[: len(blob) // 2], blob[:-1], blob[:8], b"", noise, b"\xff" * 64):
        refused_load(gpt2, InvalidArgumentError, "ADAPTER_MALFORMED", bad, config)


class Tripwire:
    """Unpickling this creates ``marker``: proof, without patching anything, that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_pickles_are_refused_and_never_unpickled(gpt2: ModelHost, gpt2_adapter: TrainedAdapter, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    zipped = io.BytesIO()
    torch.save({"lora_A.weight": torch.zeros(RANK, 32), "trap": Tripwire(marker)}, zipped)
    raw = pickle.dumps({"trap": Tripwire(marker)})
    for blob in (zipped.getvalue(), raw):
        refused_load(gpt2, InvalidArgumentError, "ADAPTER_MALFORMED", blob, gpt2_adapter.config_json)
    assert not marker.exists()
    pickle.loads(raw)["trap"].close()  # the tripwire works: unpickling really would have run code
    assert marker.exists()


def test_targets_the_model_lacks_are_refused(gpt2: ModelHost, gpt2_adapter: TrainedAdapter) -> None:
    error = refused_load(
        gpt2,
        InvalidArgumentError,
        "ADAPTER_TARGET_MISMATCH",
        gpt2_adapter.blob,
        edited(gpt2_adapter.config_json, target_modules=["q_proj"]),
    )
    assert "q_proj" in error.message


@pytest.mark.parametrize("target", ["ln_1", "drop", "transformer", "h", "0"])
def test_targets_lora_cannot_adapt_are_refused_before_peft_sees_them(gpt2: ModelHost, target: str) -> None:
    """Layer norms, dropouts and whole blocks exist in the model but are no linear or embedding layer."""
    before = logits(gpt2.model, gpt2)
    with pytest.raises(InvalidArgumentError) as caught:
        train_adapter(
            gpt2.model,
            examples(gpt2),
            TrainingPlan(steps=1, learning_rate=1e-2, rank=RANK, target_modules=(target,), seed=0),
            gpt2.fingerprint,
            lambda *_: None,
            lambda: False,
        )
    assert caught.value.reason == "ADAPTER_TARGET_MISMATCH" and target in caught.value.message
    assert_untouched(gpt2, before)


def test_non_finite_tensors_are_refused(gpt2: ModelHost, gpt2_adapter: TrainedAdapter) -> None:
    tensors, metadata = unpack(gpt2_adapter.blob)
    name = sorted(tensors)[0]
    poisoned = tensors | {name: torch.full_like(tensors[name], float("nan"))}
    blob = save_tensors(poisoned, metadata=metadata)
    error = refused_load(gpt2, InvalidArgumentError, "ADAPTER_MALFORMED", blob, gpt2_adapter.config_json)
    assert name in error.message


def test_tensors_for_other_targets_are_refused(gpt2: ModelHost, gpt2_adapter: TrainedAdapter) -> None:
    # GPT-2 has c_proj, but the blob holds c_attn's tensors.
    assert gpt2_adapter.target_modules == ("c_attn",)
    error = refused_load(
        gpt2,
        InvalidArgumentError,
        "ADAPTER_TARGET_MISMATCH",
        gpt2_adapter.blob,
        edited(gpt2_adapter.config_json, target_modules=["c_proj"]),
    )
    assert "c_attn" in error.message and "c_proj" in error.message


def test_another_rank_is_refused(gpt2: ModelHost, gpt2_adapter: TrainedAdapter) -> None:
    assert json.loads(gpt2_adapter.config_json)["r"] == RANK
    error = refused_load(
        gpt2,
        InvalidArgumentError,
        "ADAPTER_SHAPE_MISMATCH",
        gpt2_adapter.blob,
        edited(gpt2_adapter.config_json, r=2),
    )
    assert "rank 2" in error.message


def test_another_dtype_is_refused(gpt2: ModelHost, gpt2_adapter: TrainedAdapter) -> None:
    tensors, metadata = unpack(gpt2_adapter.blob)
    half = save_tensors({name: tensor.half() for name, tensor in tensors.items()}, metadata=metadata)
    error = refused_load(gpt2, InvalidArgumentError, "ADAPTER_DTYPE_MISMATCH", half, gpt2_adapter.config_json)
    assert "float16" in error.message and "float32" in error.message


def test_another_models_adapter_is_refused_as_model_mismatch(
    hosts: dict[str, ModelHost], gpt2_adapter: TrainedAdapter
) -> None:
    gpt2, llama = hosts["gpt2"], hosts["llama"]
    llama_adapter = train(llama, 2)
    error = refused_load(gpt2, ModelMismatchError, "MODEL_MISMATCH", llama_adapter.blob, llama_adapter.config_json)
    assert llama.fingerprint in error.message and gpt2.fingerprint in error.message
    refused_load(llama, ModelMismatchError, "MODEL_MISMATCH", gpt2_adapter.blob, gpt2_adapter.config_json)


@pytest.mark.parametrize(
    "config_json",
    [
        "not json",
        "[]",
        '"LORA"',
        "null",
        partial(edited, peft_type="LOHA"),
        partial(edited, peft_type=None),
        partial(edited, bias="all"),
        partial(edited, bias="lora_only"),
        partial(edited, r=0),
        partial(edited, r="4"),
        partial(edited, r=True),
        partial(edited, lora_alpha="8"),
        partial(edited, lora_alpha=float("nan")),
        partial(edited, lora_alpha=float("inf")),
        partial(edited, target_modules="c_attn"),
        partial(edited, target_modules=[""]),
    ],
    ids=[
        "not-json",
        "array",
        "string",
        "null",
        "loha",
        "no-peft-type",
        "bias-all",
        "bias-lora-only",
        "rank-zero",
        "rank-string",
        "rank-bool",
        "alpha-string",
        "alpha-nan",
        "alpha-infinite",
        "targets-string",
        "targets-empty-name",
    ],
)
def test_malformed_configs_are_refused(
    gpt2: ModelHost, gpt2_adapter: TrainedAdapter, config_json: str | Callable[[str], str]
) -> None:
    config = config_json if isinstance(config_json, str) else config_json(gpt2_adapter.config_json)
    refused_load(gpt2, InvalidArgumentError, "ADAPTER_MALFORMED", gpt2_adapter.blob, config)


def test_missing_or_foreign_metadata_is_refused(gpt2: ModelHost, gpt2_adapter: TrainedAdapter) -> None:
    tensors, metadata = unpack(gpt2_adapter.blob)
    for bad in (
        metadata | {"format": "something-else"},
        metadata | {"format_version": "2"},
        {key: value for key, value in metadata.items() if key != "format"},
        {key: value for key, value in metadata.items() if key != "model_fingerprint"},
        None,
    ):
        blob = save_tensors(tensors, metadata=bad)
        refused_load(gpt2, InvalidArgumentError, "ADAPTER_MALFORMED", blob, gpt2_adapter.config_json)


def test_the_untouched_adapter_still_loads(gpt2: ModelHost, gpt2_adapter: TrainedAdapter) -> None:
    # The refusals above are refusals of the edits, not of the adapter they started from.
    tensors, metadata = unpack(gpt2_adapter.blob)
    resaved = save_tensors(tensors, metadata=metadata)
    for blob in (gpt2_adapter.blob, resaved):
        load_adapter(gpt2.model, gpt2.fingerprint, blob, gpt2_adapter.config_json).unload()
    assert not has_lora(gpt2)


# --- target checks --------------------------------------------------------------------------------------------


def test_check_targets_refuses_no_targets_and_unknown_ones(gpt2: ModelHost) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        check_targets(gpt2.model, [])
    assert caught.value.reason == "ADAPTER_TARGET_MISMATCH"
    with pytest.raises(InvalidArgumentError) as caught:
        check_targets(gpt2.model, ["c_attn", "q_proj"])
    assert caught.value.reason == "ADAPTER_TARGET_MISMATCH"
    assert "q_proj" in caught.value.message and "gpt2" in caught.value.message
    check_targets(gpt2.model, ["c_attn", "c_proj"])


def test_the_same_training_gives_the_same_adapter_bytes(gpt2: ModelHost) -> None:
    """Seeded training on the CPU is deterministic, and the encoding is canonical: one digest for equal adapters."""
    assert train(gpt2, 3).blob == train(gpt2, 3).blob
