"""Interchange benchmark: export, verify and import of signed bundles against ``sha256sum`` of the same bytes.

Run by hand, never in the test suite::

    .venv/bin/python bench/interchange.py                    # 10,000 plaintext cubes, then 1 GiB of blobs
    .venv/bin/python bench/interchange.py --smoke            # 1,000 cubes, then 64 MiB of blobs: under a minute

Two scenarios, each in its own fresh server (a child process on a temp data dir, ``MEMOS_EMBEDDER=none``,
clients send 384-d vectors, calls authenticate with DATA_DIR/admin.token): ``cubes`` (plaintext cubes of
300-500 bytes, BatchCreateCubes of 500) and ``blobs`` (activation cubes, each with a distinct random blob
uploaded with WritePayload in 1 MiB chunks). For each: ExportBundle to a file; the hashing ceiling (the
``sha256sum`` binary, best of two, and Python hashlib) over that file; VerifyBundle streaming the file;
``verify_bundle`` in this process (the codec without gRPC); ImportBundle into a new empty space. Each
phase reports MB/s (10^6 bytes), its ratio to sha256sum (the aim for verify: >= 0.5), the CPU seconds it
cost the server, and peak RSS: /proc/PID/clear_refs resets the high-water mark (VmHWM) before the phase,
for the server and this client; where that is refused, VmRSS is sampled every 50 ms instead. The aim is a
peak RSS that does not grow with bundle size. Ratios are only meaningful within one run.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from _server import Target, start_server
from tqdm import tqdm

from memos_grpc._proto.memos.v1 import (
    cube_pb2,
    governance_service_pb2,
    governance_service_pb2_grpc,
    interchange_service_pb2,
    interchange_service_pb2_grpc,
    trust_pb2,
    vault_service_pb2,
    vault_service_pb2_grpc,
)
from memos_grpc.interchange.bundle import BundleLimits, TrustPolicy, verify_bundle
from memos_grpc.interchange.dsse import parse_envelope
from memos_grpc.interchange.trust import parse_trust_root
from memos_grpc.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
CHUNK = MiB  # bundle and payload bytes per message, and per read of the bundle file
DIM = 384
BATCH = 500
TIMEOUT = 3600.0
SERVED = ("export", "verify", "import")  # the phases that run in the server
FLAT_MIB = 32  # RSS allowed beyond the cubes run's: gRPC flow-control windows and a few chunks in flight
NODE_ROLE = interchange_service_pb2.TrustPolicy(role=trust_pb2.KEY_ROLE_NODE)  # the server's own key signs exports
WORDS = ("memory", "vault", "cube", "signed", "bundle", "trust", "export", "import", "model", "cache", "the", "of")


@dataclass
class Phase:
    """One timed phase: bytes it moved, wall and server CPU seconds, and memory (MiB) of server and client."""

    name: str
    bytes: int
    seconds: float
    server_cpu_s: float
    server_rss_start_mib: float
    server_peak_mib: float
    client_peak_mib: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mb_s(self) -> float:
        return self.bytes / self.seconds / 1e6

    def row(self, ceiling_mb_s: float) -> dict[str, Any]:
        """The phase as JSON, with its rates and the server's RSS growth over the phase start."""
        growth = self.server_peak_mib - self.server_rss_start_mib
        return asdict(self) | {"mb_s": self.mb_s, "vs_sha256sum": self.mb_s / ceiling_mb_s, "server_growth_mib": growth}


def status_mib(pid: int, name: str) -> float:
    """A memory line of /proc/PID/status (VmHWM: peak RSS; VmRSS: current), in MiB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next((int(ln.split()[1]) / 1024 for ln in lines if ln.startswith(name + ":")), float("nan"))


class PeakRss:
    """The peak RSS of a process from now on: VmHWM after resetting it, or else VmRSS sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.start, self._max = pid, status_mib(pid, "VmRSS"), 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        except OSError:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self._max = max(self._max, status_mib(self.pid, "VmRSS"))

    def peak(self) -> float:
        if self._thread is None:
            return status_mib(self.pid, "VmHWM")
        self._stop.set()
        self._thread.join()
        return max(self._max, status_mib(self.pid, "VmRSS"))


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(name: str, server_pid: int, run: Callable[[], tuple[int, dict[str, Any]]]) -> Phase:
    """Runs a phase returning (bytes, extra numbers); adds its time, the server's CPU and both peak RSSs."""
    server, client, cpu = PeakRss(server_pid), PeakRss(os.getpid()), cpu_s(server_pid)
    started = time.perf_counter()
    nbytes, extra = run()
    seconds = time.perf_counter() - started
    server_cpu = cpu_s(server_pid) - cpu
    return Phase(name, nbytes, seconds, server_cpu, server.start, server.peak(), client.peak(), extra)


