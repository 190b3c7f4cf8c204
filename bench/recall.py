"""Recall benchmark: SchedulerService.Recall beside plain SearchCubes (dense and hybrid) in one run, on real text.

Run by hand, never in the test suite::

    .venv/bin/python bench/recall.py                                   # 100k cubes, 500 queries
    .venv/bin/python bench/recall.py --cubes 3000 --queries 100        # smoke run, a few minutes
    .venv/bin/python bench/recall.py --server-threads 0 1 0 1          # torch threads: default vs 1, alternating

A real server runs as a child process with the packaged all-MiniLM-L6-v2 embedder, so it embeds every
cube and every query itself. One space gets N plaintext cubes through BatchCreateCubes: each is a LoCoMo
dialog turn ("speaker: text") followed by a second turn drawn by a seeded RNG, all N distinct, with
priorities spread over 0..100. They go in sorted by text length, in batches of the server's
embed_batch_size: the server embeds a request's texts as one batch padded to the longest. The queries
are LoCoMo questions (a seeded sample). For each query the four calls run back to back in an order
rotated per query, so noise hits them alike: SearchCubes dense, SearchCubes hybrid (top 10 each),
Recall (2,000-token budget, 10 items, the server's default hybrid candidates) and Health.Check, the
floor under any call. The reported ratios are Recall over each search.

After the ingest the server is restarted once per ``--server-threads`` value on the same data, with
OMP_NUM_THREADS and MKL_NUM_THREADS set to it (0: unset, torch's default of one thread per core), so
thread settings compare within one run. Each such phase also times a small ingest into a side space.
Only ratios within one run mean much: the machine may be shared.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from _server import Target, start_server, stop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tqdm import tqdm

from memos_grpc._proto.memos.v1 import (
    cube_pb2,
    governance_service_pb2,
    governance_service_pb2_grpc,
    scheduler_service_pb2,
    scheduler_service_pb2_grpc,
    vault_service_pb2,
    vault_service_pb2_grpc,
)
from memos_grpc.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo10.json"
EMBEDDER = "all-MiniLM-L6-v2"
DIM = 384
SPACE_ID = "recall-bench"
K = 10
TOKEN_BUDGET = 2000
WARMUP = 20  # queries (all four calls each) before the timed loop of every phase, not counted
KINDS = ("dense", "hybrid", "recall", "floor")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
SESSION = re.compile(r"session_(\d+)")
PROCS: list[subprocess.Popen[bytes]] = []  # every server started, so a failure can kill the one still running


def load_locomo(path: Path) -> tuple[list[str], list[str]]:
    """Every dialog turn as "speaker: text" (plus its image caption), and the distinct question texts."""
    turns: list[str] = []
    questions: list[str] = []
    for sample in json.loads(path.read_text()):
        dialog = sample["conversation"]
        for key in sorted((k for k in dialog if SESSION.fullmatch(k)), key=lambda k: int(k.split("_")[1])):
            for turn in dialog[key]:
                text = f"{turn['speaker']}: {turn['text']}"
                if turn.get("blip_caption"):
                    text += f" [image: {turn['blip_caption']}]"
                turns.append(text)
        questions.extend(str(qa["question"]) for qa in sample["qa"])
    return turns, list(dict.fromkeys(questions))


def make_cubes(turns: list[str], n: int, seed: int) -> list[vault_service_pb2.CreateCubeRequest]:
    """N distinct two-turn texts: the turns in a shuffled order, round and round, each followed by a random other."""
    rng = random.Random(seed)
    order = list(range(len(turns)))
    rng.shuffle(order)
    seen: set[str] = set()
    cubes = []
    for i in range(n):
        first = order[i % len(order)]
        while True:
            second = rng.randrange(len(turns))
            text = f"{turns[first]}\n{turns[second]}"
            if second != first and text not in seen:
                break
        seen.add(text)
        cube = cube_pb2.MemCube(
            plaintext=cube_pb2.PlaintextPayload(text=text),
            labels={"n": str(i)},
            priority=rng.randint(0, 100),
            semantic_type=cube_pb2.SEMANTIC_TYPE_DIALOGUE,
            source=cube_pb2.SOURCE_USER_INPUT,
        )
        cubes.append(vault_service_pb2.CreateCubeRequest(cube_id=f"c{i}", cube=cube))
    return cubes


def by_length(
    cubes: list[vault_service_pb2.CreateCubeRequest], unsorted: bool
) -> list[vault_service_pb2.CreateCubeRequest]:
    """The ingest order. The server embeds each request's texts as one batch padded to its longest text, so
    batches of similar lengths cost about 60 % of the CPU of random ones (see docs/performance.md)."""
    return cubes if unsorted else sorted(cubes, key=lambda c: len(c.cube.plaintext.text))


def sample_queries(questions: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed + 1)
    picked: list[str] = []
    while len(picked) < n:  # more queries than questions: reshuffle and go round again
        picked.extend(rng.sample(questions, min(len(questions), n - len(picked))))
    return picked


def stats_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {f"p{p}_ms": float(np.percentile(ms, p)) for p in (50, 95, 99)} | {"mean_ms": float(ms.mean())}


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, phase: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Runs a phase, adding the CPU seconds it cost the server and this client, and its wall seconds."""
    server, client, wall = server_cpu(pid), time.process_time(), time.perf_counter()
    result = phase()
    wall = time.perf_counter() - wall
    return (
        result
        | {"server_cpu_s": server_cpu(pid) - server, "client_cpu_s": time.process_time() - client}
        | {"wall_s": wall}
    )


