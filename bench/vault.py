"""Vault benchmark: a real memos-grpc server against raw hnswlib, on the same data, in one run.

Run by hand, never in the test suite::

    .venv/bin/python bench/vault.py                              # 100k cubes, 1000 queries
    .venv/bin/python bench/vault.py --cubes 5000 --queries 200   # smoke run, about a minute

Data: clustered unit vectors (points around random centroids on the sphere, plus isotropic
Gaussian noise, renormalised); queries are drawn the same way. The server runs as a child
process (``MEMOS_EMBEDDER=none``: clients send vectors), is fed with BatchCreateCubes and
queried with SearchCubes(vector, top_k=10). Filtered search: random subsets of 10 % and 1 % of
the cubes carry a tag, independent of the vectors; a label follows the content instead, as a
project's would: the cubes around 10 of the 100 centroids carry ``sel = ten``, those around one
other ``sel = one`` (about 10 % and 1 %), so most queries lie away from every match. Each filter
is queried with every query, its recall measured against the exact filtered top 10 (numpy over the
matching vectors). The baseline is hnswlib in this process with the
server's own index parameters (``Settings`` defaults plus any MEMOS_* variables, which the server
inherits too). Calls authenticate as the bootstrap admin when the server writes DATA_DIR/admin.token.
Beside latencies it reports the CPU seconds each phase cost the server and this client, and the
latency of a trivial RPC (Health.Check), the floor under any call. Ratios are only meaningful
within one run: the machine may be shared.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import hnswlib
import numpy as np
import numpy.typing as npt
from _server import Target, start_server
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tqdm import tqdm

from memos_grpc._proto.memos.v1 import (
    governance_service_pb2,
    governance_service_pb2_grpc,
    vault_service_pb2,
    vault_service_pb2_grpc,
)
from memos_grpc.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SPACE_ID = "bench"
K = 10
WARMUP = 20  # searches before each timed search phase (their CPU is in the phase's CPU seconds)
FLOOR_CALLS = 1000  # Health.Check calls timed for the gRPC floor
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


def proc_status_mib(pid: int, field: str) -> float:
    """A memory line of /proc/PID/status (VmHWM: peak RSS; VmRSS: current), in MiB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next((int(ln.split()[1]) / 1024 for ln in lines if ln.startswith(field + ":")), float("nan"))


