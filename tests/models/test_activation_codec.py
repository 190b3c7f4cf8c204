"""Model fingerprints and the KV-cache codec of activation memory, on tiny GPT-2 and Llama models.

The core proof: a memory's cache, stored as bytes and loaded back, gives the same
next-token logits as reading the memory in the prompt. Bad blobs are refused.
"""

from __future__ import annotations

import io
import json
import pickle
import random
import re
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import save as save_tensors
from tiny_models import save_gpt2, save_llama
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, MistralConfig, MistralForCausalLM

from memos_grpc.errors import FailedPreconditionError, InvalidArgumentError, MemosError
from memos_grpc.models.activation import CacheSpec, decode_cache, encode_cache
from memos_grpc.models.cache_header import inspect_cache
from memos_grpc.models.fingerprint import model_fingerprint
from memos_grpc.models.kv import build_cache, forward_with_cache

MEMORY = "alice likes green tea and bob prefers coffee in the morning"
QUESTION = "what does alice drink"
SAVERS: dict[str, Callable[[Path], Path]] = {"gpt2": save_gpt2, "llama": save_llama}

transformers.utils.logging.disable_progress_bar()


class Tiny:
    """A saved tiny model, loaded, with its fingerprint and cache spec."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fingerprint = model_fingerprint(directory)
        self.model = AutoModelForCausalLM.from_pretrained(directory)
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.spec = CacheSpec.for_model(self.model, self.fingerprint)

    def ids(self, text: str) -> torch.Tensor:
        ids: torch.Tensor = self.tokenizer(text, return_tensors="pt")["input_ids"]
        return ids

    def memory_blob(self) -> bytes:
        cache, token_count = build_cache(self.model, self.tokenizer, MEMORY)
        return encode_cache(cache, self.fingerprint, token_count)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tiny]:
    root = tmp_path_factory.mktemp("tiny")
    return {name: Tiny(save(root / name)) for name, save in SAVERS.items()}


@pytest.fixture(scope="module")
def gpt2(tiny: dict[str, Tiny]) -> Tiny:
    return tiny["gpt2"]


def refused(error_type: type[MemosError], reason: str, call: Callable[[], object]) -> MemosError:
    with pytest.raises(error_type) as raised:
        call()
    assert raised.value.reason == reason, raised.value.message
    return raised.value


def random_cache(layers: int, heads: int, tokens: int, head_dim: int, dtype: torch.dtype) -> DynamicCache:
    generator = torch.Generator().manual_seed(0)
    return DynamicCache(
        [
            (
                torch.randn(1, heads, tokens, head_dim, generator=generator).to(dtype),
                torch.randn(1, heads, tokens, head_dim, generator=generator).to(dtype),
            )
            for _ in range(layers)
        ]
    )


def metadata_for(model: Tiny, **overrides: str) -> dict[str, str]:
    spec = model.spec
    return {
        "format": "memos-activation",
        "format_version": "1",
        "model_fingerprint": model.fingerprint,
        "num_layers": str(spec.num_layers),
        "num_heads": str(spec.num_heads),
        "head_dim": str(spec.head_dim),
        "dtype": spec.dtype,
        "token_count": "5",
    } | overrides


def layer_tensors(model: Tiny, tokens_per_layer: list[int]) -> dict[str, torch.Tensor]:
    spec = model.spec
    return {
        f"layers.{index}.{kind}": torch.zeros(1, spec.num_heads, tokens, spec.head_dim)
        for index, tokens in enumerate(tokens_per_layer)
        for kind in ("key", "value")
    }


# --- fingerprints ---------------------------------------------------------------------------------------------


def test_fingerprint_is_stable_across_loads_and_locations(gpt2: Tiny, tmp_path: Path) -> None:
    assert re.fullmatch(r"gpt2@sha256:[0-9a-f]{64}", gpt2.fingerprint)
    assert model_fingerprint(gpt2.directory) == gpt2.fingerprint
    moved = shutil.copytree(gpt2.directory, tmp_path / "elsewhere" / "renamed")
    reloaded = AutoModelForCausalLM.from_pretrained(moved)
    assert model_fingerprint(moved) == gpt2.fingerprint
    assert CacheSpec.for_model(reloaded, model_fingerprint(moved)) == gpt2.spec


def test_fingerprint_changes_with_one_weight_byte_or_the_tokenizer(gpt2: Tiny, tiny: dict[str, Tiny]) -> None:
    assert tiny["llama"].fingerprint.startswith("llama@sha256:")
    assert tiny["llama"].fingerprint.split("@")[1] != gpt2.fingerprint.split("@")[1]
    changed = shutil.copytree(gpt2.directory, gpt2.directory.parent / "one-byte")
    weights = bytearray((changed / "model.safetensors").read_bytes())
    weights[-1] ^= 0x01  # the last byte is tensor data, not header
    (changed / "model.safetensors").write_bytes(bytes(weights))
    assert model_fingerprint(changed) != gpt2.fingerprint
    retokenized = shutil.copytree(gpt2.directory, gpt2.directory.parent / "retokenized")
    tokenizer_json = retokenized / "tokenizer.json"
    tokenizer_json.write_text(tokenizer_json.read_text().replace('"alice"', '"alicia"'))
    assert model_fingerprint(retokenized) != gpt2.fingerprint


def test_fingerprint_refuses_pickle_weights(gpt2: Tiny, tmp_path: Path) -> None:
    directory = shutil.copytree(gpt2.directory, tmp_path / "pickled")
    torch.save({"lm_head.weight": torch.zeros(2, 2)}, directory / "pytorch_model.bin")
    error = refused(InvalidArgumentError, "MODEL_PICKLE_REFUSED", lambda: model_fingerprint(directory))
    assert "pytorch_model.bin" in error.message
    (directory / "pytorch_model.bin").unlink()
    (directory / "model.safetensors").unlink()
    refused(InvalidArgumentError, "MODEL_DIRECTORY_INVALID", lambda: model_fingerprint(directory))


# --- the core proof -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAVERS))
def test_loaded_cache_gives_the_same_next_token_logits_as_the_prompt(tiny: dict[str, Tiny], name: str) -> None:
    model = tiny[name]
    memory_ids, question_ids = model.ids(MEMORY), model.ids(QUESTION)
    prompt_ids = model.ids(f"{MEMORY} {QUESTION}")
    assert torch.equal(prompt_ids, torch.cat([memory_ids, question_ids], dim=1))

    blob = model.memory_blob()
    described = inspect_cache(blob)
    assert described.fingerprint == model.fingerprint
    assert (described.num_layers, described.num_heads, described.dtype) == (2, model.spec.num_heads, "float32")
    assert described.shape == (1, model.spec.num_heads, memory_ids.shape[1], model.spec.head_dim)

    with torch.no_grad():
        expected = model.model(input_ids=prompt_ids).logits[0, -1]
    cache = decode_cache(blob, model.spec)
    assert cache.get_seq_length() == memory_ids.shape[1]
    got = forward_with_cache(model.model, cache, question_ids)[0, -1]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)

    # Without the memory the question alone predicts something else: the cache carries the text.
    with torch.no_grad():
        forgetful = model.model(input_ids=question_ids).logits[0, -1]
    assert (forgetful - expected).abs().max() > 1e-3


def test_llama_cache_stores_the_grouped_kv_heads(tiny: dict[str, Tiny]) -> None:
    llama = tiny["llama"]
    config = llama.model.config
    assert config.num_key_value_heads < config.num_attention_heads
    assert (llama.spec.num_heads, llama.spec.head_dim) == (config.num_key_value_heads, 8)


def test_models_whose_cache_keeps_a_window_are_refused() -> None:
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=32,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=4,
    )
    refused(
        FailedPreconditionError,
        "ACTIVATION_MODEL_UNSUPPORTED",
        lambda: CacheSpec.for_model(MistralForCausalLM(config), "mistral@sha256:0"),
    )


# --- refusals -------------------------------------------------------------------------------------------------


def test_another_models_cache_is_refused_as_model_mismatch(tiny: dict[str, Tiny], tmp_path: Path) -> None:
    gpt2, llama = tiny["gpt2"], tiny["llama"]
    twin = Tiny(save_gpt2(tmp_path / "gpt2-seed-1", seed=1))
    assert twin.spec != gpt2.spec and twin.spec.num_heads == gpt2.spec.num_heads
    blob = gpt2.memory_blob()
    error = refused(FailedPreconditionError, "MODEL_MISMATCH", lambda: decode_cache(blob, twin.spec))
    assert gpt2.fingerprint in error.message and twin.fingerprint in error.message
    refused(FailedPreconditionError, "MODEL_MISMATCH", lambda: decode_cache(llama.memory_blob(), gpt2.spec))


def test_wrong_dtype_is_refused(gpt2: Tiny) -> None:
    spec = gpt2.spec
    half = random_cache(spec.num_layers, spec.num_heads, 5, spec.head_dim, torch.float16)
    error = refused(
        InvalidArgumentError,
        "ACTIVATION_DTYPE_MISMATCH",
        lambda: decode_cache(encode_cache(half, gpt2.fingerprint, 5), spec),
    )
    assert "float16" in error.message and "float32" in error.message
    # Tensors that contradict the blob's own dtype are refused before anything is loaded.
    tensors = layer_tensors(gpt2, [5, 5])
    tensors["layers.1.value"] = tensors["layers.1.value"].half()
    lying = save_tensors(tensors, metadata=metadata_for(gpt2))
    refused(InvalidArgumentError, "ACTIVATION_DTYPE_MISMATCH", lambda: decode_cache(lying, spec))


@pytest.mark.parametrize(
    ("layers", "heads", "head_dim"),
    [(3, 2, 16), (1, 2, 16), (2, 1, 16), (2, 4, 8), (2, 2, 8)],
    ids=["more-layers", "fewer-layers", "fewer-heads", "other-heads-and-dim", "other-head-dim"],
)
def test_wrong_shape_for_the_model_is_refused(gpt2: Tiny, layers: int, heads: int, head_dim: int) -> None:
    assert (gpt2.spec.num_layers, gpt2.spec.num_heads, gpt2.spec.head_dim) == (2, 2, 16)
    blob = encode_cache(random_cache(layers, heads, 5, head_dim, torch.float32), gpt2.fingerprint, 5)
    assert inspect_cache(blob).shape == (1, heads, 5, head_dim)
    refused(InvalidArgumentError, "ACTIVATION_SHAPE_MISMATCH", lambda: decode_cache(blob, gpt2.spec))


def test_token_counts_that_differ_across_layers_are_refused(gpt2: Tiny) -> None:
    uneven = save_tensors(layer_tensors(gpt2, [5, 4]), metadata=metadata_for(gpt2))
    error = refused(InvalidArgumentError, "ACTIVATION_SHAPE_MISMATCH", lambda: decode_cache(uneven, gpt2.spec))
    assert "layers.1" in error.message
    overstated = save_tensors(layer_tensors(gpt2, [4, 4]), metadata=metadata_for(gpt2, token_count="5"))
    refused(InvalidArgumentError, "ACTIVATION_SHAPE_MISMATCH", lambda: decode_cache(overstated, gpt2.spec))
    assert decode_cache(save_tensors(layer_tensors(gpt2, [5, 5]), metadata=metadata_for(gpt2)), gpt2.spec)


def test_truncated_blobs_are_refused(gpt2: Tiny) -> None:
    blob = gpt2.memory_blob()
    header_end = 8 + int.from_bytes(blob[:8], "little")
    for cut in (0, 3, 8, 20, header_end - 1, header_end, header_end + 5, len(blob) // 2, len(blob) - 1):
        error = refused(InvalidArgumentError, "ACTIVATION_MALFORMED", partial(decode_cache, blob[:cut], gpt2.spec))
        assert "truncated" in error.message or "JSON" in error.message, (cut, error.message)
    refused(InvalidArgumentError, "ACTIVATION_MALFORMED", lambda: decode_cache(blob + b"\0\0\0\0", gpt2.spec))


def test_garbage_is_refused(gpt2: Tiny) -> None:
    noise = random.Random(0).randbytes(4096)
    json_noise = (40).to_bytes(8, "little") + b"{not json at all, just braces and words}"
    not_an_object = (2).to_bytes(8, "little") + b"[]" + b"\0" * 16
    for blob in (b"", noise, b"\xff" * 64, json_noise, not_an_object):
        refused(InvalidArgumentError, "ACTIVATION_MALFORMED", partial(decode_cache, blob, gpt2.spec))


def test_missing_or_foreign_metadata_is_refused(gpt2: Tiny) -> None:
    tensors = layer_tensors(gpt2, [5, 5])
    no_metadata = save_tensors(tensors)
    error = refused(InvalidArgumentError, "ACTIVATION_MALFORMED", lambda: decode_cache(no_metadata, gpt2.spec))
    assert "metadata" in error.message
    without_fingerprint = metadata_for(gpt2)
    del without_fingerprint["model_fingerprint"]
    for metadata in (
        without_fingerprint,
        metadata_for(gpt2, format="pt"),
        metadata_for(gpt2, num_layers="two"),
        metadata_for(gpt2, token_count="-5"),
    ):
        blob = save_tensors(tensors, metadata=metadata)
        refused(InvalidArgumentError, "ACTIVATION_MALFORMED", partial(decode_cache, blob, gpt2.spec))
    renamed = save_tensors(
        {name.replace("value", "val"): t for name, t in tensors.items()}, metadata=metadata_for(gpt2)
    )
    refused(InvalidArgumentError, "ACTIVATION_MALFORMED", lambda: decode_cache(renamed, gpt2.spec))
    future = save_tensors(tensors, metadata=metadata_for(gpt2, format_version="2"))
    refused(InvalidArgumentError, "ACTIVATION_VERSION_UNSUPPORTED", lambda: decode_cache(future, gpt2.spec))


class Tripwire:
    """Unpickling this creates ``marker``: proof, without patching anything, that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_pickles_are_refused_and_never_unpickled(gpt2: Tiny, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    zipped = io.BytesIO()
    torch.save({"layers.0.key": torch.zeros(1, 2, 5, 16), "trap": Tripwire(marker)}, zipped)
    legacy = io.BytesIO()
    torch.save({"trap": Tripwire(marker)}, legacy, _use_new_zipfile_serialization=False)
    raw = pickle.dumps({"trap": Tripwire(marker)})
    for blob in (zipped.getvalue(), legacy.getvalue(), raw):
        refused(InvalidArgumentError, "ACTIVATION_MALFORMED", partial(decode_cache, blob, gpt2.spec))
        refused(InvalidArgumentError, "ACTIVATION_MALFORMED", partial(inspect_cache, blob))
    assert not marker.exists()
    pickle.loads(raw)["trap"].close()  # the tripwire works: unpickling really would have run code
    assert marker.exists()


def test_the_same_cache_encodes_to_the_same_bytes(tiny: dict[str, Tiny]) -> None:
    """Equal content, one digest: safetensors alone writes its metadata in a different order each time."""
    for model in tiny.values():
        encodings = {model.memory_blob() for _ in range(5)}
        assert len(encodings) == 1
        (blob,) = encodings
        header = blob[8 : 8 + int.from_bytes(blob[:8], "little")]
        assert header.rstrip(b" ") == json.dumps(json.loads(header), sort_keys=True, separators=(",", ":")).encode()
