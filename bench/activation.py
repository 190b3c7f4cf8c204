"""Activation-memory benchmark: time to first token with N memory tokens as plaintext versus as a stored KV cache.

Run by hand, never in the test suite::

    .venv/bin/python bench/activation.py                              # N = 256, 1024, 4096 (a few minutes)
    .venv/bin/python bench/activation.py --sizes 256 --repeats 3      # smoke run, well under a minute
    .venv/bin/python bench/activation.py --server                     # and the same work through a server

A small Llama model (grouped-query attention) is built from a config with a fixed seed, saved as
safetensors and loaded back the way the server loads a model directory, on the CPU in float32, and
fingerprinted with the project's ``model_fingerprint``. For each N the memory is N random token ids and
the question Q more (seeded), so the token counts are exact. Two ways to get the first answer token:

* plaintext: one forward pass over memory + question, then the argmax of the last position's logits.
  Only that position goes through the output layer (``logits_to_keep=1``, as ``generate`` does).
* KV cache: the memory's cache is computed once beforehand (not timed), encoded with ``encode_cache`` and
  written to a file, which is what the vault stores. Timed: read the file, ``decode_cache`` (which
  validates the header against the model), ``forward_with_cache`` over the question, the argmax.
  The file is in the page cache by then, so this is a warm read.

Once per N (the warm-up) the two first-token logits must agree, or the run stops. Then each of
``--repeats`` rounds times both paths back to back, alternating which goes first. Only ratios within
one run mean much: the machine may be shared.

The model directory also holds a word-level tokenizer over the words ``w0`` .. ``w{vocab-1}``, so the text
``" ".join(f"w{i}" for i in ids)`` encodes to exactly those ids: the server reads the same N tokens.

With ``--server`` a second phase starts a server as a child process (``MEMOS_MODEL_DIR`` the model
directory, ``MEMOS_EMBEDDER=none``, torch threads as ``--threads``) and measures what it costs over the
library it runs, on the same model and texts:

* activation, for each N: the library's ``ModelHost.compute_cache`` plus writing the blob to a file,
  against CreateCube (plaintext) then ``TransformCube`` to ACTIVATION, timed from the call until
  ``WatchOperation`` reports it done. The operation's timestamps split the server's time into accepting
  and queueing, the model, storing the blob and committing the cube, and recording the end. Then
  ``ReadPayload`` of the blob against reading the library's file (both warm). A fresh cube per round.
* parametric: one ``TransformCube`` of ``--train-cubes`` cubes of ``--train-tokens`` tokens with
  ``training.steps`` = ``--train-steps``, against ``train_adapter`` in this process on the same texts and
  plan (seed, rank 8, learning rate 1e-3 rounded to 32 bits as the request carries it, the model's default
  target modules).
"""

from __future__ import annotations

import os

# Before torch is imported (memos_grpc imports it): with OpenMP's default active wait, the threads of every
# parallel region spin, and stall whenever another process holds a core (see docs/performance.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import hashlib
import importlib.metadata
import itertools
import json
import math
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import torch
from _server import Target, start_server
from google.protobuf.timestamp_pb2 import Timestamp
from safetensors.torch import load as load_tensors
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    DynamicCache,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from memos_grpc._proto.memos.v1 import (
    cube_pb2,
    governance_service_pb2,
    governance_service_pb2_grpc,
    scheduler_service_pb2,
    scheduler_service_pb2_grpc,
    vault_service_pb2,
    vault_service_pb2_grpc,
)
from memos_grpc.models.activation import CacheSpec, decode_cache, encode_cache
from memos_grpc.models.fingerprint import model_fingerprint
from memos_grpc.models.host import ModelHost
from memos_grpc.models.kv import forward_with_cache
from memos_grpc.models.parametric import TrainingPlan, train_adapter, training_examples

