"""What bench/vault.py measures the servers against: the clustered data, its filters, the exact answers (numpy,
brute force), recall, latency percentiles, and raw hnswlib with the server's own index parameters."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import hnswlib
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from memos_grpc.settings import Settings

K = 10
Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


def make_data(args: argparse.Namespace) -> tuple[Floats, Floats, Ints]:
    """N base vectors and Q queries around the same random centroids, all of unit length; each base vector's
    centroid."""
    rng = np.random.default_rng(args.seed)
    centroids = rng.standard_normal((args.clusters, args.dim), dtype=np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)

    def draw(n: int) -> tuple[Floats, Ints]:
        noise = rng.standard_normal((n, args.dim), dtype=np.float32) * np.float32(args.noise / np.sqrt(args.dim))
        which = rng.integers(args.clusters, size=n)
        points = centroids[which] + noise
        unit: Floats = points / np.linalg.norm(points, axis=1, keepdims=True)
        return unit, which.astype(np.int64)

    (base, clusters), (queries, _) = draw(args.cubes), draw(args.queries)
    return base, queries, clusters


def exact_top_k(base: Floats, queries: Floats, k: int = K) -> Ints:
    """Brute-force cosine top-k, unordered (the vectors are unit length, so a dot product)."""
    chunks = [np.argpartition(-(queries[i : i + 100] @ base.T), k, axis=1)[:, :k] for i in range(0, len(queries), 100)]
    return np.concatenate(chunks).astype(np.int64)


#: Filter name to the share of cubes (tags) or of centroids (labels) it matches; see ``filter_sets``.
FILTERS = {"tags:t10": 0.10, "tags:t1": 0.01, 'labels.sel = "ten"': 0.10, 'labels.sel = "one"': 0.01}


def filter_sets(n: int, seed: int, clusters: Ints, centroids: int) -> dict[str, Ints]:
    """For each filter in FILTERS the sorted indexes of the cubes it matches.

    The two tags are drawn at random, independently of each other (a cube may carry both) and of the vectors;
    the label values follow the vectors' centroids: 10 % of the centroids for ``ten``, 1 % for ``one``.
    """
    rng = np.random.default_rng(seed + 1)
    tagged = {f: np.sort(rng.choice(n, int(n * share), replace=False)) for f, share in FILTERS.items() if "tags" in f}
    ten = max(1, int(centroids * FILTERS['labels.sel = "ten"']))
    one = max(1, int(centroids * FILTERS['labels.sel = "one"']))
    labelled = {
        'labels.sel = "ten"': np.flatnonzero(clusters < ten),
        'labels.sel = "one"': np.flatnonzero((clusters >= ten) & (clusters < ten + one)),
    }
    return tagged | labelled


def exact_filtered_top_k(base: Floats, queries: Floats, members: Ints) -> Ints:
    """The exact top k among ``members`` (indexes into ``base``), as indexes into ``base``."""
    return members[exact_top_k(base[members], queries)]


def recall(found: Sequence[Sequence[int]], truth: Ints) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]))


def stats_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {f"p{p}_ms": float(np.percentile(ms, p)) for p in (50, 95, 99)} | {"mean_ms": float(ms.mean())}


def raw_hnswlib(base: Floats, queries: Floats, truth: Ints, batch: int, s: Settings) -> dict[str, Any]:
    """hnswlib alone, with the server's parameters: add rates (batched, one call) and single-query search."""

    def new_index() -> hnswlib.Index:
        index = hnswlib.Index(space="cosine", dim=base.shape[1])
        index.init_index(max_elements=len(base), M=s.hnsw_m, ef_construction=s.hnsw_ef_construction)
        return index

    labels = np.arange(len(base), dtype=np.int64)
    one_call = new_index()
    started = time.perf_counter()
    one_call.add_items(base, labels, num_threads=-1)
    one_call_s = time.perf_counter() - started
    del one_call
    index = new_index()
    started, cpu = time.perf_counter(), time.process_time()
    for lo in tqdm(range(0, len(base), batch), desc="raw hnswlib add", unit="batch", leave=False):
        index.add_items(base[lo : lo + batch], labels[lo : lo + batch], num_threads=-1)
    batched_s, cpu = time.perf_counter() - started, time.process_time() - cpu
    index.set_ef(s.hnsw_ef_search)
    latencies, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        got, _ = index.knn_query(q, k=K, num_threads=1)
        latencies.append(time.perf_counter() - t0)
        found.append(got[0].tolist())
    return {
        "params": {"M": s.hnsw_m, "ef_construction": s.hnsw_ef_construction, "ef": s.hnsw_ef_search},
        "add_per_s_batched": len(base) / batched_s,
        "add_per_s_one_call": len(base) / one_call_s,
        "add_cpu_s_batched": cpu,
        "search": stats_ms(latencies) | {"qps": len(queries) / sum(latencies), "recall_at_10": recall(found, truth)},
    }