class Client:
    """The four calls the loop times, on one channel, authenticated as the bootstrap admin if needed."""

    def __init__(self, channel: grpc.Channel, target: Target) -> None:
        self.governance = governance_service_pb2_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
        self.vault = vault_service_pb2_grpc.VaultServiceStub(channel)  # type: ignore[no-untyped-call]
        self.scheduler = scheduler_service_pb2_grpc.SchedulerServiceStub(channel)  # type: ignore[no-untyped-call]
        self.health = health_pb2_grpc.HealthStub(channel)
        self.metadata = target.metadata

    def search(
        self, query: str, mode: vault_service_pb2.SearchMode, space: str = SPACE_ID, **extra: Any
    ) -> vault_service_pb2.SearchCubesResponse:
        request = vault_service_pb2.SearchCubesRequest(parent=f"spaces/{space}", text=query, mode=mode, **extra)
        reply: vault_service_pb2.SearchCubesResponse = self.vault.SearchCubes(
            request, timeout=60, metadata=self.metadata
        )
        return reply

    def calls(self) -> dict[str, Callable[[str], Any]]:
        parent = f"spaces/{SPACE_ID}"
        floor = health_pb2.HealthCheckRequest(service="")
        return {
            "dense": lambda q: self.search(q, vault_service_pb2.SEARCH_MODE_DENSE, top_k=K),
            "hybrid": lambda q: self.search(q, vault_service_pb2.SEARCH_MODE_HYBRID, top_k=K),
            "recall": lambda q: self.scheduler.Recall(
                scheduler_service_pb2.RecallRequest(parent=parent, query=q, token_budget=TOKEN_BUDGET, max_items=K),
                timeout=60,
                metadata=self.metadata,
            ),
            "floor": lambda _q: self.health.Check(floor, timeout=10),
        }

    def ingest(self, space: str, cubes: list[vault_service_pb2.CreateCubeRequest], batch: int) -> dict[str, Any]:
        """Creates the space and its cubes in batches; then waits until the last cube is found lexically too."""
        self.governance.CreateSpace(governance_service_pb2.CreateSpaceRequest(space_id=space), metadata=self.metadata)
        bar = tqdm(total=len(cubes), desc=f"ingest {space}", unit="cube", file=sys.stderr, smoothing=0.05)
        latencies, started = [], time.perf_counter()
        for lo in range(0, len(cubes), batch):
            request = vault_service_pb2.BatchCreateCubesRequest(
                parent=f"spaces/{space}", requests=cubes[lo : lo + batch]
            )
            t0 = time.perf_counter()
            self.vault.BatchCreateCubes(request, timeout=3600, metadata=self.metadata)
            latencies.append(time.perf_counter() - t0)
            bar.update(len(request.requests))
        seconds = time.perf_counter() - started
        bar.close()
        searchable = self.wait_lexical(space, cubes[-1].cube) + seconds
        result = {"cubes": len(cubes), "batch_size": batch, "seconds": seconds, "cubes_per_s": len(cubes) / seconds}
        return result | {"batch_latency": stats_ms(latencies), "lexically_searchable_s": searchable}

    def wait_lexical(self, space: str, last: cube_pb2.MemCube) -> float:
        """Seconds until BM25 finds ``last`` (it sees new cubes within lexical_refresh_seconds)."""
        started = time.perf_counter()
        label = f"labels.n = {json.dumps(last.labels['n'])}"
        while not self.search(
            last.plaintext.text, vault_service_pb2.SEARCH_MODE_LEXICAL, space, top_k=1, filter=label
        ).results:
            if time.perf_counter() - started > 120:
                raise RuntimeError(f"cube {last.labels['n']} of {space} is not found lexically after 120 s")
            time.sleep(0.1)
        return time.perf_counter() - started