ROOT = Path(__file__).resolve().parent.parent
MB = 1e6
DIM = 384  # the server's vector dimension: with no embedder, clients send the vectors
SPACE = "activation-bench"
LEARNING_RATE, RANK = 1e-3, 8
Operation = scheduler_service_pb2.Operation


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="256,1024,4096", help="memory token counts N, comma-separated")
    parser.add_argument("--question-tokens", type=int, default=32, help="question tokens Q read after the memory")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per N, after one warm-up round")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (torch.set_num_threads)")
    parser.add_argument("--hidden", type=int, default=512, help="hidden size")
    parser.add_argument("--layers", type=int, default=8, help="decoder layers")
    parser.add_argument("--heads", type=int, default=8, help="attention heads")
    parser.add_argument("--kv-heads", type=int, default=4, help="key/value heads (grouped-query attention)")
    parser.add_argument("--intermediate", type=int, default=1408, help="MLP intermediate size")
    parser.add_argument("--vocab", type=int, default=32000, help="vocabulary size")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest allowed difference of first-token logits")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the token ids")
    parser.add_argument("--json", type=Path, help="also write every number (and the machine description) here")
    parser.add_argument("--server", action="store_true", help="also measure the same work through a child server")
    parser.add_argument("--skip-ttft", action="store_true", help="skip the time-to-first-token phase (with --server)")
    parser.add_argument("--server-sizes", help="memory token counts of the server phase (default: --sizes)")
    parser.add_argument("--server-repeats", type=int, default=5, help="timed rounds per N of the server phase")
    parser.add_argument("--train-cubes", type=int, default=8, help="cubes of the parametric transform")
    parser.add_argument("--train-tokens", type=int, default=64, help="tokens of each of those cubes")
    parser.add_argument("--train-steps", type=int, default=50, help="training.steps of the parametric transform")
    args = parser.parse_args(argv)
    args.sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    args.server_sizes = [int(n) for n in args.server_sizes.split(",") if n.strip()] if args.server_sizes else args.sizes
    if not args.sizes or min(args.sizes) < 1 or args.question_tokens < 1 or args.repeats < 1:
        parser.error("--sizes, --question-tokens and --repeats must be positive")
    if args.skip_ttft and not args.server:
        parser.error("--skip-ttft leaves nothing to run without --server")
    counts = (args.server_repeats, args.train_cubes, args.train_tokens - 1, args.train_steps)
    if args.server and (not args.server_sizes or min(args.server_sizes) < 1 or min(counts) < 1):
        parser.error("--server-sizes, --server-repeats, --train-cubes and --train-steps must be positive")
    return args


def memory_ids(args: argparse.Namespace, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The N memory token ids and the question's, [1, N] and [1, Q], seeded by N."""
    generator = torch.Generator().manual_seed(args.seed * 1_000_003 + n)
    memory = torch.randint(0, args.vocab, (1, n), generator=generator)
    question = torch.randint(0, args.vocab, (1, args.question_tokens), generator=generator)
    return memory, question


def words(ids: Iterable[int]) -> str:
    """The text the word-level tokenizer reads as exactly ``ids``."""
    return " ".join(f"w{i}" for i in ids)


def word_tokenizer(vocab: int) -> PreTrainedTokenizerFast:
    """One word per id, ``w0`` .. ``w{vocab-1}``, split on whitespace, with no special tokens added."""
    core = Tokenizer(models.WordLevel(vocab={f"w{i}": i for i in range(vocab)}))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core)  # type: ignore[no-untyped-call]


