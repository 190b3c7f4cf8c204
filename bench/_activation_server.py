"""The server phase of bench/activation.py (``--server``): a child server against the library it runs.

On the model directory the time-to-first-token phase built, a server starts as a child process and a
``ModelHost`` loads the same directory in this process. Per N: ``TransformCube`` to ACTIVATION watched to the
end against ``ModelHost.compute_cache`` plus a file write, split by the operation's timestamps, and
``ReadPayload`` against reading that file. Then one parametric transform against ``train_adapter``.
``report_server`` prints the tables of this phase.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import torch
from _activation_common import MB, memory_ids, summary, table, words
from _server import Target, start_server, stop
from google.protobuf.timestamp_pb2 import Timestamp
from safetensors.torch import load as load_tensors
from transformers import DynamicCache

from memos_grpc._proto.memos.v1 import (
    cube_pb2,
    governance_service_pb2,
    governance_service_pb2_grpc,
    scheduler_service_pb2,
    scheduler_service_pb2_grpc,
    vault_service_pb2,
    vault_service_pb2_grpc,
)
from memos_grpc.models.host import ModelHost
from memos_grpc.models.parametric import TrainingPlan, train_adapter, training_examples

DIM = 384  # the server's vector dimension: with no embedder, clients send the vectors
SPACE = "activation-bench"
LEARNING_RATE, RANK = 1e-3, 8
Operation = scheduler_service_pb2.Operation


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
        host.model(input_ids=ids, cache=DynamicCache(), use_cache=True, logits_to_keep=1)
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
        # On timeout the handler below kills it.
        result |= {"shutdown_s": stop(proc), "exit_code": proc.returncode}
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()
        print(log.read_text()[-4000:] if log.exists() else "(no server log)", file=sys.stderr)
        raise
    return result


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
