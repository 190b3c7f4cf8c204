"""A single background thread that batches embedding requests from many RPC threads.

RPC threads hand their texts to the worker and wait on a future; the worker
gathers whatever is queued (up to a batch size) into one model call, so
concurrent small requests share one forward pass and the model runs off the
RPC threads.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np

from memos_grpc import reasons
from memos_grpc.embedding.embedder import Embedder, FloatArray
from memos_grpc.errors import MemosError, UnavailableError

log = logging.getLogger(__name__)


@dataclass
class _Job:
    texts: list[str]
    future: Future[FloatArray] = field(default_factory=Future)


class EmbeddingWorker:
    """Runs an embedder on its own thread, batching the texts of concurrent callers."""

    def __init__(self, embedder: Embedder, batch_size: int, timeout_seconds: float) -> None:
        self.embedder = embedder
        self._batch_size = batch_size
        self._timeout = timeout_seconds
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="embedder", daemon=True)
        self._thread.start()

    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    @property
    def fingerprint(self) -> str:
        return self.embedder.fingerprint

    def embed(self, texts: list[str]) -> FloatArray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        job = _Job(texts)
        self._queue.put(job)
        try:
            return job.future.result(timeout=self._timeout)
        except FutureTimeout as exc:
            raise UnavailableError(
                f"the embedder did not answer within {self._timeout:g}s (embed_timeout_seconds)",
                reason=reasons.EMBEDDER_TIMEOUT,
            ) from exc

    def queued(self) -> int:
        """Calls waiting for the embedder thread (not counting the batch it is running)."""
        return self._queue.qsize()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _take_batch(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, total, stop = [first], len(first.texts), False
        while total < self._batch_size:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stop = True
                break
            jobs.append(job)
            total += len(job.texts)
        return jobs, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = self._take_batch(first)
            texts = [t for job in jobs for t in job.texts]
            try:
                vectors = self.embedder.embed(texts)
            except MemosError as exc:
                for job in jobs:
                    job.future.set_exception(exc)
            except Exception as exc:  # the model failed: every waiting caller must hear of it
                log.exception("embedding %d texts failed", len(texts))
                for job in jobs:
                    job.future.set_exception(
                        UnavailableError(f"the embedder failed: {exc}", reason=reasons.EMBEDDER_FAILED)
                    )
            else:
                start = 0
                for job in jobs:
                    job.future.set_result(vectors[start : start + len(job.texts)])
                    start += len(job.texts)
            if stop:
                return
