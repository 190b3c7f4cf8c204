"""Clients benchmark: offline bundle verification in Python, Go and TypeScript beside ``sha256sum`` of the same file,
and unary call latency of the three clients beside a Health.Check floor, against one server.

Run by hand, never in the test suite::

    .venv/bin/python bench/clients.py                    # a 1 GiB bundle (16 blobs), 2,000 calls per kind
    .venv/bin/python bench/clients.py --smoke            # 64 MiB (4 blobs), 200 calls: about a minute

One server (a child process on a temp data dir, ``MEMOS_EMBEDDER=none``, calls authenticated with
DATA_DIR/admin.token, plaintext on 127.0.0.1). The bundle is built as bench/interchange.py's ``blobs`` scenario
builds it: activation cubes, each with a distinct random blob uploaded in 1 MiB chunks, exported with ExportBundle
to a file. Its trust root envelope (GetTrustRoot) is written beside it. On that one file, in rounds so that
machine load touches all alike, best of two each: the ``sha256sum`` binary (the aim: verification at >= 0.5x its
rate), ``openssl dgst -sha256`` (which uses the CPU's SHA instructions where coreutils may not),
``memos-grpc bundle verify --offline``
(Python, the node role's keys given as --trust-key), the Go client's ``memos-verify --trust-root`` and the
TypeScript client's (Node 22 through clients/typescript/scripts/node22.mjs). Each runs under ``/usr/bin/time``
for its CPU seconds and peak RSS, and prints its verdict as JSON, which must be VALID with every cube. The same
commands on a one-cube bundle give each one's start-up cost. Then each client makes sequential GetCube calls
of one plaintext cube and as many grpc.health.v1 Health.Check calls on the same connection, alternating in
rounds of 100 after a warm-up: Python's MemosClient in this process, Go's ``memos-bench`` and TypeScript's
``dist/bench/unary.js`` (which print their latencies as JSON). MB/s means 10^6 bytes per second of wall time.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from _server import Target, start_server, stop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from interchange import DIM, MiB, export, fill_blobs, machine
from memos_client import MemosClient

from memos_grpc._proto.memos.v1 import (
    cube_pb2,
    governance_service_pb2,
    governance_service_pb2_grpc,
    interchange_service_pb2_grpc,
    vault_service_pb2,
    vault_service_pb2_grpc,
)
from memos_grpc.interchange.dsse import parse_envelope
from memos_grpc.interchange.trust import parse_trust_root

ROOT = Path(__file__).resolve().parent.parent
GO = ROOT / "clients" / "go"
TS = ROOT / "clients" / "typescript"
NODE22 = [shutil.which("node") or "node", str(TS / "scripts" / "node22.mjs")]
ROUND = 100  # calls of one kind before the other kind's turn
AIM = 0.5  # verification throughput against sha256sum
# The hashing ceilings: coreutils (which may not use the CPU's SHA instructions) and OpenSSL (which does).
HASHES = ("sha256sum", "openssl sha256")
# The TypeScript sources the run uses (under src/; each compiles to dist/ with .js).
USED_TS = ("cli/verify.ts", "bench/unary.ts", "bench/health.ts", "client.ts", "verify/bundle.ts", "verify/tar.ts")


@dataclass
class Run:
    """One timed run of a command under /usr/bin/time: wall and CPU seconds, peak RSS, and what it printed."""

    seconds: float
    cpu_s: float
    peak_mib: float
    stdout: str


@dataclass
class Verifier:
    """A command that reads the bundle file, its runs on the big and the one-cube bundle, and its verdict."""

    name: str
    command: Callable[[Path], list[str]]
    runs: list[Run] = field(default_factory=list)
    startup: list[Run] = field(default_factory=list)
    verdict: dict[str, Any] = field(default_factory=dict)

    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.seconds)


def timed(command: Sequence[str], scratch: Path) -> Run:
    """Runs ``command`` under GNU time (elapsed, user + system CPU, max RSS in KiB); fails on a non-zero exit."""
    report = scratch / "time.txt"
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%U %S %M", "-o", str(report), *command], cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr[-4000:]}")
    user, system, max_kib = report.read_text().split()[-3:]  # the last line: GNU time may note a signal above it
    return Run(seconds, float(user) + float(system), int(max_kib) / 1024, done.stdout)


def verdict(name: str, stdout: str) -> dict[str, Any]:
    """The verdict a verifier printed as JSON, in one shape: valid, reason, cubes, statement digest."""
    if name == "sha256sum":
        return {"valid": True, "digest": stdout.split()[0]}
    if name == "openssl sha256":  # "SHA2-256(FILE)= HEX"
        return {"valid": True, "digest": stdout.rsplit("= ", 1)[1].strip()}
    printed = json.loads(stdout)
    if name == "python":  # the BundleVerification message (proto field names; defaults omitted)
        return {
            "valid": bool(printed.get("valid")),
            "reason": printed.get("reason", ""),
            "cube_count": int(printed.get("cube_count", 0)),
            "statement_sha256": printed.get("statement_digest", "").removeprefix("sha256:"),
        }
    keys = ("valid", "reason", "cube_count", "statement_sha256")
    return {k: printed[k] for k in keys}


def build(scratch: Path) -> Path:
    """Builds the Go commands into scratch/bin and the TypeScript client into its dist/; returns the bin dir."""
    bin_dir = scratch / "bin"
    for name in ("memos-verify", "memos-bench"):
        subprocess.run(["go", "build", "-o", str(bin_dir / name), f"./cmd/{name}"], cwd=GO, check=True)
    done = subprocess.run(["npm", "run", "build"], cwd=TS, capture_output=True, text=True)
    if done.returncode != 0:
        # tsc still writes every file it could compile: an error elsewhere in the package need not stop the run,
        # as long as the commands used here (and what they import) were compiled from their current sources.
        stale = [
            s
            for s in USED_TS
            if (TS / "dist" / s).with_suffix(".js").stat().st_mtime < (TS / "src" / s).stat().st_mtime
        ]
        if stale:
            raise RuntimeError(f"npm run build failed and left {stale} stale:\n{done.stdout}\n{done.stderr}")
        print(
            f"[build] npm run build reported errors elsewhere; the commands used here are built:\n{done.stdout}",
            file=sys.stderr,
        )
    return bin_dir


def verifiers(bin_dir: Path, root_file: Path, node_keys: list[str], threshold: int) -> list[Verifier]:
    keys = [arg for key in node_keys for arg in ("--trust-key", key)]
    python = [sys.executable, "-m", "memos_grpc.cli.main", "bundle", "verify", "--offline", "--json", *keys]
    go = [str(bin_dir / "memos-verify"), "--trust-root", str(root_file), "--json"]
    typescript = [*NODE22, str(TS / "dist" / "cli" / "verify.js"), "--trust-root", str(root_file), "--json"]
    return [
        Verifier("sha256sum", lambda f: ["sha256sum", str(f)]),
        Verifier("openssl sha256", lambda f: ["openssl", "dgst", "-sha256", str(f)]),
        Verifier("python", lambda f: [*python, "--threshold", str(threshold), str(f)]),
        Verifier("go", lambda f: [*go, str(f)]),
        Verifier("typescript", lambda f: [*typescript, str(f)]),
    ]


def measure_verification(tools: list[Verifier], bundle: Path, small: Path, cubes: int, scratch: Path) -> dict[str, Any]:
    """Two rounds over every command on the big bundle, then two on the one-cube bundle (start-up)."""
    for round_ in range(2):
        for tool in tools:
            print(f"[verify] round {round_ + 1}: {tool.name} ...", file=sys.stderr)
            tool.runs.append(timed(tool.command(bundle), scratch))
            tool.verdict = verdict(tool.name, tool.runs[-1].stdout)
    for _ in range(2):
        for tool in tools:
            tool.startup.append(timed(tool.command(small), scratch))
    size = bundle.stat().st_size
    ceiling = size / tools[0].best().seconds / 1e6
    rows: dict[str, dict[str, Any]] = {}
    for tool in tools:
        best = tool.best()
        startup = min(r.seconds for r in tool.startup)
        mb_s = size / best.seconds / 1e6
        row: dict[str, Any] = {"mb_s": mb_s, "vs_sha256sum": mb_s / ceiling, "best_s": best.seconds}
        row["cpu_s"] = best.cpu_s
        row |= {"runs_s": [r.seconds for r in tool.runs], "peak_mib": max(r.peak_mib for r in tool.runs)}
        row |= {"startup_s": startup, "startup_peak_mib": max(r.peak_mib for r in tool.startup)}
        # Throughput once running: the start-up (the one-cube bundle's time) taken off; none when the start-up
        # took as long as the whole run (a small bundle on a noisy machine).
        running = best.seconds - startup
        row |= {"mb_s_after_startup": size / running / 1e6 if running > 0 else None, "verdict": tool.verdict}
        row["ok"] = tool.verdict["valid"] and (tool.name in HASHES or tool.verdict["cube_count"] == cubes)
        rows[tool.name] = row
    if rows["sha256sum"]["verdict"]["digest"] != rows["openssl sha256"]["verdict"]["digest"]:
        raise RuntimeError("sha256sum and openssl disagree on the bundle's digest")
    return {"bundle_bytes": size, "small_bundle_bytes": small.stat().st_size, "verifiers": rows}


def latency(samples_ns: Sequence[int]) -> dict[str, float]:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "mean_ms": float(ms.mean()), "n": len(ms)}


def python_unary(target: Target, token: str, cube: str, calls: int, warmup: int) -> dict[str, Any]:
    """The Python client in this process: MemosClient.get_cube, and Health.Check on the client's own channel."""
    with MemosClient(target.address, token=token) as client:
        health = health_pb2_grpc.HealthStub(client._channel)  # the same channel: no public health call to time

        def check() -> None:
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=30, metadata=target.metadata)
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                raise RuntimeError(f"Health.Check: {reply.status}")

        def get_cube() -> None:
            client.get_cube(cube)

        for _ in range(warmup):
            get_cube()
            check()
        samples: dict[str, list[int]] = {"get_cube_ns": [], "health_ns": []}
        for done in range(0, calls, ROUND):
            for call, into in ((get_cube, samples["get_cube_ns"]), (check, samples["health_ns"])):
                for _ in range(min(ROUND, calls - done)):
                    started = time.perf_counter_ns()
                    call()
                    into.append(time.perf_counter_ns() - started)
    return {"client": "python", **samples}


