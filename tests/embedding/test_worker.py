"""The embedder: offline, fingerprinted, and batched across concurrent callers on its own thread."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from memos_test_support import wait_until

from memos_grpc.embedding.embedder import Embedder, FloatArray, model_fingerprint
from memos_grpc.embedding.worker import EmbeddingWorker
from memos_grpc.errors import MemosError


class RecordingEmbedder:
    """The real embedder, noting each model call's batch size and thread."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.calls: list[tuple[int, str]] = []
        self.entered: list[int] = []  # batch sizes of the calls that have reached the model, gate or not
        self.gate = threading.Event()

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    def embed(self, texts: list[str]) -> FloatArray:
        self.entered.append(len(texts))
        self.gate.wait(timeout=10)  # hold the first call so the others queue up behind it
        self.calls.append((len(texts), threading.current_thread().name))
        return self.inner.embed(texts)


def test_concurrent_requests_share_model_calls_off_the_caller_threads(embedder: Embedder) -> None:
    recording = RecordingEmbedder(embedder)
    worker = EmbeddingWorker(recording, batch_size=64, timeout_seconds=30)
    texts = [f"memory number {i} about topic {i % 5}" for i in range(32)]
    try:
        with ThreadPoolExecutor(max_workers=len(texts)) as pool:
            futures = [pool.submit(worker.embed, [text]) for text in texts]
            # Open the gate only once every text is either in the held call or queued behind it.
            wait_until(
                lambda: recording.entered and sum(recording.entered) + worker.queued() == len(texts),
                timeout=30,
                what="every text queued behind the held model call",
            )
            recording.gate.set()
            results = [f.result() for f in futures]
    finally:
        worker.close()
    # The held call, then one batch of everything queued behind it (batch_size 64 > 32 texts).
    assert len(recording.calls) <= 2, f"concurrent texts must share model calls: {recording.calls}"
    assert sum(size for size, _ in recording.calls) == len(texts)
    assert {thread for _, thread in recording.calls} == {"embedder"}
    direct = embedder.embed(texts)
    for text_index, vectors in enumerate(results):
        assert vectors.shape == (1, 384)
        np.testing.assert_allclose(vectors[0], direct[text_index], atol=1e-5)
        assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)


def test_embedder_errors_reach_every_waiting_caller(embedder: Embedder) -> None:
    class Failing(RecordingEmbedder):
        def embed(self, texts: list[str]) -> FloatArray:
            raise RuntimeError("model exploded")

    worker = EmbeddingWorker(Failing(embedder), batch_size=8, timeout_seconds=10)
    try:
        with pytest.raises(MemosError) as caught:
            worker.embed(["x"])
    finally:
        worker.close()
    assert caught.value.reason == "EMBEDDER_FAILED"


def test_fingerprint_is_stable_and_changes_with_the_weights(tmp_path: Path, embedder: Embedder) -> None:
    assert embedder.fingerprint.startswith("all-MiniLM-L6-v2@sha256:")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 8}')
    (model / "model.safetensors").write_bytes(b"weights-1")
    first = model_fingerprint("tiny", model)
    assert model_fingerprint("tiny", model) == first
    (model / "model.safetensors").write_bytes(b"weights-2")
    assert model_fingerprint("tiny", model) != first
    assert model_fingerprint("other", model) != model_fingerprint("tiny", model)
