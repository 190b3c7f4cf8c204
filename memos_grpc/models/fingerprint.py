"""Fingerprints of Hugging Face model directories.

A fingerprint names one exact model: its config, generation config, tokenizer
and safetensors weights. Pickle-format weights are refused, never read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError

#: Non-weight files whose bytes change what the model computes or how text becomes tokens.
_DEFINING_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "tokenizer.model",
        "spiece.model",
        "sentencepiece.bpe.model",
        "chat_template.jinja",
        "chat_template.json",
        "model.safetensors.index.json",
    }
)
#: Suffixes of files that are (or usually are) pickles; loading one can run arbitrary code.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_BLOCK = 1 << 20


def _is_defining(name: str) -> bool:
    return name in _DEFINING_FILES or name.endswith(".safetensors")


def model_name(directory: Path) -> str:
    """The readable part of a fingerprint: ``model_type`` from config.json.

    ``_name_or_path`` is not used: it is the path the model was loaded from,
    which differs between machines for the same bytes.
    """
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise InvalidArgumentError(f"{directory} has no config.json", reason=reasons.MODEL_DIRECTORY_INVALID)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidArgumentError(
            f"{config_path} is not valid JSON: {error}", reason=reasons.MODEL_DIRECTORY_INVALID
        ) from error
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str) or not model_type:
        raise InvalidArgumentError(f"{config_path} names no model_type", reason=reasons.MODEL_DIRECTORY_INVALID)
    return model_type


def model_fingerprint(directory: Path) -> str:
    """``"<model_type>@sha256:<hex>"`` over the directory's defining files, sorted by name.

    Each file contributes its name, its byte length and its bytes (streamed in
    1 MiB blocks), so no two different directories can hash the same stream.
    Only top-level files count, as ``from_pretrained`` reads only those.
    """
    if not directory.is_dir():
        raise InvalidArgumentError(f"{directory} is not a directory", reason=reasons.MODEL_DIRECTORY_INVALID)
    names = sorted(entry.name for entry in directory.iterdir() if entry.is_file())
    pickles = [name for name in names if name.lower().endswith(_PICKLE_SUFFIXES)]
    if pickles:
        raise InvalidArgumentError(
            f"{directory} holds pickle-format files ({', '.join(pickles)}); "
            "only safetensors weights are accepted, convert them first",
            reason=reasons.MODEL_PICKLE_REFUSED,
        )
    name = model_name(directory)
    defining = [entry for entry in names if _is_defining(entry)]
    if not any(entry.endswith(".safetensors") for entry in defining):
        raise InvalidArgumentError(
            f"{directory} holds no *.safetensors weights", reason=reasons.MODEL_DIRECTORY_INVALID
        )
    digest = hashlib.sha256(name.encode() + b"\0")
    for entry in defining:
        path = directory / entry
        digest.update(entry.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(_BLOCK), b""):
                digest.update(block)
    return f"{name}@sha256:{digest.hexdigest()}"