def program_unary(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure_unary(
    target: Target, token_file: Path, cube: str, bin_dir: Path, calls: int, warmup: int
) -> dict[str, Any]:
    flags = ["--target", target.address, "--token-file", str(token_file), "--cube", cube]
    flags += ["--calls", str(calls), "--warmup", str(warmup)]
    runs = {}
    print("[unary] python ...", file=sys.stderr)
    runs["python"] = python_unary(target, token_file.read_text().strip(), cube, calls, warmup)
    print("[unary] go ...", file=sys.stderr)
    runs["go"] = program_unary([str(bin_dir / "memos-bench"), *flags])
    print("[unary] typescript ...", file=sys.stderr)
    runs["typescript"] = program_unary([*NODE22, str(TS / "dist" / "bench" / "unary.js"), *flags])
    rows = {}
    for name, run in runs.items():
        get, floor = latency(run["get_cube_ns"]), latency(run["health_ns"])
        rows[name] = {"get_cube": get, "health": floor, "p50_over_floor_ms": get["p50_ms"] - floor["p50_ms"]}
    return rows


def make_cube(vault: Any, target: Target, parent: str, text: str, seed: int) -> str:
    """A plaintext cube with a random unit vector; returns its name."""
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    vector /= np.linalg.norm(vector)
    request = vault_service_pb2.CreateCubeRequest(parent=parent, cube=cube_pb2.MemCube())
    request.cube.plaintext.text = text
    request.vector.values.extend(vector.tolist())
    name: str = vault.CreateCube(request, metadata=target.metadata).name
    return name


def versions() -> dict[str, Any]:
    go = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    node = subprocess.run([*NODE22, "--version"], capture_output=True, text=True).stdout.strip()
    paths = ["memos_grpc", "clients/python", "clients/go", "clients/typescript/src"]
    git = ["git", "-C", str(ROOT), "status", "-s", *paths]
    dirty = subprocess.run(git, capture_output=True, text=True).stdout.strip()  # read-only
    return {"go": go, "node": node, "clients_dirty": bool(dirty), "platform": platform.platform()}


def run_all(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    bin_dir = build(work)
    proc, log = None, work / "server.log"
    try:
        proc, target = start_server(work / "data", DIM, log)
        bundle, small, root_file = work / "bundle.tar", work / "small.tar", work / "trust-root.json"
        with grpc.insecure_channel(target.address) as channel:
            governance = governance_service_pb2_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
            vault = vault_service_pb2_grpc.VaultServiceStub(channel)  # type: ignore[no-untyped-call]
            interchange = interchange_service_pb2_grpc.InterchangeServiceStub(channel)  # type: ignore[no-untyped-call]
            for space in ("source", "small", "unary"):
                request = governance_service_pb2.CreateSpaceRequest(space_id=space)
                governance.CreateSpace(request, metadata=target.metadata)
            print(f"[build] {args.blob_mib} MiB of blobs in {args.blob_count} cubes ...", file=sys.stderr)
            fill_blobs(vault, target, "spaces/source", args.blob_mib, args.blob_count, args.seed)
            export(interchange, target, "spaces/source", bundle)
            make_cube(vault, target, "spaces/small", "one cube, for the verifiers' start-up", args.seed)
            export(interchange, target, "spaces/small", small)
            cube = make_cube(vault, target, "spaces/unary", "Alice prefers green tea in the morning.", args.seed + 1)
            envelope = governance.GetTrustRoot(
                governance_service_pb2.GetTrustRootRequest(), metadata=target.metadata
            ).signed_envelope
        root_file.write_bytes(envelope)  # what `memos-grpc trust export` writes
        root = parse_trust_root(parse_envelope(envelope).payload)
        node_keys = [base64.b64encode(k.public_key).decode() for k in root.keys_for("node").values()]
        tools = verifiers(bin_dir, root_file, node_keys, root.threshold_for("node"))
        verification = measure_verification(tools, bundle, small, args.blob_count, work)
        unary = measure_unary(target, work / "data" / "admin.token", cube, bin_dir, args.calls, args.warmup)
        stop(proc)
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()
        print(log.read_text()[-4000:] if log.exists() else "(no server log)", file=sys.stderr)
        raise
    return {"verification": verification, "unary": unary}


def report(results: dict[str, Any]) -> bool:
    """Prints the tables; True when every verifier said VALID with every cube."""
    m = results["machine"]
    load = tuple(round(x, 2) for x in m["loadavg_at_start"])
    print(f"\nmachine: {m['nproc']} cores, {m['cpu']} (sha_ni {m['sha_ni']}), load at start {load}; code {m['code']}")
    v = results["verification"]
    small = f"start-up: a {v['small_bundle_bytes']} B bundle"
    print(f"\nverify a {v['bundle_bytes'] / 1e6:,.1f} MB bundle (best of two; {small})")
    columns = ("verifier", "MB/s", "x sha256sum", "best s", "CPU s", "peak MiB", "start-up s", "MB/s net", "verdict")
    print("{:16}{:>9}{:>13}{:>9}{:>8}{:>10}{:>12}{:>10}  {}".format(*columns))
    ok = True
    for name, r in v["verifiers"].items():
        said = "VALID" if r["verdict"]["valid"] else f"INVALID {r['verdict'].get('reason', '')}"
        if name not in HASHES:
            said += f", {r['verdict']['cube_count']} cubes"
        ok = ok and r["ok"]
        net = "-" if r["mb_s_after_startup"] is None else f"{r['mb_s_after_startup']:.1f}"
        print(
            f"{name:16}{r['mb_s']:>9.1f}{r['vs_sha256sum']:>13.2f}{r['best_s']:>9.2f}{r['cpu_s']:>8.2f}"
            f"{r['peak_mib']:>10.0f}{r['startup_s']:>12.3f}{net:>10}  {said}"
        )
    openssl = v["verifiers"]["openssl sha256"]["mb_s"]
    for name, r in v["verifiers"].items():
        if name not in HASHES:
            met = "met" if r["vs_sha256sum"] >= AIM else "NOT met"
            ratios = f"/ sha256sum {r['vs_sha256sum']:.2f} (aim >= {AIM}: {met}), / openssl {r['mb_s'] / openssl:.2f}"
            print(f"{name}: {ratios}")
    print("\nunary calls, ms (sequential, plaintext localhost, admin token)")
    head = ("client", "GetCube p50", "p95", "p99", "Health p50", "p95", "p99", "p50 - floor")
    print("{:12}{:>12}{:>8}{:>8}{:>12}{:>8}{:>8}{:>13}".format(*head))
    for name, r in results["unary"].items():
        g, h = r["get_cube"], r["health"]
        print(
            f"{name:12}{g['p50_ms']:>12.3f}{g['p95_ms']:>8.3f}{g['p99_ms']:>8.3f}"
            f"{h['p50_ms']:>12.3f}{h['p95_ms']:>8.3f}{h['p99_ms']:>8.3f}{r['p50_over_floor_ms']:>13.3f}"
        )
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blob-mib", type=int, help="total MiB of blobs in the bundle (default 1024; smoke 64)")
    parser.add_argument("--blob-count", type=int, help="activation cubes they are split into (default 16; smoke 4)")
    parser.add_argument("--calls", type=int, help="timed unary calls of each kind per client (default 2000; smoke 200)")
    parser.add_argument("--warmup", type=int, help="untimed calls of each kind first (default 200; smoke 20)")
    parser.add_argument("--smoke", action="store_true", help="quick check with the smaller defaults")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every number (and the machine description) here")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's temp data, log and bundles")
    args = parser.parse_args(argv)
    defaults = (64, 4, 200, 20) if args.smoke else (1024, 16, 2000, 200)
    given = (args.blob_mib, args.blob_count, args.calls, args.warmup)
    args.blob_mib, args.blob_count, args.calls, args.warmup = (
        g if g is not None else d for g, d in zip(given, defaults, strict=True)
    )

    results: dict[str, Any] = {"machine": machine() | versions()}
    results["command"] = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    results["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    tmp = Path(tempfile.mkdtemp(prefix="memos-bench-clients-"))
    started = time.perf_counter()
    try:
        results |= run_all(args, tmp)
    finally:
        if args.keep_data:
            print(f"server data, log, bundles and built commands kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["total_s"] = time.perf_counter() - started
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    ok = report(results)
    print(f"\nbundle {results['verification']['bundle_bytes'] / MiB:.0f} MiB; total {results['total_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if not ok:
        print("a verifier did not say VALID with every cube", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