def timed_loop(client: Client, pid: int, queries: list[str]) -> dict[str, Any]:
    """Every query through the four calls, the order rotated per query; latency and CPU per call kind.

    Server CPU per kind sums /proc tick counts read around each call: each reading is coarse (10 ms),
    but over hundreds of calls the sum is a fair estimate, background threads included.
    """
    calls = client.calls()
    latencies: dict[str, list[float]] = {k: [] for k in KINDS}
    server = dict.fromkeys(KINDS, 0.0)
    own = dict.fromkeys(KINDS, 0.0)
    checks = {"searches_short_of_top_k": 0, "recall_items": 0, "recall_candidates": 0, "recall_over_budget": 0}
    checks |= {"recall_tokens_used": 0, "recall_plans_short_of_max_items": 0}
    bar = tqdm(total=len(queries), desc="queries", unit="q", file=sys.stderr)
    for i, query in enumerate(queries):
        for kind in KINDS[i % len(KINDS) :] + KINDS[: i % len(KINDS)]:
            s0, c0 = server_cpu(pid), time.process_time()
            t0 = time.perf_counter()
            reply = calls[kind](query)
            t1 = time.perf_counter()
            own[kind] += time.process_time() - c0
            server[kind] += server_cpu(pid) - s0
            latencies[kind].append(t1 - t0)
            if kind in ("dense", "hybrid"):
                checks["searches_short_of_top_k"] += len(reply.results) < K
            elif kind == "recall":
                checks["recall_items"] += len(reply.items)
                checks["recall_candidates"] += reply.candidate_count
                checks["recall_over_budget"] += reply.over_budget_count
                checks["recall_tokens_used"] += reply.tokens_used
                checks["recall_plans_short_of_max_items"] += len(reply.items) < K
        bar.update()
    bar.close()
    n = len(queries)
    kinds = {
        k: stats_ms(latencies[k]) | {"server_cpu_ms": 1000 * server[k] / n, "client_cpu_ms": 1000 * own[k] / n}
        for k in KINDS
    }
    per_recall = {
        f"mean_{key[7:]}": checks[key] / n for key in ("recall_items", "recall_candidates", "recall_tokens_used")
    }
    return {"kinds": kinds, "checks": checks | per_recall}


def warm_up(client: Client, queries: list[str]) -> dict[str, Any]:
    calls = client.calls()
    for query in queries:
        for kind in KINDS:
            calls[kind](query)
    return {"queries": len(queries)}


def ratios(kinds: dict[str, dict[str, float]]) -> dict[str, float]:
    return {
        f"recall_over_{base}_{p}": kinds["recall"][f"{p}_ms"] / kinds[base][f"{p}_ms"]
        for base in ("hybrid", "dense")
        for p in ("p50", "p95")
    }


def set_threads(threads: int) -> str:
    """Sets (or, for 0, unsets) the thread variables the next child server inherits; describes the setting."""
    for var in THREAD_VARS:
        if threads:
            os.environ[var] = str(threads)
        else:
            os.environ.pop(var, None)
    return f"OMP_NUM_THREADS={threads}, MKL_NUM_THREADS={threads}" if threads else "unset (torch default)"


def inherited_threads() -> str:
    values = {var: os.environ.get(var) for var in THREAD_VARS}
    return ", ".join(f"{k}={v}" for k, v in values.items() if v is not None) or "unset (torch default)"