def build_model(args: argparse.Namespace, directory: Path) -> tuple[PreTrainedModel, str, dict[str, Any]]:
    """The model saved to ``directory`` and loaded back from it, its fingerprint and a description."""
    torch.manual_seed(args.seed)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=max(args.sizes + args.server_sizes + [args.train_tokens]) + args.question_tokens,
    )
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    word_tokenizer(args.vocab).save_pretrained(directory)  # fingerprinted with the weights, as a server's model is
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, device_map="cpu")
    model.eval()
    fingerprint = model_fingerprint(directory)
    weights = sum(path.stat().st_size for path in directory.glob("*.safetensors"))
    info = {
        "config": {
            "hidden_size": args.hidden,
            "num_hidden_layers": args.layers,
            "num_attention_heads": args.heads,
            "num_key_value_heads": args.kv_heads,
            "head_dim": args.hidden // args.heads,
            "intermediate_size": args.intermediate,
            "vocab_size": args.vocab,
            "max_position_embeddings": config.max_position_embeddings,
            "tie_word_embeddings": bool(config.tie_word_embeddings),
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_mb": weights / MB,
        "dtype": str(model.dtype),
        "attn_implementation": model.config._attn_implementation,
        "fingerprint": fingerprint,
    }
    return model, fingerprint, info


def plaintext_ttft(model: PreTrainedModel, ids: torch.Tensor) -> tuple[float, torch.Tensor, int]:
    """Seconds to the first token reading memory + question in one pass, its logits, and the token."""
    start = time.perf_counter()
    with torch.no_grad():
        # A fresh cache is filled as generation would need it for the tokens after the first.
        output = model(input_ids=ids, past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
    logits = output.logits[0, -1]
    token = int(logits.argmax())
    return time.perf_counter() - start, logits, token


def cache_ttft(
    model: PreTrainedModel, spec: CacheSpec, path: Path, question: torch.Tensor
) -> tuple[float, float, torch.Tensor, int]:
    """Seconds to the first token from the stored cache, of which reading and decoding it, its logits, the token."""
    start = time.perf_counter()
    cache = decode_cache(path.read_bytes(), spec)
    decoded = time.perf_counter()
    logits = forward_with_cache(model, cache, question)[0, -1]
    token = int(logits.argmax())
    return time.perf_counter() - start, decoded - start, logits, token


def summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {"median_ms": statistics.median(ms), "min_ms": ms[0], "max_ms": ms[-1]}


def measure(
    model: PreTrainedModel, fingerprint: str, spec: CacheSpec, n: int, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    memory, question = memory_ids(args, n)
    full = torch.cat([memory, question], dim=1)

    prepared = time.perf_counter()
    stored = DynamicCache()
    forward_with_cache(model, stored, memory)  # the cache a vault write of these N tokens would hold
    blob = encode_cache(stored, fingerprint, n)
    del stored
    path = tmp / f"memory-{n}.safetensors"
    path.write_bytes(blob)
    prepare_s = time.perf_counter() - prepared

    # Warm-up round, which is also the correctness check.
    _, plain_logits, plain_token = plaintext_ttft(model, full)
    _, _, cached_logits, cached_token = cache_ttft(model, spec, path, question)
    max_diff = float((plain_logits - cached_logits).abs().max())
    if cached_token != plain_token or not torch.allclose(plain_logits, cached_logits, rtol=0.0, atol=args.atol):
        raise SystemExit(
            f"N={n}: the paths disagree: first token {plain_token} (plaintext) vs {cached_token} (cache), "
            f"largest logit difference {max_diff:.3g} (allowed {args.atol:g})"
        )

    plain: list[float] = []
    cached: list[float] = []
    decode: list[float] = []

    def run_plain() -> None:
        seconds, _, token = plaintext_ttft(model, full)
        assert token == plain_token
        plain.append(seconds)

    def run_cached() -> None:
        seconds, decode_s, _, token = cache_ttft(model, spec, path, question)
        assert token == plain_token
        cached.append(seconds)
        decode.append(decode_s)

    order: list[Callable[[], None]] = [run_plain, run_cached]
    for _ in range(args.repeats):
        for step in order:
            step()
        order.reverse()  # so neither path always runs right after the other
        print(f"  N={n}: round {len(plain)}/{args.repeats}", file=sys.stderr, flush=True)

    result: dict[str, Any] = {"n": n, "question_tokens": args.question_tokens, "blob_mb": len(blob) / MB}
    result |= {"prepare_s": prepare_s, "max_logit_diff": max_diff, "first_token": plain_token}
    result |= {"plaintext": summary(plain), "cache": summary(cached), "decode": summary(decode)}
    result["samples_s"] = {"plaintext": plain, "cache": cached, "decode": decode}
    ratio = result["cache"]["median_ms"] / result["plaintext"]["median_ms"]
    result |= {"ratio": ratio, "lower_pct": 100 * (1 - ratio)}
    path.unlink()
    return result


# -- the server phase ---------------------------------------------------------------


def seconds_of(stamp: Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def summary_or_none(seconds: list[float | None]) -> dict[str, float] | None:
    known = [s for s in seconds if s is not None]
    return summary(known) if known else None


@contextlib.contextmanager
def child_env(**variables: str) -> Iterator[None]:
    """Sets environment variables for a child started inside the block (start_server copies os.environ)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Client:
    """The stubs of one channel to the child server, with its credentials."""

    def __init__(self, channel: grpc.Channel, target: Target) -> None:
        self.metadata = target.metadata
        self.vault = vault_service_pb2_grpc.VaultServiceStub(channel)  # type: ignore[no-untyped-call]
        self.scheduler = scheduler_service_pb2_grpc.SchedulerServiceStub(channel)  # type: ignore[no-untyped-call]
        self.governance = governance_service_pb2_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
        self.parent = f"spaces/{SPACE}"
        self._vector = torch.nn.functional.normalize(
            torch.randn(DIM, generator=torch.Generator().manual_seed(1)), dim=0
        )

    def create(self, cube_id: str, text: str) -> str:
        cube = cube_pb2.MemCube(type=cube_pb2.MEMORY_TYPE_PLAINTEXT, plaintext=cube_pb2.PlaintextPayload(text=text))
        request = vault_service_pb2.CreateCubeRequest(
            parent=self.parent,
            cube_id=cube_id,
            cube=cube,
            vector=vault_service_pb2.Vector(values=self._vector.tolist()),
        )
        created: cube_pb2.MemCube = self.vault.CreateCube(request, metadata=self.metadata, timeout=60)
        return created.name

    def transform(
        self, request: scheduler_service_pb2.TransformCubeRequest
    ) -> tuple[Operation, list[tuple[Operation, float]], float, float]:
        """Starts the transform and watches it to the end: its first answer, every update seen with the
        wall time it arrived, and the wall time of the call and perf_counter seconds to the done update."""
        called_at = time.time()
        started = time.perf_counter()
        first: Operation = self.scheduler.TransformCube(request, metadata=self.metadata, timeout=60)
        seen: list[tuple[Operation, float]] = []
        watch = scheduler_service_pb2.WatchOperationRequest(name=first.name)
        for update in self.scheduler.WatchOperation(watch, metadata=self.metadata, timeout=1800):
            seen.append((update, time.time()))
            if update.done:
                break
        elapsed = time.perf_counter() - started
        final = seen[-1][0] if seen else first
        if final.state != Operation.STATE_SUCCEEDED:
            raise SystemExit(f"{first.name} ended {Operation.State.Name(final.state)}: {final.error}")
        return first, seen, called_at, elapsed

    def read_payload(self, name: str) -> bytes:
        request = vault_service_pb2.ReadPayloadRequest(name=name)
        return b"".join(chunk.data for chunk in self.vault.ReadPayload(request, metadata=self.metadata, timeout=600))


def activation_parts(
    first: Operation, seen: list[tuple[Operation, float]], called_at: float
) -> dict[str, float | None]:
    """The server's transform split by its operation's timestamps (wall clock, the same machine's)."""
    running = next(
        (seconds_of(u.update_time) for u, _ in seen if u.state == Operation.STATE_RUNNING and not u.step), None
    )
    computed = next((seconds_of(u.update_time) for u, _ in seen if not u.done and u.step >= 1), None)
    final, received = seen[-1]
    ended = seconds_of(final.end_time)
    return {
        # The RPC, reading and checking the source, tokenizing it, recording the operation in DuckDB, the queue.
        "accept_queue": None if running is None else running - called_at,
        "model": None if running is None or computed is None else computed - running,
        # Writing the blob (fsync, rename, directory fsync), its row, and the cube's new version: two DuckDB commits.
        "store_commit": None if computed is None else ended - computed,
        # Recording the operation's end in DuckDB, and the update reaching the watcher.
        "finish": received - ended,
        "accepted": seconds_of(first.create_time) - called_at,
    }


def largest_difference(a: bytes, b: bytes) -> float:
    """The largest absolute difference between same-named tensors of two safetensors blobs (inf if they do not pair)."""
    left, right = load_tensors(a), load_tensors(b)
    if left.keys() != right.keys() or any(left[k].shape != right[k].shape for k in left):
        return math.inf
    return max((float((left[k].double() - right[k].double()).abs().max()) for k in left), default=0.0)


def library_cache(host: ModelHost, text: str, path: Path) -> tuple[dict[str, float], bytes]:
    """ModelHost.compute_cache, then writing the blob to a new file; that file's fsync and the blob's SHA-256
    (which the server's blob store also does) are timed apart."""
    started = time.perf_counter()
    blob = host.compute_cache(text).blob
    computed = time.perf_counter()
    with open(path, "xb") as handle:  # a new file each time, as the blob store writes one
        handle.write(blob)
        handle.flush()
        written = time.perf_counter()
        os.fsync(handle.fileno())
    synced = time.perf_counter()
    hashlib.sha256(blob).digest()
    hashed = time.perf_counter()
    times = {"compute": computed - started, "write": written - computed, "fsync": synced - written}
    return times | {"sha256": hashed - synced}, blob


def prefill_only(host: ModelHost, ids: torch.Tensor) -> float:
    """The same forward pass as compute_cache without the output layer on every position (logits_to_keep=1)."""
    started = time.perf_counter()
    with torch.inference_mode():
        host.model(input_ids=ids, past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
    return time.perf_counter() - started


def measure_transform(client: Client, host: ModelHost, n: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    memory, _ = memory_ids(args, n)
    text = words(memory[0].tolist())
    if host.token_ids(text) != memory[0].tolist():
        raise SystemExit(f"N={n}: the tokenizer does not read the text as the memory's ids")
    samples: dict[str, list[Any]] = {
        key: []
        for key in (
            "compute",
            "write",
            "fsync",
            "sha256",
            "prefill_only",
            "transform",
            "accept_queue",
            "model",
            "store_commit",
            "finish",
            "accepted",
            "read_payload",
            "read_file",
        )
    }
    identical: list[bool] = []
    differences: list[float] = []
    digests: set[bytes] = set()
    blob_bytes = 0
    for round_ in range(args.server_repeats + 1):  # round 0 is the warm-up, not counted
        keep = round_ > 0
        path = tmp / f"library-{n}-{round_}.safetensors"
        name = client.create(f"n{n}-r{round_}", text)
        request = scheduler_service_pb2.TransformCubeRequest(
            parent=client.parent, names=[name], target_type=cube_pb2.MEMORY_TYPE_ACTIVATION
        )
        # Alternate which side goes first, so neither always runs right after the other.
        if round_ % 2:
            first, seen, called_at, transform_s = client.transform(request)
            parts, blob = library_cache(host, text, path)
        else:
            parts, blob = library_cache(host, text, path)
            first, seen, called_at, transform_s = client.transform(request)
        split = activation_parts(first, seen, called_at)
        blob_bytes = len(blob)
        prefill = prefill_only(host, memory)
        # Both blobs were just written, so both reads are warm; alternate which goes first.
        reads: dict[str, float] = {}
        served = b""
        for which in ("read_payload", "read_file") if round_ % 2 else ("read_file", "read_payload"):
            started = time.perf_counter()
            if which == "read_payload":
                served = client.read_payload(name)
            else:
                path.read_bytes()
            reads[which] = time.perf_counter() - started
        identical.append(served == blob)
        differences.append(largest_difference(served, blob))
        digests.add(hashlib.sha256(served).digest())
        if keep:
            for key, value in (parts | split | reads).items():
                samples[key].append(value)
            samples["prefill_only"].append(prefill)
            samples["transform"].append(transform_s)
        label = "warm-up" if not keep else f"round {round_}/{args.server_repeats}"
        print(f"  server N={n}: {label}: transform {transform_s * 1000:.0f} ms", file=sys.stderr, flush=True)
    for path in tmp.glob(f"library-{n}-*.safetensors"):
        path.unlink()
    result: dict[str, Any] = {"n": n, "blob_mb": blob_bytes / MB, "blobs_identical": all(identical)}
    # safetensors writes the header's metadata in no fixed order, so equal caches need not be equal bytes.
    result |= {"largest_difference": max(differences), "distinct_server_blobs": len(digests)}
    result |= {key: summary_or_none(values) for key, values in samples.items()}
    library = [c + w for c, w in zip(samples["compute"], samples["write"], strict=True)]
    result["library"] = summary(library)
    result["ratio"] = result["transform"]["median_ms"] / result["library"]["median_ms"]
    # Rounds pair the two sides back to back, which largely cancels the machine's slower spells.
    result["paired_ratio"] = statistics.median(t / x for t, x in zip(samples["transform"], library, strict=True))
    result["extra_ms"] = result["transform"]["median_ms"] - result["library"]["median_ms"]
    for which in ("read_payload", "read_file"):
        result[f"{which}_mb_s"] = blob_bytes / MB / (result[which]["median_ms"] / 1000)
    result["read_ratio"] = result["read_payload"]["median_ms"] / result["read_file"]["median_ms"]
    result["samples_s"] = samples
    return result


def training_texts(args: argparse.Namespace) -> list[str]:
    generator = torch.Generator().manual_seed(args.seed * 1_000_003 + 999_983)
    ids = torch.randint(0, args.vocab, (args.train_cubes, args.train_tokens), generator=generator)
    return [words(row.tolist()) for row in ids]


def step_rate(stamps: dict[int, float], total: int) -> float | None:
    """Seconds per step between the first and the last step seen before the last (whose report may come
    after the final loss, in the server)."""
    steps = sorted(step for step in stamps if 1 <= step < total)
    if len(steps) < 2:
        return None
    return (stamps[steps[-1]] - stamps[steps[0]]) / (steps[-1] - steps[0])


def measure_training(client: Client, host: ModelHost, args: argparse.Namespace) -> dict[str, Any]:
    texts = training_texts(args)
    targets = tuple(host.default_target_modules())
    # LoraTraining.learning_rate is a 32-bit float: the library trains with the rate the server receives.
    rate = torch.tensor(LEARNING_RATE, dtype=torch.float32).item()
    plan = TrainingPlan(args.train_steps, rate, RANK, targets, args.seed)
    stamps: dict[int, float] = {}

    def progress(step: int, _loss: float) -> None:
        stamps[step] = time.perf_counter()

    print(f"  training: library, {args.train_steps} steps", file=sys.stderr, flush=True)
    started = time.perf_counter()
    examples = training_examples(host.tokenizer, texts, host.max_positions)
    trained = train_adapter(host.model, examples, plan, host.fingerprint, progress, lambda: False)
    library_s = time.perf_counter() - started
    library = {
        "total_s": library_s,
        "s_per_step": library_s / plan.steps,
        "loop_s_per_step": step_rate(stamps, plan.steps),
    }
    library |= {"initial_loss": trained.initial_loss, "final_loss": trained.final_loss}

    print(f"  training: server, {args.train_steps} steps", file=sys.stderr, flush=True)
    names = [client.create(f"train-{i}", text) for i, text in enumerate(texts)]
    training = scheduler_service_pb2.LoraTraining(
        steps=plan.steps, learning_rate=plan.learning_rate, rank=plan.rank, seed=plan.seed
    )  # target_modules left empty: the server's default for its model
    request = scheduler_service_pb2.TransformCubeRequest(
        parent=client.parent, names=names, target_type=cube_pb2.MEMORY_TYPE_PARAMETRIC, training=training
    )
    first, seen, _, server_s = client.transform(request)
    final = seen[-1][0]
    server_stamps: dict[int, float] = {}
    for update, _ in seen:
        if not update.done and update.step >= 1:
            server_stamps.setdefault(update.step, seconds_of(update.update_time))
    served = client.read_payload(final.cube)
    server: dict[str, Any] = {"total_s": server_s, "s_per_step": server_s / plan.steps}
    server |= {"loop_s_per_step": step_rate(server_stamps, plan.steps), "steps_seen": len(server_stamps)}
    server |= {"initial_loss": final.initial_loss, "final_loss": final.loss}
    server |= {"operation_s": seconds_of(final.end_time) - seconds_of(first.create_time)}
    result: dict[str, Any] = {"cubes": args.train_cubes, "tokens": args.train_tokens, "steps": plan.steps}
    result |= {"rank": plan.rank, "learning_rate": plan.learning_rate, "target_modules": list(targets)}
    result |= {"library": library, "server": server, "adapter_identical": served == trained.blob}
    result["adapter_largest_difference"] = largest_difference(served, trained.blob)
    result["ratio"] = server["s_per_step"] / library["s_per_step"]
    if server["loop_s_per_step"] and library["loop_s_per_step"]:
        result["loop_ratio"] = server["loop_s_per_step"] / library["loop_s_per_step"]
    return result


def server_phase(args: argparse.Namespace, model_dir: Path, fingerprint: str, tmp: Path) -> dict[str, Any]:
    """TransformCube, ReadPayload and training through a child server against the library, on the same model."""
    started = time.perf_counter()
    host = ModelHost(model_dir)
    result: dict[str, Any] = {"library_load_s": time.perf_counter() - started, "repeats": args.server_repeats}
    threads = str(args.threads)
    log = tmp / "server.log"
    proc = None
    try:
        started = time.perf_counter()
        with child_env(MEMOS_MODEL_DIR=str(model_dir), OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads):
            proc, target = start_server(tmp / "data", DIM, log)
        result |= {"startup_s": time.perf_counter() - started, "server_threads": args.threads}
        with grpc.insecure_channel(target.address) as channel:
            client = Client(channel, target)
            space = governance_service_pb2.CreateSpaceRequest(space_id=SPACE)
            client.governance.CreateSpace(space, metadata=client.metadata, timeout=60)
            model = client.scheduler.GetModel(scheduler_service_pb2.GetModelRequest(), metadata=client.metadata)
            if model.fingerprint != fingerprint or host.fingerprint != fingerprint:
                raise SystemExit(f"fingerprints differ: server {model.fingerprint}, library {host.fingerprint}")
            result["runs"] = [measure_transform(client, host, n, args, tmp) for n in args.server_sizes]
            result["training"] = measure_training(client, host, args)
        stopping = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)  # on timeout the handler below kills it
        result |= {"shutdown_s": time.perf_counter() - stopping, "exit_code": proc.returncode}
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()
        print(log.read_text()[-4000:] if log.exists() else "(no server log)", file=sys.stderr)
        raise
    return result


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    versions = {p: importlib.metadata.version(p) for p in ("torch", "transformers", "safetensors")}
    git = [["git", "-C", str(ROOT), *c] for c in (["rev-parse", "--short", "HEAD"], ["status", "-s", "memos_grpc"])]
    try:
        commit, dirty = (subprocess.run(c, capture_output=True, text=True).stdout.strip() for c in git)  # read-only
    except OSError:
        commit, dirty = "?", ""
    info: dict[str, Any] = {"code": (commit or "?") + (" + uncommitted changes to memos_grpc" if dirty else "")}
    info |= {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}
    info |= {"torch_threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    return info | versions


def report(results: dict[str, Any]) -> None:
    m, model = results["machine"], results["model"]
    c = model["config"]
    print(
        f"\nmachine: {m['nproc']} cores, {m['cpu']}; torch {m['torch']} ({m['torch_threads']} threads, "
        f"OMP_WAIT_POLICY={m['omp_wait_policy']}), transformers {m['transformers']}; code {m['code']}"
    )
    start, end = (", ".join(f"{x:.2f}" for x in results[k]) for k in ("loadavg_at_start", "loadavg_at_end"))
    print(f"load average: start {start}, end {end}")
    print(
        f"model: Llama, {c['num_hidden_layers']} layers, hidden {c['hidden_size']}, {c['num_attention_heads']} heads "
        f"({c['num_key_value_heads']} KV, head_dim {c['head_dim']}), intermediate {c['intermediate_size']}, "
        f"vocab {c['vocab_size']}; {model['parameters'] / 1e6:.1f} M parameters, {model['weights_mb']:.1f} MB "
        f"of {model['dtype']} safetensors; attention {model['attn_implementation']}"
    )
    if results["runs"]:
        report_ttft(results)
    if "server" in results:
        report_server(results["server"])


def table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))


def report_ttft(results: dict[str, Any]) -> None:
    q = results["runs"][0]["question_tokens"]
    print(f"question {q} tokens; {results['repeats']} timed rounds per N; ms as median (min-max)\n")
    head = ("N", "plaintext TTFT", "cache TTFT (incl. load)", "read+decode", "blob MB", "cache/plain", "lower")
    rows: list[tuple[str, ...]] = [head]
    for r in results["runs"]:
        p, k, d = r["plaintext"], r["cache"], r["decode"]
        rows.append(
            (
                str(r["n"]),
                f"{p['median_ms']:.1f} ({p['min_ms']:.1f}-{p['max_ms']:.1f})",
                f"{k['median_ms']:.1f} ({k['min_ms']:.1f}-{k['max_ms']:.1f})",
                f"{d['median_ms']:.1f} ({d['min_ms']:.1f}-{d['max_ms']:.1f})",
                f"{r['blob_mb']:.1f}",
                f"{r['ratio']:.3f}",
                f"{r['lower_pct']:.1f} %",
            )
        )
    table(rows)
    diffs = ", ".join(f"N={r['n']}: {r['max_logit_diff']:.2g}" for r in results["runs"])
    print(f"\nlargest first-token logit difference between the paths: {diffs}")
    runs = results["runs"]
    for before, after in itertools.pairwise(runs):
        growth = after["n"] / before["n"]
        plain = after["plaintext"]["median_ms"] / before["plaintext"]["median_ms"]
        cache = after["cache"]["median_ms"] / before["cache"]["median_ms"]
        decode = after["decode"]["median_ms"] / before["decode"]["median_ms"]
        print(
            f"N x{growth:g} ({before['n']} -> {after['n']}): plaintext x{plain:.2f}, cache x{cache:.2f}, "
            f"read+decode x{decode:.2f}"
        )
    summary_line = "; ".join(f"N={r['n']} ratio={r['ratio']:.3f} lower={r['lower_pct']:.1f}%" for r in runs)
    print(summary_line)


def ms(s: dict[str, float] | None, spread: bool = False) -> str:
    if s is None:
        return "-"
    return f"{s['median_ms']:.1f} ({s['min_ms']:.1f}-{s['max_ms']:.1f})" if spread else f"{s['median_ms']:.1f}"


def report_server(server: dict[str, Any]) -> None:
    print(
        f"\nthrough the server: {server['repeats']} timed rounds per N after a warm-up, a fresh cube each; "
        f"server started in {server['startup_s']:.1f} s with {server['server_threads']} torch threads; "
        "ms as median (min-max)\n"
    )
    head: tuple[str, ...] = (
        "N",
        "library",
        "compute",
        "write",
        "(fsync)",
        "(sha256)",
        "server transform",
        "server/library",
        "paired",
        "extra",
    )
    rows: list[tuple[str, ...]] = [head]
    for r in server["runs"]:
        rows.append(
            (
                str(r["n"]),
                ms(r["library"], True),
                ms(r["compute"]),
                ms(r["write"]),
                ms(r["fsync"]),
                ms(r["sha256"]),
                ms(r["transform"], True),
                f"{r['ratio']:.3f}",
                f"{r['paired_ratio']:.3f}",
                f"{r['extra_ms']:+.1f}",
            )
        )
    table(rows)
    print("\nthe server's transform by its operation's timestamps, against the library's compute (ms, medians)\n")
    head = ("N", "accept+queue", "model", "blob+commit", "finish+watch", "library compute", "prefill only")
    rows = [head]
    for r in server["runs"]:
        rows.append(
            (
                str(r["n"]),
                ms(r["accept_queue"]),
                ms(r["model"]),
                ms(r["store_commit"]),
                ms(r["finish"]),
                ms(r["compute"]),
                ms(r["prefill_only"]),
            )
        )
    table(rows)
    print("\nreading the blob back, warm (ms as median (min-max); MB/s of the median)\n")
    head = (
        "N",
        "blob MB",
        "ReadPayload",
        "MB/s",
        "file read",
        "MB/s",
        "ReadPayload/file",
        "tensor diff",
        "same bytes, digests",
    )
    rows = [head]
    for r in server["runs"]:
        rows.append(
            (
                str(r["n"]),
                f"{r['blob_mb']:.1f}",
                ms(r["read_payload"], True),
                f"{r['read_payload_mb_s']:.0f}",
                ms(r["read_file"], True),
                f"{r['read_file_mb_s']:.0f}",
                f"{r['read_ratio']:.2f}",
                f"{r['largest_difference']:.2g}",
                f"{'yes' if r['blobs_identical'] else 'no'}, {r['distinct_server_blobs']}",
            )
        )
    table(rows)
    t = server["training"]
    lib, srv = t["library"], t["server"]
    print(
        f"\ntraining: {t['cubes']} cubes x {t['tokens']} tokens, {t['steps']} steps, rank {t['rank']}, "
        f"lr {t['learning_rate']:g}, targets {','.join(t['target_modules'])}\n"
    )

    def per_step(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    rows = [("", "total s", "s/step", "loop s/step", "initial loss", "final loss")]
    for label, side in (("library", lib), ("server", srv)):
        rows.append(
            (
                label,
                f"{side['total_s']:.2f}",
                f"{side['s_per_step']:.3f}",
                per_step(side["loop_s_per_step"]),
                f"{side['initial_loss']:.6f}",
                f"{side['final_loss']:.6f}",
            )
        )
    loop = f"{t['loop_ratio']:.3f}" if "loop_ratio" in t else "-"
    rows.append(("server/library", "", f"{t['ratio']:.3f}", loop, "", ""))
    table(rows)
    same = "yes" if t["adapter_identical"] else "no"
    difference = t["adapter_largest_difference"]
    print(f"adapter: the same bytes as the library's: {same}; largest tensor difference {difference:.2g}")
    line = "; ".join(f"N={r['n']} server/library={r['ratio']:.3f} extra={r['extra_ms']:.0f}ms" for r in server["runs"])
    print(f"{line}; training server/library={t['ratio']:.3f}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"machine": machine(), "loadavg_at_start": os.getloadavg(), "repeats": args.repeats}
    with tempfile.TemporaryDirectory(prefix="activation-bench-") as name:
        tmp = Path(name)
        model_dir = tmp / "model"
        model, fingerprint, info = build_model(args, model_dir)
        spec = CacheSpec.for_model(model, fingerprint)
        results["model"] = info
        results["runs"] = []
        for n in [] if args.skip_ttft else args.sizes:
            print(f"N={n}: preparing the stored cache", file=sys.stderr, flush=True)
            results["runs"].append(measure(model, fingerprint, spec, n, args, tmp))
        del model
        if args.server:
            print("server phase: starting a server with the model", file=sys.stderr, flush=True)
            results["server"] = server_phase(args, model_dir, fingerprint, tmp)
    results["loadavg_at_end"] = os.getloadavg()
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