def measured(pid: int, phase: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Runs a phase, adding the CPU seconds it cost the server (/proc/PID/stat) and this client."""

    def server_cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    server, client = server_cpu(), time.process_time()
    result = phase()
    return result | {"server_cpu_s": server_cpu() - server, "client_cpu_s": time.process_time() - client}


def batch_requests(
    parent: str, base: Floats, size: int, sets: dict[str, Ints]
) -> list[vault_service_pb2.BatchCreateCubesRequest]:
    tags: dict[int, list[str]] = {}
    for name in ("tags:t10", "tags:t1"):
        for i in sets[name].tolist():
            tags.setdefault(i, []).append(name.split(":")[1])
    labels = {i: name.split('"')[1] for name in FILTERS if "labels" in name for i in sets[name].tolist()}
    batches = []
    for lo in range(0, len(base), size):
        request = vault_service_pb2.BatchCreateCubesRequest(parent=parent)
        for i in range(lo, min(lo + size, len(base))):
            item = request.requests.add(cube_id=f"v{i}")
            item.cube.plaintext.text = f"memory {i}"
            item.cube.tags.extend(tags.get(i, ()))
            if i in labels:
                item.cube.labels["sel"] = labels[i]
            item.vector.values.extend(base[i].tolist())
        batches.append(request)
    return batches


def run_clients(target: Target, clients: int, shared: bool, work: Callable[[Any, int], object]) -> float:
    """Runs ``work(stub, client_number)`` on ``clients`` threads started together; returns wall seconds."""
    channels = [grpc.insecure_channel(target.address) for _ in range(1 if shared else clients)]
    stubs = [vault_service_pb2_grpc.VaultServiceStub(c) for c in channels]  # type: ignore[no-untyped-call]
    for channel in channels:
        grpc.channel_ready_future(channel).result(timeout=10)
    gate = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def client(n: int) -> None:
        gate.wait()
        try:
            work(stubs[0 if shared else n], n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for channel in channels:
        channel.close()
    if errors:
        raise errors[0]
    return elapsed


def ingest(target: Target, base: Floats, args: argparse.Namespace, sets: dict[str, Ints]) -> dict[str, Any]:
    parent = f"spaces/{SPACE_ID}"
    started = time.perf_counter()
    batches = batch_requests(parent, base, args.batch_size, sets)
    build_s = time.perf_counter() - started
    bar = tqdm(total=len(base), desc="server ingest", unit="cube", file=sys.stderr, smoothing=0.1)
    lock, latencies, cursor = threading.Lock(), [], iter(range(len(batches)))

    def work(stub: Any, _n: int) -> None:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            t0 = time.perf_counter()
            stub.BatchCreateCubes(batches[i], timeout=600, metadata=target.metadata)
            with lock:
                latencies.append(time.perf_counter() - t0)
                bar.update(len(batches[i].requests))

    elapsed = run_clients(target, args.ingest_clients, False, work)
    bar.close()
    result = {"clients": args.ingest_clients, "request_build_s": build_s, "seconds": elapsed}
    return result | {"cubes_per_s": len(base) / elapsed, "batch_latency": stats_ms(latencies)}


def search(
    target: Target, queries: Floats, truth: Ints, clients: int, shared: bool, filter: str = ""
) -> dict[str, Any]:
    parent = f"spaces/{SPACE_ID}"
    requests = [
        vault_service_pb2.SearchCubesRequest(
            parent=parent, vector=vault_service_pb2.Vector(values=q.tolist()), top_k=K, filter=filter
        )
        for q in queries
    ]
    latencies: list[float] = []
    found: list[list[int]] = [[] for _ in queries]

    def work(stub: Any, n: int) -> None:
        for i in range(n, len(requests), clients):
            t0 = time.perf_counter()
            reply = stub.SearchCubes(requests[i], timeout=60, metadata=target.metadata)
            latencies.append(time.perf_counter() - t0)  # list.append is atomic
            found[i] = [int(r.cube.name.rsplit("/", 1)[1][1:]) for r in reply.results]

    warm_up = requests[:WARMUP]
    run_clients(target, 1, False, lambda stub, _n: [stub.SearchCubes(r, metadata=target.metadata) for r in warm_up])
    elapsed = run_clients(target, clients, shared, work)
    channel = "one channel" if clients == 1 else "one shared channel" if shared else "one channel per client"
    qps, found_recall = len(queries) / elapsed, recall(found, truth)
    return stats_ms(latencies) | {"clients": clients, "channels": channel, "qps": qps, "recall_at_10": found_recall}


def grpc_floor(address: str, calls: int = FLOOR_CALLS) -> dict[str, float]:
    """Latency of a trivial unary call (Health.Check): what any RPC from this client costs."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request, latencies = health_pb2.HealthCheckRequest(service=""), []
        for _ in range(calls + WARMUP):
            t0 = time.perf_counter()
            stub.Check(request, timeout=10)
            latencies.append(time.perf_counter() - t0)
    return stats_ms(latencies[WARMUP:])


def machine() -> dict[str, Any]:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    versions = {p: importlib.metadata.version(p) for p in ("hnswlib", "duckdb", "grpcio", "numpy", "protobuf")}
    git = [["git", "-C", str(ROOT), *c] for c in (["rev-parse", "--short", "HEAD"], ["status", "-s", "memos_grpc"])]
    commit, dirty = (subprocess.run(c, capture_output=True, text=True).stdout.strip() for c in git)  # read-only
    info: dict[str, Any] = {"code": commit + (" + uncommitted changes to memos_grpc" if dirty else "")}
    info |= {"nproc": os.cpu_count(), "cpu": cpu, "mem_total": meminfo["MemTotal"].strip()}
    return info | {"loadavg_at_start": os.getloadavg(), "python": platform.python_version()} | versions


def report(r: dict[str, Any]) -> None:
    raw, srv, m = r["raw_hnswlib"], r["server"], r["machine"]
    seq, par = srv["search_1"], srv["search_n"]
    pct = "{p50_ms:.3f} / {p95_ms:.3f} / {p99_ms:.3f}".format
    per_q, cpu_raw = 1000 / (r["config"]["queries"] + WARMUP), f"{raw['add_cpu_s_batched']:.1f} batched"

    def cpu_ms(phase: dict[str, Any], per: float = per_q) -> str:
        return f"{phase['server_cpu_s'] * per:.2f} + {phase['client_cpu_s'] * per:.2f}"

    rows = [
        ("ingest cubes/s", f"{srv['ingest']['cubes_per_s']:.0f}", f"{raw['add_per_s_batched']:.0f} batched"),
        ("", "", f"{raw['add_per_s_one_call']:.0f} one call"),
        ("CPU s, server + client", "{server_cpu_s:.1f} + {client_cpu_s:.1f}".format(**srv["ingest"]), cpu_raw),
        ("search ms p50/p95/p99, 1 client", pct(**seq), pct(**raw["search"])),
        ("search QPS, 1 client", f"{seq['qps']:.0f}", f"{raw['search']['qps']:.0f}"),
        (f"search ms p50/p95/p99, {par['clients']} clients", pct(**par), ""),
        (f"search QPS, {par['clients']} clients", f"{par['qps']:.0f}", ""),
        ("CPU ms/search server + client, 1", cpu_ms(seq), ""),
        (f"CPU ms/search, {par['clients']} clients", cpu_ms(par), ""),
        ("recall@10", f"{seq['recall_at_10']:.4f}", f"{raw['search']['recall_at_10']:.4f}"),
        *(
            (f"filter {name}: ms p50/p95/p99", pct(**phase), f"recall@10 {phase['recall_at_10']:.4f}")
            for name, phase in srv["filtered"].items()
        ),
        *((f"CPU ms/search, {name}", cpu_ms(phase), "") for name, phase in srv["filtered"].items()),
        ("gRPC floor ms p50/p95/p99", pct(**srv["grpc_floor"]), ""),
        ("CPU ms/call server + client, floor", cpu_ms(srv["grpc_floor"], 1000 / (FLOOR_CALLS + WARMUP)), ""),
        ("server peak RSS MiB", f"{srv['peak_rss_mib']:.0f}", ""),
        ("graceful shutdown s", f"{srv['shutdown_s']:.2f}", ""),
    ]
    print(f"\ndata: {r['data']['description']}")
    print("filters and the cubes they match: " + ", ".join(f"{n} {c}" for n, c in r["data"]["filter_matches"].items()))
    print(f"machine: {m['nproc']} cores, {m['cpu']}, load average at start {m['loadavg_at_start']}; code {m['code']}")
    print(f"\n{'':34} {'server (gRPC)':>26} {'raw hnswlib':>26}")
    for name, a, b in rows:
        print(f"{name:34} {a:>26} {b:>26}")
    x = r["ratios"]
    print(
        f"\ningest server / raw batched {x['ingest_vs_raw_batched']:.2f} (aim >= 0.8), / raw one call "
        f"{x['ingest_vs_raw_one_call']:.2f}; CPU seconds raw / server {x['ingest_cpu_raw_over_server']:.2f}"
    )
    print(f"search p50 server - raw {x['search_p50_overhead_ms']:.3f} ms (aim <= 1 ms); {par['channels']}")
    worst = max(x["filtered_p50_over_unfiltered"].items(), key=lambda item: item[1])
    lowest = min(((n, p["recall_at_10"]) for n, p in srv["filtered"].items()), key=lambda item: item[1])
    print(
        f"filtered p50 / unfiltered p50 at most {worst[1]:.2f} ({worst[0]}; aim <= 2), "
        f"recall@10 at least {lowest[1]:.4f} ({lowest[0]}; aim >= 0.99)"
    )
    print("calls authenticated with the admin's bearer token" if srv["authenticated"] else "calls unauthenticated")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cubes", type=int, default=100_000, help="base vectors / cubes (default 100000)")
    parser.add_argument("--queries", type=int, default=1000, help="query vectors (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=100, help="centroids of the clustered data")
    parser.add_argument("--noise", type=float, default=0.75, help="norm of the noise around a centroid")
    parser.add_argument("--batch-size", type=int, default=500, help="cubes per BatchCreateCubes (default 500)")
    parser.add_argument("--ingest-clients", type=int, default=1)
    parser.add_argument("--search-clients", type=int, default=16)
    parser.add_argument("--shared-channel", action="store_true", help="concurrent clients share one channel")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's temp data directory")
    args = parser.parse_args(argv)

    settings = Settings.load()  # defaults plus any MEMOS_* variables, which the child server inherits too
    results: dict[str, Any] = {"machine": machine(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    results["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    t0 = time.perf_counter()
    base, queries, clusters = make_data(args)
    truth = exact_top_k(base, queries)
    sets = filter_sets(args.cubes, args.seed, clusters, args.clusters)
    filtered_truth = {name: exact_filtered_top_k(base, queries, members) for name, members in sets.items()}
    results["data"] = {
        "description": f"clustered: {args.cubes} + {args.queries} unit vectors, dim {args.dim}, "
        f"{args.clusters} random centroids + isotropic noise of norm {args.noise}, seed {args.seed}",
        "prepare_s": time.perf_counter() - t0,
        "filter_matches": {name: len(members) for name, members in sets.items()},
    }
    print(results["data"]["description"], file=sys.stderr)
    print("raw hnswlib baseline ...", file=sys.stderr)
    results["raw_hnswlib"] = raw_hnswlib(base, queries, truth, args.batch_size, settings)

    tmp = Path(tempfile.mkdtemp(prefix="memos-bench-"))
    proc = None
    try:
        started = time.perf_counter()
        proc, target = start_server(tmp / "data", args.dim, tmp / "server.log")
        server: dict[str, Any] = {"startup_s": time.perf_counter() - started, "authenticated": bool(target.metadata)}
        with grpc.insecure_channel(target.address) as channel:
            governance = governance_service_pb2_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
            space = governance_service_pb2.CreateSpaceRequest(space_id=SPACE_ID)
            governance.CreateSpace(space, metadata=target.metadata)
        server["ingest"] = measured(proc.pid, lambda: ingest(target, base, args, sets))
        server["rss_after_ingest_mib"] = proc_status_mib(proc.pid, "VmRSS")
        print("searching ...", file=sys.stderr)
        server["grpc_floor"] = measured(proc.pid, lambda: grpc_floor(target.address))
        server["search_1"] = measured(proc.pid, lambda: search(target, queries, truth, 1, False))
        n, shared = args.search_clients, args.shared_channel
        server["search_n"] = measured(proc.pid, lambda: search(target, queries, truth, n, shared))
        server["filtered"] = {
            name: measured(proc.pid, lambda name=name: search(target, queries, filtered_truth[name], 1, False, name))
            for name in FILTERS
        }
        server["peak_rss_mib"] = proc_status_mib(proc.pid, "VmHWM")
        stopping = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)  # on timeout the handler below kills it
        server["shutdown_s"] = time.perf_counter() - stopping
        server["exit_code"] = proc.returncode
        results["server"] = server
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()
        log = tmp / "server.log"
        print(log.read_text()[-4000:] if log.exists() else "(no server log)", file=sys.stderr)
        raise
    finally:
        if args.keep_data:
            print(f"server data and log kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    raw = results["raw_hnswlib"]
    results["ratios"] = {
        "ingest_vs_raw_batched": server["ingest"]["cubes_per_s"] / raw["add_per_s_batched"],
        "ingest_vs_raw_one_call": server["ingest"]["cubes_per_s"] / raw["add_per_s_one_call"],
        "search_p50_overhead_ms": server["search_1"]["p50_ms"] - raw["search"]["p50_ms"],
        "filtered_p50_over_unfiltered": {
            name: phase["p50_ms"] / server["search_1"]["p50_ms"] for name, phase in server["filtered"].items()
        },
        # CPU seconds are less sensitive than wall time to other tenants of a shared machine.
        "ingest_cpu_raw_over_server": raw["add_cpu_s_batched"] / server["ingest"]["server_cpu_s"],
    }
    results["total_s"] = time.perf_counter() - t0
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