def log_findings(log: Path) -> dict[str, Any]:
    """Warnings, errors and tracebacks in a server log: counted, the first few kept."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if re.search(r"WARNING|ERROR|Traceback", ln)]
    return {"count": len(lines), "first": lines[:5]}


def machine() -> dict[str, Any]:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    packages = ("torch", "sentence-transformers", "tantivy", "duckdb", "hnswlib", "grpcio", "tokenizers")
    versions = {p: importlib.metadata.version(p) for p in packages}
    git = [["git", "-C", str(ROOT), *c] for c in (["rev-parse", "--short", "HEAD"], ["status", "-s", "memos_grpc"])]
    commit, dirty = (subprocess.run(c, capture_output=True, text=True).stdout.strip() for c in git)  # read-only
    info: dict[str, Any] = {"code": commit + (" + uncommitted changes to memos_grpc" if dirty else "")}
    info |= {"nproc": os.cpu_count(), "cpu": cpu, "mem_total": meminfo["MemTotal"].strip()}
    return info | {"loadavg_at_start": os.getloadavg(), "python": platform.python_version()} | versions


def run_phase(
    data_dir: Path, tmp: Path, number: int, threads: int | None, queries: list[str], probe: list[Any], args: Any
) -> dict[str, Any]:
    """A fresh server on the ingested data with one thread setting: warm-up, the timed loop, a small ingest."""
    setting = inherited_threads() if threads is None else set_threads(threads)
    print(f"phase {number}: server threads {setting}", file=sys.stderr)
    phase: dict[str, Any] = {"threads": setting, "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset")}
    phase["loadavg_at_start"] = os.getloadavg()
    log = tmp / f"server-{number}.log"
    started = time.perf_counter()
    proc, target = start_server(data_dir, DIM, log, embedder=EMBEDDER)
    PROCS.append(proc)
    phase["startup_s"] = time.perf_counter() - started
    with grpc.insecure_channel(target.address) as channel:
        client = Client(channel, target)
        phase["warmup"] = measured(proc.pid, lambda: warm_up(client, queries[:WARMUP]))
        phase |= measured(proc.pid, lambda: timed_loop(client, proc.pid, queries[WARMUP:]))
        phase["server_threads_after_loop"] = len(os.listdir(f"/proc/{proc.pid}/task"))
        if probe:
            space, size = f"probe-{number}", args.batch_size
            phase["probe_ingest"] = measured(proc.pid, lambda: client.ingest(space, probe, size))
    phase["peak_rss_mib"] = next(
        int(ln.split()[1]) / 1024
        for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        if ln.startswith("VmHWM:")
    )
    phase["shutdown_s"] = stop(proc)
    phase["ratios"] = ratios(phase["kinds"])
    return phase | {"loadavg_at_end": os.getloadavg(), "log": log_findings(log)}


def report(r: dict[str, Any]) -> None:
    m, c, ing = r["machine"], r["config"], r["ingest"]
    print(
        f"\nmachine: {m['nproc']} cores, {m['cpu']}; load average at start {m['loadavg_at_start']}, at end "
        f"{r['loadavg_at_end']}; code {m['code']}"
    )
    print(f"data: {r['data']['description']}")
    print(
        f"ingest: {ing['cubes']} cubes in {ing['seconds']:.0f} s, {ing['cubes_per_s']:.1f} cubes/s (batches of "
        f"{ing['batch_size']}, server threads {r['ingest_threads']}); CPU s server {ing['server_cpu_s']:.0f} + client "
        f"{ing['client_cpu_s']:.1f}; lexically searchable after {ing['lexically_searchable_s']:.0f} s"
    )
    print(
        f"each call: top_k {K}; Recall token_budget {TOKEN_BUDGET}, max_items {K}, default (hybrid) candidates, "
        f"recall_max_candidates {c['recall_max_candidates']}"
    )
    for n, p in enumerate(r["phases"], 1):
        ch = p["checks"]
        print(
            f"\nphase {n}: server threads {p['threads']}; {len(r['queries']) - WARMUP} queries; load "
            f"{p['loadavg_at_start'][0]:.2f} -> {p['loadavg_at_end'][0]:.2f}; startup {p['startup_s']:.1f} s, "
            f"{p['server_threads_after_loop']} server threads"
        )
        heads = ("p50 ms", "p95 ms", "p99 ms", "mean ms")
        print(f"{'call':8} " + " ".join(f"{h:>9}" for h in heads) + f" {'server CPU ms':>14} {'client CPU ms':>14}")
        for kind, s in p["kinds"].items():
            print(
                f"{kind:8} {s['p50_ms']:9.2f} {s['p95_ms']:9.2f} {s['p99_ms']:9.2f} {s['mean_ms']:9.2f} "
                f"{s['server_cpu_ms']:14.2f} {s['client_cpu_ms']:14.2f}"
            )
        x = p["ratios"]
        print(
            f"Recall / hybrid SearchCubes: p50 {x['recall_over_hybrid_p50']:.2f}, "
            f"p95 {x['recall_over_hybrid_p95']:.2f}; Recall / dense SearchCubes: "
            f"p50 {x['recall_over_dense_p50']:.2f}, p95 {x['recall_over_dense_p95']:.2f}"
        )
        print(
            f"loop: {p['wall_s']:.0f} s, CPU s server {p['server_cpu_s']:.1f} + client {p['client_cpu_s']:.1f}; "
            f"Recall mean items {ch['mean_items']:.1f}, candidates {ch['mean_candidates']:.0f}, tokens "
            f"{ch['mean_tokens_used']:.0f}; searches short of top {K}: {ch['searches_short_of_top_k']}"
        )
        if "probe_ingest" in p:
            pi = p["probe_ingest"]
            print(
                f"probe ingest: {pi['cubes']} cubes, {pi['cubes_per_s']:.1f} cubes/s, server CPU "
                f"{pi['server_cpu_s']:.1f} s ({1000 * pi['server_cpu_s'] / pi['cubes']:.1f} ms/cube)"
            )
        if p["log"]["count"]:
            print(f"server log: {p['log']['count']} warning/error lines, first: {p['log']['first'][0]}")
    print(
        " ".join(summary(n, p) for n, p in enumerate(r["phases"], 1)) + f" ingest_cubes_per_s={ing['cubes_per_s']:.1f}"
    )


def summary(n: int, phase: dict[str, Any]) -> str:
    """One phase in the machine-readable last line."""
    x, ms = phase["ratios"], phase["kinds"]["recall"]
    return (
        f"phase{n} OMP_NUM_THREADS={phase['omp_num_threads']} recall/hybrid p50={x['recall_over_hybrid_p50']:.3f} "
        f"p95={x['recall_over_hybrid_p95']:.3f} recall/dense p50={x['recall_over_dense_p50']:.3f} "
        f"p95={x['recall_over_dense_p95']:.3f} recall_ms p50={ms['p50_ms']:.1f} p95={ms['p95_ms']:.1f};"
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings.load()  # defaults plus any MEMOS_* variables, which the child server inherits too
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cubes", type=int, default=100_000, help="cubes in the space (default 100000)")
    parser.add_argument("--queries", type=int, default=500, help="timed queries per phase (default 500)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=settings.embed_batch_size,
        help=f"cubes per BatchCreateCubes (default: the server's embed_batch_size, {settings.embed_batch_size}; "
        f"at most max_batch_size, {settings.max_batch_size})",
    )
    parser.add_argument(
        "--server-threads",
        type=int,
        nargs="+",
        metavar="N",
        help="OMP_NUM_THREADS/MKL_NUM_THREADS of the server, one query phase each (0: unset; default: inherited)",
    )
    parser.add_argument("--probe-cubes", type=int, default=640, help="cubes ingested into a side space per phase")
    parser.add_argument(
        "--unsorted", action="store_true", help="send cubes in the order drawn, not sorted by text length (slower)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA, help=f"locomo10.json (default {DATA})")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's temp data directory and logs")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"machine": machine(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    results["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results["config"] |= {"recall_max_candidates": settings.recall_max_candidates, "embedder": EMBEDDER}
    t0 = time.perf_counter()
    turns, questions = load_locomo(args.data)
    phases: list[int | None] = list(args.server_threads or [None])
    cubes = make_cubes(turns, args.cubes + args.probe_cubes * len(phases), args.seed)
    queries = sample_queries(questions, WARMUP + args.queries, args.seed)
    results["queries"] = queries
    results["data"] = {
        "description": f"{args.cubes} cubes, each two LoCoMo dialog turns ({len(turns)} turns, seed {args.seed}), "
        f"priority uniform 0..100; {args.queries} LoCoMo questions (+{WARMUP} warm-up) of {len(questions)}",
        "mean_text_chars": float(np.mean([len(c.cube.plaintext.text) for c in cubes])),
    }
    print(results["data"]["description"], file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="memos-recall-"))
    data_dir = tmp / "data"
    try:
        first = phases[0]
        results["ingest_threads"] = inherited_threads() if first is None else set_threads(first)
        proc, target = start_server(data_dir, DIM, tmp / "server-ingest.log", embedder=EMBEDDER)
        PROCS.append(proc)
        with grpc.insecure_channel(target.address) as channel:
            client = Client(channel, target)
            main_cubes = by_length(cubes[: args.cubes], args.unsorted)
            results["ingest"] = measured(proc.pid, lambda: client.ingest(SPACE_ID, main_cubes, args.batch_size))
        results["ingest"]["shutdown_s"] = stop(proc)
        results["ingest"]["log"] = log_findings(tmp / "server-ingest.log")
        results["phases"] = []
        for n, threads in enumerate(phases, 1):
            lo = args.cubes + (n - 1) * args.probe_cubes
            probe = by_length(cubes[lo : lo + args.probe_cubes], args.unsorted)
            results["phases"].append(run_phase(data_dir, tmp, n, threads, queries, probe, args))
    except BaseException:
        for proc in PROCS:
            if proc.poll() is None:
                proc.kill()
        for log in sorted(tmp.glob("server-*.log")):
            print(f"--- {log.name}\n" + log.read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        if args.keep_data:
            print(f"server data and logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["loadavg_at_end"] = os.getloadavg()
    results["total_s"] = time.perf_counter() - t0
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
