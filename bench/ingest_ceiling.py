"""Ingest ceiling: how close to raw hnswlib's add rate a gRPC server can come on this machine at all.

Run by hand, never in the test suite::

    .venv/bin/python bench/ingest_ceiling.py                  # 100k cubes, batches of 500, about 3 minutes
    .venv/bin/python bench/ingest_ceiling.py --cubes 20000    # smoke run

bench/vault.py compares the server's ingest with raw hnswlib in the benchmark's own process. The server's rate
includes everything a call costs: the client's serialisation, gRPC on both sides, the request's parse, and what the
server does with the cubes. This benchmark separates the first part from the rest. The same ``BatchCreateCubes``
requests as bench/vault.py (same data, same batches, one client) go, one server after the other, to:

* ``index only``: a gRPC server in a child process (the same grpcio, a thread pool as the real server's) that
  parses each request, checks and normalises the vectors as one matrix, adds them to an hnswlib index with the
  server's parameters (sized for every cube up front, so it never grows) and answers with an empty response. It
  stores nothing.
* ``index + log``: the same, and it also appends the request's bytes to a file and fsyncs it before answering, on a
  thread of its own while hnswlib adds: the least that an acknowledged-means-durable server does.
* ``memos-grpc``: the real server, as bench/vault.py starts it.

Raw hnswlib adds the same vectors in batches of the same size in this process first. Each server's rate is given
against it, with its CPU seconds and the client's. The first two rows bound what any server in this process model
can reach here: a server that does more than ``index + log`` (rows, versions, BM25, the catalog, audit) reaches
less. Ratios are only meaningful within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import duckdb
import grpc
import hnswlib
import numpy as np
import pyarrow as pa
from _server import ROOT, Target, start_server, stop
from _vault_data import filter_sets, make_data
from vault import SPACE_ID, batch_requests, process_cpu_s

from memos_grpc._proto.memos.v1 import governance_service_pb2, governance_service_pb2_grpc, vault_service_pb2
from memos_grpc.settings import Settings
from memos_grpc.store.lexical import LexicalIndex
from memos_grpc.store.rows import CUBE_COLUMNS, VERSION_COLUMNS
from memos_grpc.store.schema import migrate

SERVICE = "memos.v1.VaultService"
KINDS = ("index only", "index + log", "index + DuckDB + BM25")


class Stores:
    """What the real server's stores cost at the least: each batch's cube and version rows inserted into DuckDB with
    the server's schema and checkpoint threshold, from one Arrow table built straight from the request (the
    client's cube bytes, every other column a constant), committed; the texts handed to the server's BM25 index,
    which commits them in the background as the server's does. No validation, catalog, audit or response."""

    def __init__(self, directory: Path, settings: Settings) -> None:
        self.database = duckdb.connect(
            str(directory / "vault.duckdb"), config={"checkpoint_threshold": f"{settings.checkpoint_threshold_mb}MB"}
        )
        migrate(self.database)
        self.lexical = LexicalIndex(refresh_seconds=settings.lexical_refresh_seconds)

    def write(self, request: vault_service_pb2.BatchCreateCubesRequest, labels: np.ndarray, units: np.ndarray) -> None:
        items, n = request.requests, len(request.requests)
        now = pa.array(np.full(n, time.time_ns() // 1000, np.int64)).cast(pa.timestamp("us", tz="UTC"))
        none = pa.array([[]] * n, pa.list_(pa.string()))
        columns = {
            "space_id": pa.array([SPACE_ID] * n),
            "cube_id": pa.array([item.cube_id for item in items]),
            "cube_pb": pa.array([item.cube.SerializeToString() for item in items], pa.binary()),
            "vec_id": pa.array(labels),
            "embedding": pa.array([row.tobytes() for row in units], pa.binary()),
            "tags": pa.array([list(item.cube.tags) for item in items], pa.list_(pa.string())),
            "labels": pa.array([sorted(item.cube.labels.items()) for item in items], pa.map_(pa.string(), pa.string())),
            "create_time": now,
            "update_time": now,
            "expire_time": pa.nulls(n, pa.timestamp("us", tz="UTC")),
            "sensitivity_labels": none,
            "access_principals": none,
            "blob_digest": pa.nulls(n, pa.string()),
        }
        constants = {"type": (1, pa.int16()), "state": (1, pa.int16()), "source": (1, pa.int16())}
        constants |= {"semantic_type": (0, pa.int16()), "priority": (0, pa.int32()), "version": (1, pa.int64())}
        constants |= {"access_scope": (0, pa.int16()), "model": ("", pa.string()), "origin": ("", pa.string())}
        constants |= {"etag": ("", pa.string()), "provenance_id": ("", pa.string()), "access_owner": ("", pa.string())}
        columns |= {name: pa.array([value] * n, kind) for name, (value, kind) in constants.items()}
        cubes = pa.table([columns[name] for name in CUBE_COLUMNS], names=list(CUBE_COLUMNS))
        versions = cubes.select(list(VERSION_COLUMNS))
        versions = versions.set_column(VERSION_COLUMNS.index("embedding"), "embedding", pa.nulls(n, pa.binary()))
        self.database.execute("BEGIN")
        self.database.register("new_cubes", cubes)
        self.database.execute("INSERT INTO cubes SELECT * FROM new_cubes")
        self.database.register("new_versions", versions)
        self.database.execute("INSERT INTO cube_versions SELECT * FROM new_versions")
        self.database.execute("COMMIT")
        self.database.unregister("new_cubes")
        self.database.unregister("new_versions")
        for item, label in zip(items, labels.tolist(), strict=True):
            self.lexical.put(SPACE_ID, label, item.cube.plaintext.text)


class BareIngest:
    """The handler of a server that adds vectors to hnswlib and, while the add runs on its thread, appends each
    request to a file and fsyncs it (``log``) or writes it to ``Stores`` (``stores``); nothing else."""

    def __init__(self, dim: int, capacity: int, settings: Settings, log: Path | None, stores: Path | None) -> None:
        self.index = hnswlib.Index(space="cosine", dim=dim)
        self.index.init_index(max_elements=capacity, M=settings.hnsw_m, ef_construction=settings.hnsw_ef_construction)
        self.dim, self.next_label, self.lock = dim, 0, threading.Lock()
        self.log = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if log else None
        self.stores = Stores(stores, settings) if stores else None
        self.writer = futures.ThreadPoolExecutor(1, thread_name_prefix="writer")

    def _append(self, data: bytes) -> None:
        assert self.log is not None
        os.write(self.log, len(data).to_bytes(4, "little") + data)
        os.fsync(self.log)

    def __call__(self, data: bytes, context: grpc.ServicerContext) -> vault_service_pb2.BatchCreateCubesResponse:
        request = vault_service_pb2.BatchCreateCubesRequest.FromString(data)
        logged = self.writer.submit(self._append, data) if self.log is not None else None
        matrix = np.array([item.vector.values for item in request.requests], dtype=np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
        if matrix.shape[1:] != (self.dim,) or not (np.isfinite(matrix).all() and (norms > 0).all()):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "every cube needs a finite, non-zero vector of dim")
        units = (matrix / norms[:, None]).astype(np.float32)
        with self.lock:
            labels = np.arange(self.next_label, self.next_label + len(matrix), dtype=np.int64)
            self.next_label += len(matrix)
        if self.stores is not None:
            logged = self.writer.submit(self.stores.write, request, labels, units)
        self.index.add_items(units, labels, num_threads=-1)
        if logged is not None:
            logged.result()
        return vault_service_pb2.BatchCreateCubesResponse()


def serve(args: argparse.Namespace) -> int:
    """The child process: serves ``BatchCreateCubes`` with a ``BareIngest`` until its stdin closes."""
    handler = BareIngest(args.dim, args.cubes, Settings.load(), args.log, args.stores)
    method = grpc.unary_unary_rpc_method_handler(
        handler,
        request_deserializer=None,
        response_serializer=vault_service_pb2.BatchCreateCubesResponse.SerializeToString,
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"BatchCreateCubes": method})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()  # the parent closes stdin to stop the server
    server.stop(grace=None)
    if handler.stores is not None:  # everything acknowledged is there
        (stored,) = handler.stores.database.execute("SELECT count(*) FROM cubes").fetchone() or (0,)
        handler.stores.lexical.refresh()
        found = len(handler.stores.lexical.search(SPACE_ID, "memory", handler.next_label))
        print(f"stored {stored} cubes, {found} BM25 documents, of {handler.next_label}", file=sys.stderr)
        if stored != handler.next_label or found != handler.next_label:
            return 1
    return 0


def start_bare(kind: str, args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen[str], Target]:
    command = [sys.executable, __file__, "--serve", "--cubes", str(args.cubes), "--dim", str(args.dim)]
    if kind == "index + log":
        command += ["--log", str(tmp / "requests.log")]
    elif kind == "index + DuckDB + BM25":
        (tmp / "stores").mkdir()
        command += ["--stores", str(tmp / "stores")]
    proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()
    if not port:
        raise RuntimeError(f"the {kind} server did not start (exit {proc.wait()})")
    return proc, Target(f"127.0.0.1:{port}", ())


def feed(target: Target, batches: Sequence[vault_service_pb2.BatchCreateCubesRequest], pid: int) -> dict[str, Any]:
    """Sends the batches one after the other on one channel; rate, batch latencies, CPU seconds."""
    with grpc.insecure_channel(target.address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        call = channel.unary_unary(
            f"/{SERVICE}/BatchCreateCubes",
            request_serializer=vault_service_pb2.BatchCreateCubesRequest.SerializeToString,
            response_deserializer=vault_service_pb2.BatchCreateCubesResponse.FromString,
        )
        latencies = []
        server_cpu, client_cpu, started = process_cpu_s(pid), time.process_time(), time.perf_counter()
        for batch in batches:
            t0 = time.perf_counter()
            call(batch, timeout=600, metadata=target.metadata)
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    cubes = sum(len(b.requests) for b in batches)
    return {
        "cubes_per_s": cubes / elapsed,
        "seconds": elapsed,
        "server_cpu_s": process_cpu_s(pid) - server_cpu,
        "client_cpu_s": time.process_time() - client_cpu,
        "batch_p50_ms": float(np.percentile(latencies, 50) * 1e3),
    }


def raw_add(base: np.ndarray, batch: int, settings: Settings) -> dict[str, Any]:
    index = hnswlib.Index(space="cosine", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=settings.hnsw_m, ef_construction=settings.hnsw_ef_construction)
    labels = np.arange(len(base), dtype=np.int64)
    started, cpu = time.perf_counter(), time.process_time()
    for lo in range(0, len(base), batch):
        index.add_items(base[lo : lo + batch], labels[lo : lo + batch], num_threads=-1)
    elapsed = time.perf_counter() - started
    return {"cubes_per_s": len(base) / elapsed, "seconds": elapsed, "cpu_s": time.process_time() - cpu}


def run_memos(args: argparse.Namespace, tmp: Path, batches: Sequence[Any]) -> dict[str, Any]:
    proc, target = start_server(tmp / "memos", args.dim, tmp / "memos.log")
    try:
        with grpc.insecure_channel(target.address) as channel:
            governance = governance_service_pb2_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
            governance.CreateSpace(
                governance_service_pb2.CreateSpaceRequest(space_id=SPACE_ID), metadata=target.metadata
            )
        return feed(target, batches, proc.pid)
    finally:
        stop(proc)


def run_bare(kind: str, args: argparse.Namespace, tmp: Path, batches: Sequence[Any]) -> dict[str, Any]:
    proc, target = start_bare(kind, args, tmp)
    try:
        return feed(target, batches, proc.pid)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        if proc.wait(timeout=120) != 0:
            raise RuntimeError(f"the {kind} server failed its check of what it stored (exit {proc.returncode})")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cubes", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--noise", type=float, default=0.75)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stores", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        return serve(args)
    args.queries = 0
    settings = Settings.load()
    base, _, clusters = make_data(args)
    sets = filter_sets(args.cubes, args.seed, clusters, args.clusters)
    batches = batch_requests(f"spaces/{SPACE_ID}", base, args.batch_size, sets)
    results: dict[str, Any] = {"cubes": args.cubes, "batch_size": args.batch_size, "load_average": os.getloadavg()}
    runs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("raw hnswlib", lambda: raw_add(base, args.batch_size, settings))
    ]
    with tempfile.TemporaryDirectory(prefix="memos-bench-ceiling-") as directory:
        tmp = Path(directory)
        runs += [(kind, lambda kind=kind: run_bare(kind, args, tmp, batches)) for kind in KINDS]
        runs.append(("memos-grpc", lambda: run_memos(args, tmp, batches)))
        for name, run in runs:
            print(f"{name} ...", file=sys.stderr)
            results[name] = run()
    raw = results["raw hnswlib"]
    print(f"\n{args.cubes} clustered vectors, dim {args.dim}, batches of {args.batch_size}, one client")
    print(f"{'':22} {'cubes/s':>8} {'÷ raw':>6} {'CPU s server + client':>22} {'batch p50 ms':>13}")
    print(f"{'raw hnswlib':22} {raw['cubes_per_s']:8.0f} {1.0:6.2f} {raw['cpu_s']:22.1f}")
    for name in (*KINDS, "memos-grpc"):
        r = results[name]
        r["vs_raw"] = r["cubes_per_s"] / raw["cubes_per_s"]
        cpu = f"{r['server_cpu_s']:.1f} + {r['client_cpu_s']:.2f}"
        print(f"{name:22} {r['cubes_per_s']:8.0f} {r['vs_raw']:6.2f} {cpu:>22} {r['batch_p50_ms']:13.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