def fill_cubes(vault: Any, target: Target, parent: str, count: int, seed: int) -> int:
    """Plaintext cubes of 300-500 bytes with random unit vectors, in batches; returns the text bytes sent."""
    rng, sent = np.random.default_rng(seed), 0
    with tqdm(total=count, desc="ingest cubes", unit="cube", file=sys.stderr, leave=False) as bar:
        for lo in range(0, count, BATCH):
            n = min(BATCH, count - lo)
            vectors = rng.standard_normal((n, DIM), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            request = vault_service_pb2.BatchCreateCubesRequest(parent=parent)
            for i in range(n):
                text, size = f"memory {lo + i}:", int(rng.integers(300, 501))
                while len(text) < size:
                    text += " " + WORDS[int(rng.integers(len(WORDS)))]
                item = request.requests.add()
                item.cube.plaintext.text = text[:size]
                item.vector.values.extend(vectors[i].tolist())
                sent += size
            vault.BatchCreateCubes(request, timeout=TIMEOUT, metadata=target.metadata)
            bar.update(n)
    return sent


def blob_upload(parent: str, size: int, rng: np.random.Generator, bar: tqdm[Any]) -> Iterator[Any]:
    """WritePayload messages of ``size`` random bytes, generated one chunk at a time."""
    yield vault_service_pb2.WritePayloadRequest(
        parent=parent, expected_size=size, media_type="application/octet-stream"
    )
    for lo in range(0, size, CHUNK):
        n = min(CHUNK, size - lo)
        yield vault_service_pb2.WritePayloadRequest(data=rng.bytes(n))
        bar.update(n)


def fill_blobs(vault: Any, target: Target, parent: str, total_mib: int, count: int, seed: int) -> int:
    """``count`` activation cubes, each with a distinct random blob; no more than one chunk is ever in memory."""
    size = total_mib * MiB // count
    with tqdm(total=size * count, desc="upload blobs", unit="B", unit_scale=True, file=sys.stderr, leave=False) as bar:
        for b in range(count):
            upload = blob_upload(parent, size, np.random.default_rng((seed, b)), bar)
            blob = vault.WritePayload(upload, timeout=TIMEOUT, metadata=target.metadata).blob
            payload = cube_pb2.ActivationPayload(
                blob=cube_pb2.BlobRef(digest=blob.digest), model_fingerprint="bench-model", dtype="float16"
            )
            payload.shape.append(size // 2)
            request = vault_service_pb2.CreateCubeRequest(parent=parent, cube=cube_pb2.MemCube(activation=payload))
            vault.CreateCube(request, timeout=TIMEOUT, metadata=target.metadata)
    return size * count


def file_chunks(path: Path, desc: str) -> Iterator[bytes]:
    with (
        open(path, "rb") as handle,
        tqdm(total=path.stat().st_size, desc=desc, unit="B", unit_scale=True, file=sys.stderr, leave=False) as bar,
    ):
        while chunk := handle.read(CHUNK):
            bar.update(len(chunk))
            yield chunk


def export(stub: Any, target: Target, parent: str, path: Path) -> tuple[int, dict[str, Any]]:
    written = 0
    request = interchange_service_pb2.ExportBundleRequest(parent=parent)
    with open(path, "wb") as out, tqdm(desc="export", unit="B", unit_scale=True, file=sys.stderr, leave=False) as bar:
        for reply in stub.ExportBundle(request, timeout=TIMEOUT, metadata=target.metadata):
            out.write(reply.chunk)
            written += len(reply.chunk)
            bar.update(len(reply.chunk))
    return written, {}


def sha256sum(path: Path) -> tuple[int, dict[str, Any]]:
    """The coreutils binary, best of two (the first run may warm the page cache)."""
    times, digest = [], ""
    for _ in range(2):
        started = time.perf_counter()
        done = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - started)
        digest = done.stdout.split()[0]
    return path.stat().st_size, {"runs_s": times, "best_s": min(times), "digest": digest}


def python_sha256(path: Path) -> tuple[int, dict[str, Any]]:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return path.stat().st_size, {"digest": digest.hexdigest()}


def verify(stub: Any, target: Target, path: Path) -> tuple[int, dict[str, Any]]:
    def requests() -> Iterator[interchange_service_pb2.VerifyBundleRequest]:
        chunks = file_chunks(path, "verify")
        yield interchange_service_pb2.VerifyBundleRequest(trust_policy=NODE_ROLE, chunk=next(chunks))
        yield from (interchange_service_pb2.VerifyBundleRequest(chunk=chunk) for chunk in chunks)

    report = stub.VerifyBundle(requests(), timeout=TIMEOUT, metadata=target.metadata).verification
    if not report.valid:
        raise RuntimeError(f"VerifyBundle: not valid: {report.reason}: {report.message}")
    return report.bundle_bytes, {"cube_count": report.cube_count, "blob_bytes": report.blob_bytes}


def offline_verify(path: Path, policy: TrustPolicy, limits: BundleLimits) -> tuple[int, dict[str, Any]]:
    report = verify_bundle(file_chunks(path, "offline verify"), policy, limits, datetime.now(UTC))
    if not report.valid:
        raise RuntimeError(f"verify_bundle: not valid: {report.reason}: {report.message}")
    return report.bundle_bytes, {}


def import_bundle(stub: Any, target: Target, parent: str, path: Path, cubes: int) -> tuple[int, dict[str, Any]]:
    def requests() -> Iterator[interchange_service_pb2.ImportBundleRequest]:
        chunks, skip = file_chunks(path, "import"), interchange_service_pb2.CONFLICT_POLICY_SKIP
        yield interchange_service_pb2.ImportBundleRequest(
            parent=parent, conflict_policy=skip, trust_policy=NODE_ROLE, chunk=next(chunks)
        )
        yield from (interchange_service_pb2.ImportBundleRequest(chunk=chunk) for chunk in chunks)

    reply = stub.ImportBundle(requests(), timeout=TIMEOUT, metadata=target.metadata)
    if reply.created_count != cubes:
        raise RuntimeError(f"ImportBundle created {reply.created_count} cubes, expected {cubes}")
    return reply.verification.bundle_bytes, {"created": reply.created_count}


def node_policy(governance: Any, target: Target) -> TrustPolicy:
    """The node role of the server's trust root, as the server itself applies it."""
    message = governance.GetTrustRoot(governance_service_pb2.GetTrustRootRequest(), metadata=target.metadata)
    root = parse_trust_root(parse_envelope(message.signed_envelope).payload)
    role = root.role("node")
    return TrustPolicy("node", {k: root.keys[k] for k in role.key_ids}, role.threshold)


def run_scenario(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """A fresh server: fill a space, then export, hash, verify (served and offline) and import its bundle."""
    work.mkdir()
    proc, log = None, work / "server.log"
    settings = Settings.load()  # defaults plus MEMOS_* variables, as the child server reads them
    limits = BundleLimits(
        settings.max_payload_bytes,
        settings.bundle_max_bytes,
        settings.bundle_max_entries,
        settings.bundle_max_envelope_bytes,
        settings.bundle_max_cube_bytes,
    )
    try:
        proc, target = start_server(work / "data", DIM, log)
        pid, bundle = proc.pid, work / "bundle.tar"
        with grpc.insecure_channel(target.address) as channel:
            governance = governance_service_pb2_grpc.GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
            vault = vault_service_pb2_grpc.VaultServiceStub(channel)  # type: ignore[no-untyped-call]
            interchange = interchange_service_pb2_grpc.InterchangeServiceStub(channel)  # type: ignore[no-untyped-call]
            for space in ("source", "imported"):
                request = governance_service_pb2.CreateSpaceRequest(space_id=space)
                governance.CreateSpace(request, metadata=target.metadata)
            policy = node_policy(governance, target)
            print(f"[{name}] filling the source space ...", file=sys.stderr)
            if name == "cubes":
                cubes = args.cubes
                fill = measure("fill", pid, lambda: (fill_cubes(vault, target, "spaces/source", cubes, args.seed), {}))
            else:
                cubes = args.blob_count
                mib, seed = args.blob_mib, args.seed
                fill = measure("fill", pid, lambda: (fill_blobs(vault, target, "spaces/source", mib, cubes, seed), {}))
            print(f"[{name}] export, hash, verify, import ...", file=sys.stderr)
            phases = [
                measure("export", pid, lambda: export(interchange, target, "spaces/source", bundle)),
                measure("sha256sum", pid, lambda: sha256sum(bundle)),
                measure("hashlib sha256", pid, lambda: python_sha256(bundle)),
                measure("verify", pid, lambda: verify(interchange, target, bundle)),
                measure("offline verify", pid, lambda: offline_verify(bundle, policy, limits)),
                measure("import", pid, lambda: import_bundle(interchange, target, "spaces/imported", bundle, cubes)),
            ]
        if phases[1].extra["digest"] != phases[2].extra["digest"]:
            raise RuntimeError("sha256sum and hashlib disagree on the bundle's digest")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()
        print(log.read_text()[-4000:] if log.exists() else "(no server log)", file=sys.stderr)
        raise
    finally:
        if not args.keep_data:
            shutil.rmtree(work, ignore_errors=True)
    # The binary's best time is the ceiling; the phase's own seconds include its first, colder run.
    ceiling = phases[1].bytes / phases[1].extra["best_s"] / 1e6
    phases[1].seconds = phases[1].extra["best_s"]
    phases[-1].extra["cubes_per_s"] = cubes / phases[-1].seconds
    rows = [p.row(ceiling) for p in phases]
    return {"cubes": cubes, "bundle_bytes": phases[0].bytes, "fill": asdict(fill), "phases": rows}


def peak_growth(results: dict[str, Any]) -> dict[str, Any]:
    """Per served phase: the server's RSS growth in each scenario, and its slope against the bundle size."""
    small, large = results["scenarios"]["cubes"], results["scenarios"]["blobs"]
    extra_mib = (large["bundle_bytes"] - small["bundle_bytes"]) / MiB
    out: dict[str, Any] = {}
    for a, b in zip(small["phases"], large["phases"], strict=True):
        if a["name"] in SERVED:
            more = b["server_growth_mib"] - a["server_growth_mib"]
            out[a["name"]] = {"cubes_mib": a["server_growth_mib"], "blobs_mib": b["server_growth_mib"]}
            out[a["name"]] |= {"slope": more / extra_mib if extra_mib > 0 else 0.0, "flat": more < FLAT_MIB}
    return out


def machine() -> dict[str, Any]:
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in cpuinfo if ln.startswith("flags")), [])
    versions = {p: importlib.metadata.version(p) for p in ("grpcio", "protobuf", "duckdb", "cryptography", "numpy")}
    git = [["git", "-C", str(ROOT), *c] for c in (["rev-parse", "--short", "HEAD"], ["status", "-s", "memos_grpc"])]
    commit, dirty = (subprocess.run(c, capture_output=True, text=True).stdout.strip() for c in git)  # read-only
    coreutils = subprocess.run(["sha256sum", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    info: dict[str, Any] = {"code": commit + (" + uncommitted changes to memos_grpc" if dirty else "")}
    info |= {"nproc": os.cpu_count(), "cpu": cpu, "sha_ni": "sha_ni" in flags, "mem_total": meminfo["MemTotal"].strip()}
    info |= {"loadavg_at_start": os.getloadavg(), "python": platform.python_version(), "openssl": ssl.OPENSSL_VERSION}
    return info | {"sha256sum": coreutils} | versions


def report(results: dict[str, Any]) -> None:
    m = results["machine"]
    load = tuple(round(x, 2) for x in m["loadavg_at_start"])
    print(f"\nmachine: {m['nproc']} cores, {m['cpu']} (sha_ni {m['sha_ni']}), load at start {load}; code {m['code']}")
    head = ("phase", "MB", "s", "MB/s", "/sha256sum", "srv CPU s", "srv RSS0", "srv peak", "growth", "client peak")
    for name, s in results["scenarios"].items():
        fill = f"filled in {s['fill']['seconds']:.1f} s"
        print(f"\n{name}: {s['cubes']} cubes, bundle {s['bundle_bytes'] / 1e6:.1f} MB, {fill} (RSS in MiB)")
        print("{:16}{:>9}{:>8}{:>9}{:>11}{:>10}{:>9}{:>9}{:>8}{:>12}".format(*head))
        for p in s["phases"]:
            server = f"{p['server_cpu_s']:>10.2f}{p['server_rss_start_mib']:>9.0f}{p['server_peak_mib']:>9.0f}"
            server += f"{p['server_growth_mib']:>8.1f}"
            if p["name"] not in SERVED:  # the server idles through these
                server = "{:>10}{:>9}{:>9}{:>8}".format(*"----")
            print(
                f"{p['name']:16}{p['bytes'] / 1e6:>9.1f}{p['seconds']:>8.2f}{p['mb_s']:>9.1f}{p['vs_sha256sum']:>11.2f}"
                f"{server}{p['client_peak_mib']:>12.0f}"
            )
        by = {p["name"]: p for p in s["phases"]}
        ratio, imported = by["verify"]["vs_sha256sum"], by["import"]
        per_cube = f", server RSS growth {imported['server_growth_mib'] * 1024 / s['cubes']:.1f} KiB per cube"
        print(f"verify / sha256sum {ratio:.2f} (aim >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'}), ", end="")
        print(f"/ hashlib {by['verify']['mb_s'] / by['hashlib sha256']['mb_s']:.2f}; ", end="")
        print(f"import {imported['extra']['cubes_per_s']:.0f} cubes/s{per_cube if name == 'cubes' else ''}")
    if "comparison" in results:
        print(f"\nserver RSS growth over phase start, cubes vs blobs bundle, MiB (flat: blobs < cubes + {FLAT_MIB}):")
        for phase, g in results["comparison"].items():
            verdict = "flat" if g["flat"] else "GROWS with bundle size"
            slope = f"{g['slope']:+.3f} MiB per MiB of bundle  {verdict}"
            print(f"  {phase:7} {g['cubes_mib']:7.1f} vs {g['blobs_mib']:7.1f}  {slope}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cubes", type=int, help="plaintext cubes of the cubes scenario (default 10000)")
    parser.add_argument("--blob-mib", type=int, help="total MiB of blobs of the blobs scenario (default 1024)")
    parser.add_argument("--blob-count", type=int, help="blobs (activation cubes) they are split into (default 16)")
    parser.add_argument("--smoke", action="store_true", help="quick check: defaults 1000 cubes, 64 MiB in 4 blobs")
    parser.add_argument("--only", choices=("cubes", "blobs"), help="run one scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep-data", action="store_true", help="keep the servers' temp data, logs and bundles")
    args = parser.parse_args(argv)
    defaults = (1000, 64, 4) if args.smoke else (10_000, 1024, 16)
    args.cubes, args.blob_mib, args.blob_count = (
        given if given is not None else default
        for given, default in zip((args.cubes, args.blob_mib, args.blob_count), defaults, strict=True)
    )

    results: dict[str, Any] = {"machine": machine(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    results["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    tmp = Path(tempfile.mkdtemp(prefix="memos-bench-interchange-"))
    started = time.perf_counter()
    try:
        names = [args.only] if args.only else ["cubes", "blobs"]
        results["scenarios"] = {name: run_scenario(name, args, tmp / name) for name in names}
    finally:
        if args.keep_data:
            print(f"server data, logs and bundles kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if len(results["scenarios"]) == 2:
        results["comparison"] = peak_growth(results)
    results["total_s"] = time.perf_counter() - started
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
