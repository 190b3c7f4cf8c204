"""Marketplace benchmark: the transparency log, its proofs, and the served marketplace calls, each beside a baseline.

Run by hand, never in the test suite::

    .venv/bin/python bench/marketplace.py                 # the full run for docs/performance.md (~2-3 minutes)
    .venv/bin/python bench/marketplace.py --smoke         # small sizes: under a minute
    .venv/bin/python bench/marketplace.py --only buyer    # part 6 alone (~1.2 minutes)

Six parts, each measured beside a baseline from the same run:

1. Log appends: ``TransparencyLog.append`` in this process on a real vault (DuckDB in a temp data dir), in
   batches and one entry per call from several threads: entries/s and the p50/p95 of a call's latency (until its
   entries are committed and integrated into the tree). Baseline: sha256 + write + fsync of the same entry bytes
   to a file, one fsync per entry and one per batch.
2. Proofs: a log filled with ``--proof-leaves`` entries (the fill rate is reported); the p50 of inclusion and
   consistency proof generation from stored hashes, and the proof sizes against ceil(log2 n). Baseline: as many
   sha256 node hashes as verifying the proof takes (one per inclusion hash, two per consistency hash).
3. Offline verification: ``verify_proof`` of a real tlog-proof (a license's, from the witnessed server of part
   4, with one witness cosignature) per second. Baseline: raw Ed25519 verifications of as many signatures
   (two: the log's and the witness's) with ``cryptography``, keys loaded once.
4. AcquireLicense p50/p95 through a real marketplace server (child process) with no witness, then with one
   (a second server process witnessing its log). Baseline: GetCheckpoint on the same server and channel,
   interleaved call by call.
5. PublishRelease of a ``--cubes`` cube release (exported by the owner from its space with ExportBundle and a
   ``release``), streamed from a file, in MB/s. Baseline: ``sha256sum`` of the same file (best of two; Python
   hashlib beside it). Aim: >= 0.5x sha256sum.
6. The buyer's node metering licensed cubes: a marketplace (no witness) publishes releases of ``--buyer-cubes``
   cubes, and a buyer server following its log imports them with licenses; the same cubes go into another
   space of the buyer with BatchCreateCubes. SearchCubes (top_k 10) and Recall p50/p95 with the same queries on
   (a) the unlicensed space (the baseline), (b) a licensed space whose terms permit search and recall without a
   count (each call counts a use in memory; the node writes them, with their audit events, in batches every
   ``license_flush_seconds``), (b2) a licensed space whose terms limit search and recall with a count never
   reached (10^9: each call's use and audit event are written in one transaction before the answer leaves);
   then, once the node holds a license whose terms permit import only, (c) the unlicensed space again, (b')
   and (b2') the licensed spaces again and (d) a space of two half releases, one under that blocked license
   (Search and Recall leave its cubes out).

Ratios are only meaningful within one run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from _server import Target, start_server, stop
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from interchange import CHUNK, DIM, WORDS, fill_cubes, machine, python_sha256, sha256sum

from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import held_license_service_pb2 as h
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc._proto.memos.v1 import principal_pb2
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as sc
from memos_grpc._proto.memos.v1 import transparency_log_service_pb2 as t
from memos_grpc._proto.memos.v1 import vault_service_pb2 as vs
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.held_license_service_pb2_grpc import HeldLicenseServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.transparency_log_service_pb2_grpc import TransparencyLogServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.interchange.dsse import Envelope, parse_envelope
from memos_grpc.interchange.trust import TRUST_ROOT_PAYLOAD_TYPE, Role, TrustRoot, parse_trust_root
from memos_grpc.marketplace.log import TransparencyLog
from memos_grpc.node import Node
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.settings import Settings
from memos_grpc.transparency import merkle
from memos_grpc.transparency.cosignature import CosignatureVerifier
from memos_grpc.transparency.note import NoteVerifier, sign_note
from memos_grpc.transparency.policy import parse_policy
from memos_grpc.transparency.proof import verify_proof

TIMEOUT = 3600.0
ORIGIN = "bench.memos.test/log"
WITNESS_NAME = "bench-witness"
TERMS = json.dumps({"license": "MIT", "permission": [{"action": "import"}], "maxOfflineSeconds": 3600})


def entry(n: int) -> bytes:
    """A log entry the size of a memstore-entry/v1 grant line set (about 200 bytes)."""
    digest = hashlib.sha256(n.to_bytes(8, "big")).hexdigest()
    return f"memstore-entry/v1\ntype grant\nstatement sha256:{digest}\nsigner {digest[::-1]}\nn {n}\n".encode()


def pct(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def latency(samples: Sequence[float]) -> dict[str, float]:
    """p50/p95 in milliseconds."""
    return {"p50_ms": pct(samples, 0.5) * 1e3, "p95_ms": pct(samples, 0.95) * 1e3, "n": len(samples)}


def open_log(data_dir: Path) -> tuple[Node, TransparencyLog]:
    settings = Settings.load(environ={}, overrides={"data_dir": data_dir, "embedder": "none", "vector_dimension": 8})
    vault, key = Node(settings), SigningKey.generate()
    return vault, TransparencyLog(vault.context, ORIGIN, lambda body: sign_note(body, ORIGIN, key))


# -- 1. appends --------------------------------------------------------------------------------------------------


def raw_appends(path: Path, entries: Sequence[bytes], batch: int) -> float:
    """sha256 + write + fsync of ``entries`` to a file, one fsync per ``batch`` entries; entries/s."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        started = time.perf_counter()
        for lo in range(0, len(entries), batch):
            chunk = entries[lo : lo + batch]
            digests = [hashlib.sha256(e).digest() for e in chunk]
            os.write(fd, b"".join(e + d for e, d in zip(chunk, digests, strict=True)))
            os.fsync(fd)
        return len(entries) / (time.perf_counter() - started)
    finally:
        os.close(fd)


def part_appends(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    work.mkdir()
    vault, log = open_log(work / "data")
    out: dict[str, Any] = {"batch": args.append_batch, "threads": args.threads}
    try:
        # Batches: one call of append_batch entries at a time.
        calls, base = [], 0
        started = time.perf_counter()
        for _ in range(args.append_batches):
            batch = [entry(base + n) for n in range(args.append_batch)]
            called = time.perf_counter()
            log.append(batch)
            calls.append(time.perf_counter() - called)
            base += len(batch)
        out["batched"] = {"entries": base, "entries_per_s": base / (time.perf_counter() - started)} | latency(calls)
        # One entry per call from several threads: concurrent calls share the writer's group commits.
        per_thread = args.single_appends // args.threads
        samples: list[list[float]] = [[] for _ in range(args.threads)]

        def work_thread(number: int, first: int) -> None:
            for n in range(per_thread):
                called = time.perf_counter()
                log.append([entry(first + n)])
                samples[number].append(time.perf_counter() - called)

        workers = [threading.Thread(target=work_thread, args=(k, base + k * per_thread)) for k in range(args.threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - started
        total = per_thread * args.threads
        flat = [s for each in samples for s in each]
        out["single"] = {"entries": total, "entries_per_s": total / seconds} | latency(flat)
        if log.size() != base + total:
            raise RuntimeError(f"the log holds {log.size()} entries, expected {base + total}")
    finally:
        vault.close()
    entries = [entry(n) for n in range(max(args.append_batches * args.append_batch, args.single_appends))]
    out["raw_batched_entries_per_s"] = raw_appends(work / "raw-batched.log", entries, args.append_batch)
    out["raw_single_entries_per_s"] = raw_appends(work / "raw-single.log", entries[: args.single_appends], 1)
    return out


# -- 2. proofs ----------------------------------------------------------------------------------------------------


def node_hashes(count: int) -> float:
    """Seconds for ``count`` RFC 6962 node hashes (sha256 of 0x01 || 32 bytes || 32 bytes)."""
    left, right = bytes(32), bytes(range(32))
    started = time.perf_counter()
    for _ in range(count):
        left = merkle.node_hash(left, right)
    return time.perf_counter() - started


def part_proofs(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    work.mkdir()
    vault, log = open_log(work / "data")
    n, rng = args.proof_leaves, random.Random(args.seed)
    try:
        started, filled = time.perf_counter(), 0
        while filled < n:
            count = min(args.fill_batch, n - filled)
            log.append([entry(filled + k) for k in range(count)])
            filled += count
            elapsed = time.perf_counter() - started
            print(f"  fill {filled}/{n} ({filled / elapsed:.0f} entries/s)", file=sys.stderr, end="\r")
        fill_s = time.perf_counter() - started
        print(file=sys.stderr)
        root = log.root()
        inclusion_s, inclusion_len, consistency_s, consistency_len = [], [], [], []
        hashes_s, hashes2_s, verify_s, verify2_s = [], [], [], []
        for k in range(args.proofs):
            index = rng.randrange(n)
            called = time.perf_counter()
            proof = log.inclusion_proof(index)
            inclusion_s.append(time.perf_counter() - called)
            inclusion_len.append(len(proof))
            called = time.perf_counter()
            merkle.verify_inclusion(merkle.leaf_hash(entry(index)), index, n, proof, root)
            verify_s.append(time.perf_counter() - called)
            hashes_s.append(node_hashes(len(proof)))
            old = rng.randrange(1, n)
            called = time.perf_counter()
            proof = log.consistency_proof(old)
            consistency_s.append(time.perf_counter() - called)
            consistency_len.append(len(proof))
            if k < args.checked_consistency:  # the old root costs a read; verify a sample, untimed
                old_root = log.root(old)
                called = time.perf_counter()
                merkle.verify_consistency(old, n, old_root, root, proof)
                verify2_s.append(time.perf_counter() - called)
            hashes2_s.append(node_hashes(2 * len(proof)))
    finally:
        vault.close()
    bound = math.ceil(math.log2(n))
    return {
        "leaves": n,
        "fill_s": fill_s,
        "fill_entries_per_s": n / fill_s,
        "ceil_log2_n": bound,
        "inclusion": {
            "p50_ms": pct(inclusion_s, 0.5) * 1e3,
            "hashes_max": max(inclusion_len),
            "hashes_mean": statistics.fmean(inclusion_len),
            "verify_p50_ms": pct(verify_s, 0.5) * 1e3,
            "baseline_p50_ms": pct(hashes_s, 0.5) * 1e3,
        },
        "consistency": {
            "p50_ms": pct(consistency_s, 0.5) * 1e3,
            "hashes_max": max(consistency_len),
            "hashes_mean": statistics.fmean(consistency_len),
            "verify_p50_ms": pct(verify2_s, 0.5) * 1e3,
            "baseline_p50_ms": pct(hashes2_s, 0.5) * 1e3,
        },
    }


# -- 3. offline verification -----------------------------------------------------------------------------------


def part_verify(args: argparse.Namespace, sample: dict[str, Any]) -> dict[str, Any]:
    """verify_proof of the witnessed license's proof against as many raw Ed25519 verifications."""
    policy = parse_policy(sample["policy"])
    log_verifier = NoteVerifier.for_key(ORIGIN, bytes.fromhex(sample["log_public_key"]))
    entry_bytes, proof_text = bytes.fromhex(sample["entry"]), sample["tlog_proof"]
    now = datetime.now(UTC)
    report = verify_proof(entry_bytes, proof_text, log_verifier, policy, policy.witnesses, now, 600)
    if not report or report.fresh_witnesses != ("w0",):
        raise RuntimeError(f"the license's proof does not verify with one witness: {report.shortfalls}")
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < args.verify_seconds:
        for _ in range(50):
            verify_proof(entry_bytes, proof_text, log_verifier, policy, policy.witnesses, now, 600)
        done += 50
    proofs_per_s = done / (time.perf_counter() - started)
    keys = [Ed25519PrivateKey.generate() for _ in range(2)]
    messages = [proof_text.encode()[:200], proof_text.encode()[:120]]  # a checkpoint body and a cosigned message
    signed = [(k.public_key(), k.sign(msg), msg) for k, msg in zip(keys, messages, strict=True)]
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < args.verify_seconds:
        for _ in range(50):
            for public, signature, message in signed:
                public.verify(signature, message)
        done += 50
    sets_per_s = done / (time.perf_counter() - started)
    return {"proofs_per_s": proofs_per_s, "ed25519_pairs_per_s": sets_per_s, "signatures_per_proof": len(signed)}


# -- 4 and 5. the served marketplace --------------------------------------------------------------------------


class Market:
    """A marketplace server's stubs: the admin, an owner with a kept signing key and a space, a buyer."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.channels = [grpc.insecure_channel(target.address)]
        admin = GovernanceServiceStub(self.channels[0])  # type: ignore[no-untyped-call]
        self.names: dict[str, str] = {}
        self.meta: dict[str, tuple[tuple[str, str], ...]] = {}
        for who in ("owner", "buyer"):
            principal = principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER)
            request = g.CreatePrincipalRequest(principal_id=who, principal=principal)
            name = admin.CreatePrincipal(request, metadata=target.metadata).name
            token = admin.CreateCredential(g.CreateCredentialRequest(parent=name), metadata=target.metadata).token
            self.names[who], self.meta[who] = name, (("authorization", f"Bearer {token}"),)
        channel = self.channels[0]
        self.governance = GovernanceServiceStub(channel)  # type: ignore[no-untyped-call]
        self.vault = VaultServiceStub(channel)  # type: ignore[no-untyped-call]
        self.interchange = InterchangeServiceStub(channel)  # type: ignore[no-untyped-call]
        self.market = MarketplaceServiceStub(channel)  # type: ignore[no-untyped-call]
        self.tlog = TransparencyLogServiceStub(channel)  # type: ignore[no-untyped-call]
        owner = self.meta["owner"]
        self.governance.CreateSigningKey(g.CreateSigningKeyRequest(parent=self.names["owner"]), metadata=owner)
        self.space = self.governance.CreateSpace(g.CreateSpaceRequest(space_id="wares"), metadata=owner).name

    def fill(self, cubes: int, seed: int) -> None:
        fill_cubes(self.vault, Target(self.target.address, self.meta["owner"]), self.space, cubes, seed)

    def export(self, listing_id: str, version: str, path: Path, terms: str = TERMS, names: Sequence[str] = ()) -> int:
        """Creates the listing (when new) and exports the owner's space (or ``names`` of it) as release ``version``.

        Returns the bundle's bytes.
        """
        owner = self.meta["owner"]
        try:
            listing = m.Listing(title=f"{listing_id} facts")
            request = m.CreateListingRequest(listing_id=listing_id, listing=listing)
            self.market.CreateListing(request, metadata=owner)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        digest = "sha256:" + hashlib.sha256(terms.encode()).hexdigest()
        info = i.ReleaseInfo(listing=f"listings/{listing_id}", release=version, license="MIT", terms_digest=digest)
        written = 0
        with open(path, "wb") as out:
            request_export = i.ExportBundleRequest(parent=self.space, names=names, release=info)
            for reply in self.interchange.ExportBundle(request_export, timeout=TIMEOUT, metadata=owner):
                out.write(reply.chunk)
                written += len(reply.chunk)
        return written

    def publish(self, listing_id: str, version: str, path: Path, terms: str = TERMS) -> m.PublishReleaseResponse:
        def requests() -> Iterator[m.PublishReleaseRequest]:
            with open(path, "rb") as handle:
                yield m.PublishReleaseRequest(
                    parent=f"listings/{listing_id}",
                    release_id=version,
                    terms_json=terms,
                    expected_size=path.stat().st_size,
                    chunk=handle.read(CHUNK),
                )
                while chunk := handle.read(CHUNK):
                    yield m.PublishReleaseRequest(chunk=chunk)

        reply: m.PublishReleaseResponse = self.market.PublishRelease(
            requests(), timeout=TIMEOUT, metadata=self.meta["owner"]
        )
        return reply

    def acquire(self, release: str, n: int, key_id: str, licensee: str = "") -> m.License:
        """A license of ``release`` for ``licensee`` (default a new principal name per ``n``) and its key."""
        wanted = m.License(release=release, licensee=licensee or f"principals/licensee-{n}", licensee_key=key_id)
        reply: m.License = self.market.AcquireLicense(
            m.AcquireLicenseRequest(license=wanted), timeout=60, metadata=self.meta["buyer"]
        )
        return reply

    def checkpoint(self) -> t.Checkpoint:
        reply: t.Checkpoint = self.tlog.GetCheckpoint(t.GetCheckpointRequest(), timeout=60, metadata=self.meta["buyer"])
        return reply

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


def licenses(market: Market, release: str, calls: int, warmup: int) -> tuple[dict[str, Any], m.License]:
    """AcquireLicense and GetCheckpoint interleaved (which goes first alternates); their latencies."""
    key_id = SigningKey.generate().key_id
    acquire_s: list[float] = []
    trivial_s: list[float] = []
    last = m.License()
    for n in range(warmup + calls):
        order = (0, 1) if n % 2 == 0 else (1, 0)
        for which in order:
            called = time.perf_counter()
            if which == 0:
                last = market.acquire(release, n, key_id)
            else:
                market.checkpoint()
            spent = time.perf_counter() - called
            if n >= warmup:
                (acquire_s if which == 0 else trivial_s).append(spent)
    return {"acquire": latency(acquire_s), "get_checkpoint": latency(trivial_s)}, last


def part_served(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Market 0 (no witness): the big release published, licenses; then witness W and market 1: licenses."""
    work.mkdir()
    out: dict[str, Any] = {}
    procs: list[Any] = []
    markets: list[Market] = []
    logs = {name: work / f"{name}.log" for name in ("market0", "witness", "market1")}
    base = {"MEMOS_MARKETPLACE_ENABLED": "true", "MEMOS_MARKETPLACE_LOG_ORIGIN": ORIGIN}
    try:
        print("[served] market without witness: fill, export, publish, licenses ...", file=sys.stderr)
        proc, target = start_server(work / "market0", DIM, logs["market0"], env=base)
        procs.append(proc)
        market = Market(target)
        markets.append(market)
        market.fill(args.cubes, args.seed)
        bundle = work / "release.tar"
        started = time.perf_counter()
        size = market.export("facts", "1.0.0", bundle)
        export_s = time.perf_counter() - started
        started = time.perf_counter()
        published = market.publish("facts", "1.0.0", bundle)
        publish_s = time.perf_counter() - started
        _, ceiling = sha256sum(bundle)
        hashed_started = time.perf_counter()
        _, hashed = python_sha256(bundle)
        hashlib_s = time.perf_counter() - hashed_started
        if hashed["digest"] != ceiling["digest"]:
            raise RuntimeError("sha256sum and hashlib disagree on the bundle's digest")
        out["publish"] = {
            "cubes": args.cubes,
            "bundle_bytes": size,
            "export_s": export_s,
            "publish_s": publish_s,
            "publish_mb_s": size / publish_s / 1e6,
            "sha256sum_mb_s": size / ceiling["best_s"] / 1e6,
            "hashlib_mb_s": size / hashlib_s / 1e6,
            "log_index": published.release.log_index,
        }
        out["no_witness"], _ = licenses(market, published.release.name, args.licenses, args.warmup)
        market.close()
        markets.clear()
        stop(procs.pop())

        print("[served] market with one witness: licenses ...", file=sys.stderr)
        log_key, witness_key = SigningKey.generate(), SigningKey.generate()
        log_key.write(work / "market1" / "keys" / "log.key")
        witness_key.write(work / "witness" / "keys" / "witness.key")
        log_verifier = NoteVerifier.for_key(ORIGIN, log_key.public_key)
        witness_verifier = CosignatureVerifier.for_key(WITNESS_NAME, witness_key.public_key)
        witness_env = {"MEMOS_WITNESS_LOGS": log_verifier.vkey(), "MEMOS_WITNESS_NAME": WITNESS_NAME}
        proc, witness = start_server(work / "witness", DIM, logs["witness"], env=witness_env)
        procs.append(proc)
        witnessed = base | {
            "MEMOS_MARKETPLACE_WITNESSES": f"{witness_verifier.vkey()}@{witness.address}",
            "MEMOS_ALLOW_PLAINTEXT_PEERS": "true",
        }
        proc, target = start_server(work / "market1", DIM, logs["market1"], env=witnessed)
        procs.append(proc)
        market = Market(target)
        markets.append(market)
        market.fill(1, args.seed)
        market.export("facts", "1.0.0", work / "small.tar")
        release = market.publish("facts", "1.0.0", work / "small.tar").release.name
        out["one_witness"], last = licenses(market, release, args.licenses, args.warmup)
        if list(market.checkpoint().cosigners) != [WITNESS_NAME]:
            raise RuntimeError("the witnessed market's checkpoint is not cosigned by the witness")
        entries = market.tlog.GetEntries(
            t.GetEntriesRequest(start_index=last.log_index, max_entries=1), metadata=market.meta["buyer"]
        )
        policy = (
            f"log {log_verifier.vkey()}\nwitness w0 {witness_verifier.vkey()}\ngroup witnesses 1 w0\nquorum witnesses\n"
        )
        out["sample"] = {
            "entry": entries.entries[0].data.hex(),
            "tlog_proof": last.tlog_proof,
            "log_public_key": log_key.public_key.hex(),
            "policy": policy,
        }
        market.close()
        markets.clear()
        while procs:
            stop(procs.pop())
    except BaseException:
        for market in markets:
            market.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for name, path in logs.items():
            if path.exists():
                print(f"--- {name} log (tail)\n{path.read_text()[-3000:]}", file=sys.stderr)
        raise
    return out


# -- 6. the buyer's node ------------------------------------------------------------------------------------------

#: Terms of the licensed space: search and recall without a count (each call still counts one use, written in a
#: batch).
OPEN_TERMS = json.dumps(
    {
        "license": "MIT",
        "permission": [{"action": "import"}, {"action": "search"}, {"action": "recall"}],
        "maxOfflineSeconds": 86400,
    }
)
#: Terms of the count-limited space: search and recall up to 10^9 times, a limit never reached here, so that each
#: use is written (with its audit event) before its answer leaves, as under any count limit.
LIMITED_TERMS = json.dumps(
    {
        "license": "MIT",
        "permission": [
            {"action": "import"},
            {"action": "search", "constraint": [{"leftOperand": "count", "operator": "lteq", "rightOperand": 10**9}]},
            {"action": "recall", "constraint": [{"leftOperand": "count", "operator": "lteq", "rightOperand": 10**9}]},
        ],
        "maxOfflineSeconds": 86400,
    }
)
#: Terms of the blocked license: import only, so every Search and Recall on the node finds it blocked.
CLOSED_TERMS = json.dumps({"license": "MIT", "permission": [{"action": "import"}], "maxOfflineSeconds": 86400})
CUBE_BATCH = 500


def buyer_cubes(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``count`` texts of 300-500 bytes (``memory <i>:`` and words) and random unit vectors, the same per seed."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = []
    for n in range(count):
        text, size = f"memory {n}:", int(rng.integers(300, 501))
        while len(text) < size:
            text += " " + WORDS[int(rng.integers(len(WORDS)))]
        texts.append(text[:size])
    return texts, vectors


def create_cubes(
    vault: VaultServiceStub, metadata: tuple[tuple[str, str], ...], parent: str, texts: list[str], vectors: np.ndarray
) -> list[str]:
    """BatchCreateCubes of the texts with their vectors, in order; the cubes' names."""
    names: list[str] = []
    for lo in range(0, len(texts), CUBE_BATCH):
        request = vs.BatchCreateCubesRequest(parent=parent)
        for text, vector in zip(texts[lo : lo + CUBE_BATCH], vectors[lo : lo + CUBE_BATCH], strict=True):
            item = request.requests.add()
            item.cube.plaintext.text = text
            item.vector.values.extend(vector.tolist())
        reply = vault.BatchCreateCubes(request, timeout=TIMEOUT, metadata=metadata)
        names.extend(cube.name for cube in reply.cubes)
    return names


class Buyer:
    """A buyer node's stubs: its admin, and ``alice`` (a principal with a kept key) who imports and queries."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.channel = grpc.insecure_channel(target.address)
        self.governance = GovernanceServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.vault = VaultServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.scheduler = SchedulerServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.interchange = InterchangeServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.held_licenses = HeldLicenseServiceStub(self.channel)  # type: ignore[no-untyped-call]
        admin = target.metadata
        principal = principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER)
        name = self.governance.CreatePrincipal(
            g.CreatePrincipalRequest(principal_id="alice", principal=principal), metadata=admin
        ).name
        token = self.governance.CreateCredential(g.CreateCredentialRequest(parent=name), metadata=admin).token
        self.meta = (("authorization", f"Bearer {token}"),)
        self.principal = str(name)
        self.key_id = self.governance.CreateSigningKey(g.CreateSigningKeyRequest(parent=name), metadata=admin).key_id

    def trust(self, market: Market) -> None:
        """The buyer's admin copies M's marketplace key and log policy into its trust root (a new version)."""
        published = market.governance.GetTrustRoot(g.GetTrustRootRequest(), metadata=market.target.metadata)
        theirs = parse_trust_root(parse_envelope(published.signed_envelope).payload)
        current = self.governance.GetTrustRoot(g.GetTrustRootRequest(), metadata=self.target.metadata)
        ours = parse_trust_root(parse_envelope(current.signed_envelope).payload)
        sellers = theirs.role("marketplace").key_ids
        keys = {**ours.keys, **{k: theirs.keys[k] for k in sellers}}
        roles = {**ours.roles, "marketplace": Role(sellers, 1)}
        root = TrustRoot(ours.version + 1, ours.expires, keys, roles, theirs.marketplace_logs)
        envelope = Envelope(TRUST_ROOT_PAYLOAD_TYPE, root.payload())
        request = g.UpdateTrustRootRequest(signed_envelope=envelope.to_json(), add_node_signature=True)
        self.governance.UpdateTrustRoot(request, metadata=self.target.metadata)

    def space(self, space_id: str) -> str:
        request = g.CreateSpaceRequest(space_id=space_id)
        return str(self.governance.CreateSpace(request, metadata=self.meta).name)

    def import_release(self, space: str, license_: m.License, path: Path) -> int:
        """ImportBundle of the release file with its grant and proof, as alice; the cubes created."""

        def requests() -> Iterator[i.ImportBundleRequest]:
            with open(path, "rb") as handle:
                granted = i.ReleaseLicense(grant=license_.grant_envelope, proof=license_.tlog_proof)
                yield i.ImportBundleRequest(parent=space, license=granted, chunk=handle.read(CHUNK))
                while chunk := handle.read(CHUNK):
                    yield i.ImportBundleRequest(chunk=chunk)

        reply = self.interchange.ImportBundle(requests(), timeout=TIMEOUT, metadata=self.meta)
        if reply.reembedded_count:
            raise RuntimeError(f"the import re-embedded {reply.reembedded_count} cubes: the vectors differ")
        return int(reply.created_count)

    def search(self, space: str, vector: np.ndarray) -> vs.SearchCubesResponse:
        request = vs.SearchCubesRequest(parent=space, vector=vs.Vector(values=vector.tolist()), top_k=10)
        reply: vs.SearchCubesResponse = self.vault.SearchCubes(request, timeout=60, metadata=self.meta)
        return reply

    def lexical(self, space: str, text: str) -> vs.SearchCubesResponse:
        request = vs.SearchCubesRequest(parent=space, text=text, top_k=10, mode=vs.SEARCH_MODE_LEXICAL)
        reply: vs.SearchCubesResponse = self.vault.SearchCubes(request, timeout=60, metadata=self.meta)
        return reply

    def recall(self, space: str, query: str) -> sc.RecallPlan:
        request = sc.RecallRequest(
            parent=space, query=query, token_budget=2000, max_items=10, mode=vs.SEARCH_MODE_LEXICAL
        )
        reply: sc.RecallPlan = self.scheduler.Recall(request, timeout=60, metadata=self.meta)
        return reply

    def uses(self, license_: m.License) -> dict[str, int]:
        """The uses the node counted of the held license, per action (written or still in memory)."""
        held = self.held_licenses.GetHeldLicense(h.GetHeldLicenseRequest(name=held_name(license_)), metadata=self.meta)
        return {a.action: int(a.uses) for a in held.actions}

    def audited(self, license_: m.License, action: str) -> int:
        """The audit events written of the held license's uses for ``action`` (one per use), as the admin."""
        wanted = f'method = "license.{action}" AND resource = "{held_name(license_)}"'
        count, token = 0, ""
        while True:
            request = g.ListAuditEventsRequest(page_size=1000, page_token=token, filter=wanted)
            reply = self.governance.ListAuditEvents(request, timeout=60, metadata=self.target.metadata)
            count += len(reply.events)
            if not (token := reply.next_page_token):
                return count

    def verify_audit(self) -> int:
        """The number of events in the audit chain, which must verify."""
        reply = self.governance.VerifyAuditLog(g.VerifyAuditLogRequest(), timeout=600, metadata=self.target.metadata)
        if not reply.verified:
            raise RuntimeError(f"the audit log breaks at {reply.first_broken_sequence}: {reply.problem}")
        return int(reply.events_checked)

    def close(self) -> None:
        self.channel.close()


def held_name(license_: m.License) -> str:
    return "heldLicenses/" + license_.grant_digest.removeprefix("sha256:")


def metered_uses(buyer: Buyer, licenses: dict[str, m.License]) -> dict[str, dict[str, int]]:
    """The searches and recalls each metered license counted so far."""
    counted = {key: buyer.uses(held) for key, held in licenses.items()}
    return {key: {kind: uses.get(kind, 0) for kind in ("search", "recall")} for key, uses in counted.items()}


def check_counted(
    buyer: Buyer, licenses: dict[str, m.License], before: dict[str, dict[str, int]], calls: int, timeout: float = 60
) -> dict[str, Any]:
    """Checks that each metered license counted ``calls`` more searches and recalls, and an audit event per use.

    The count-limited license's events are written before each answer leaves, so they must all be there at once;
    the unlimited license's are written by the node's batches, so this waits (on the events listed) until the
    batch holding the last use has committed. Returns the counts and how many events the batches still owed.
    """
    after = metered_uses(buyer, licenses)
    for key in licenses:
        counted = {kind: after[key][kind] - before[key][kind] for kind in ("search", "recall")}
        if counted != {"search": calls, "recall": calls}:
            raise RuntimeError(f"the {key} space's license counted {counted}, expected {calls} each")
    for kind in ("search", "recall"):
        written = buyer.audited(licenses["limited"], kind)
        if written != after["limited"][kind]:
            raise RuntimeError(f"the count-limited license has {written} {kind} events at once, not one per use")
    owed = {kind: after["licensed"][kind] - buyer.audited(licenses["licensed"], kind) for kind in ("search", "recall")}
    deadline = time.monotonic() + timeout
    for kind in ("search", "recall"):
        while (written := buyer.audited(licenses["licensed"], kind)) != after["licensed"][kind]:
            if written > after["licensed"][kind] or time.monotonic() > deadline:
                raise RuntimeError(f"the batched license has {written} {kind} events, not one per use")
            time.sleep(0.1)
    return {"uses": after, "batched_events_owed_at_end": owed}


def until_lexical(buyer: Buyer, space: str, number: int, timeout: float = 120) -> None:
    """Waits until BM25 finds cube ``memory <number>:`` in ``space`` (BM25 takes new cubes at each refresh)."""
    deadline = time.monotonic() + timeout
    wanted = f"memory {number}:"
    while not any(r.cube.plaintext.text.startswith(wanted) for r in buyer.lexical(space, str(number)).results):
        if time.monotonic() > deadline:
            raise RuntimeError(f"BM25 does not find {wanted!r} in {space} after {timeout:.0f} s")
        time.sleep(0.1)


def queried(
    buyer: Buyer,
    spaces: dict[str, str],
    vectors: np.ndarray,
    texts: list[str],
    calls: int,
    warmup: int,
) -> dict[str, dict[str, Any]]:
    """SearchCubes and Recall on each space with the same queries, interleaved call by call (the order rotates).

    Per space: p50/p95 of each kind and the mean number of results, which shows what the narrowing left.
    """
    keys = list(spaces)
    timed: dict[str, dict[str, list[float]]] = {k: {"search": [], "recall": []} for k in keys}
    found: dict[str, dict[str, int]] = {k: {"search": 0, "recall": 0} for k in keys}
    for n in range(warmup + calls):
        shift = n % len(keys)
        for key in keys[shift:] + keys[:shift]:
            called = time.perf_counter()
            hits = len(buyer.search(spaces[key], vectors[n % len(vectors)]).results)
            searched = time.perf_counter() - called
            called = time.perf_counter()
            items = len(buyer.recall(spaces[key], texts[n % len(texts)]).items)
            recalled = time.perf_counter() - called
            if n >= warmup:
                timed[key]["search"].append(searched)
                timed[key]["recall"].append(recalled)
                found[key]["search"] += hits
                found[key]["recall"] += items
    kinds = ("search", "recall")
    return {
        key: {kind: latency(timed[key][kind]) | {"results_mean": found[key][kind] / calls} for kind in kinds}
        for key in keys
    }


def part_buyer(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Marketplace M (no witness) and buyer B (following M): Search and Recall with and without metering."""
    work.mkdir()
    n, half = args.buyer_cubes, args.buyer_cubes // 2
    calls, warmup = args.buyer_calls, args.warmup
    out: dict[str, Any] = {"cubes": n, "calls": calls, "warmup": warmup}
    procs: list[Any] = []
    closers: list[Market | Buyer] = []
    logs = {name: work / f"{name}.log" for name in ("market", "buyer")}
    base = {"MEMOS_MARKETPLACE_ENABLED": "true", "MEMOS_MARKETPLACE_LOG_ORIGIN": ORIGIN}
    try:
        print(f"[buyer] market: {n} cubes, releases of {n}, {half} and {n - half} ...", file=sys.stderr)
        proc, target = start_server(work / "market", DIM, logs["market"], env=base)
        procs.append(proc)
        market = Market(target)
        closers.append(market)
        texts, vectors = buyer_cubes(n, args.seed)
        names = create_cubes(market.vault, market.meta["owner"], market.space, texts, vectors)
        releases = {
            "whole": ("1.0.0", OPEN_TERMS, ()),  # every cube, search and recall permitted
            "open_half": ("1.1.0", OPEN_TERMS, names[:half]),
            "closed_half": ("1.2.0", CLOSED_TERMS, names[half:]),  # import only: blocked for search and recall
            "limited": ("1.3.0", LIMITED_TERMS, ()),  # every cube, search and recall up to 10^9 times
        }
        bundles: dict[str, Path] = {}
        published: dict[str, str] = {}
        for key, (version, terms, chosen) in releases.items():
            bundles[key] = work / f"{key}.bundle"
            market.export("facts", version, bundles[key], terms, chosen)
            published[key] = market.publish("facts", version, bundles[key], terms).release.name
        principal = principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER)
        follower = market.governance.CreatePrincipal(
            g.CreatePrincipalRequest(principal_id="buyer-node", principal=principal), metadata=target.metadata
        ).name
        token = market.governance.CreateCredential(
            g.CreateCredentialRequest(parent=follower), metadata=target.metadata
        ).token
        token_file = work / "follow.token"
        token_file.write_text(token)
        token_file.chmod(0o600)

        print("[buyer] buyer node: the plain space and the licensed import ...", file=sys.stderr)
        following = {
            "MEMOS_MARKETPLACE_FOLLOW": target.address,
            "MEMOS_MARKETPLACE_FOLLOW_TOKEN_FILE": str(token_file),
            "MEMOS_MARKETPLACE_SYNC_SECONDS": "3600",  # one sync at start; none during the timed calls
            "MEMOS_ALLOW_PLAINTEXT_PEERS": "true",
        }
        proc, buyer_target = start_server(work / "buyer", DIM, logs["buyer"], env=following)
        procs.append(proc)
        buyer = Buyer(buyer_target)
        closers.append(buyer)
        buyer.trust(market)
        licenses = {key: market.acquire(published[key], 0, buyer.key_id, licensee=buyer.principal) for key in releases}
        spaces = {
            "unlicensed": buyer.space("plain"),
            "licensed": buyer.space("licensed"),
            "limited": buyer.space("limited"),
        }
        started = time.perf_counter()
        create_cubes(buyer.vault, buyer.meta, spaces["unlicensed"], texts, vectors)
        out["create_s"] = time.perf_counter() - started
        started = time.perf_counter()
        if buyer.import_release(spaces["licensed"], licenses["whole"], bundles["whole"]) != n:
            raise RuntimeError("the licensed import did not create every cube")
        out["import_s"] = time.perf_counter() - started
        if buyer.import_release(spaces["limited"], licenses["limited"], bundles["limited"]) != n:
            raise RuntimeError("the count-limited import did not create every cube")
        for space in spaces.values():
            until_lexical(buyer, space, n - 1)
        rng = np.random.default_rng(args.seed + 1)
        queries = rng.standard_normal((max(calls + warmup, 1), DIM), dtype=np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        words = [
            f"{WORDS[int(rng.integers(1, len(WORDS)))]} {WORDS[int(rng.integers(1, len(WORDS)))]} "
            f"{int(rng.integers(n))}"
            for _ in range(calls + warmup)
        ]

        print(f"[buyer] phase 1: unlicensed and licensed spaces, {calls} calls each ...", file=sys.stderr)
        metered = {"licensed": licenses["whole"], "limited": licenses["limited"]}
        before = metered_uses(buyer, metered)
        out["phase1"] = queried(buyer, spaces, queries, words, calls, warmup)
        out["counted_phase1"] = check_counted(buyer, metered, before, calls + warmup)

        print("[buyer] the blocked license: two half releases in one space ...", file=sys.stderr)
        spaces["mixed"] = buyer.space("mixed")
        for key in ("closed_half", "open_half"):  # the open half last: once BM25 finds it, it has both
            buyer.import_release(spaces["mixed"], licenses[key], bundles[key])
        until_lexical(buyer, spaces["mixed"], half - 1)
        print(f"[buyer] phase 2: with a blocked license held, {calls} calls each ...", file=sys.stderr)
        before = metered_uses(buyer, metered)
        out["phase2"] = queried(buyer, spaces, queries, words, calls, warmup)
        out["counted_phase2"] = check_counted(buyer, metered, before, calls + warmup)
        out["audit_events"] = buyer.verify_audit()
        closed = buyer.uses(licenses["closed_half"])
        if closed.get("search", 0) or closed.get("recall", 0):
            raise RuntimeError(f"the blocked license counted uses: {closed}")
        for kind in ("search", "recall"):
            if not out["phase2"]["mixed"][kind]["results_mean"]:
                raise RuntimeError(f"{kind} found nothing in the mixed space's open half")
        shown = {r.cube.license.held_license for q in queries[:5] for r in buyer.search(spaces["mixed"], q).results}
        if shown != {"heldLicenses/" + licenses["open_half"].grant_digest.removeprefix("sha256:")}:
            raise RuntimeError(f"the mixed space's search shows cubes of {shown}, not only the open half's")
        for closer in closers:
            closer.close()
        closers.clear()
        while procs:
            stop(procs.pop())
    except BaseException:
        for closer in closers:
            closer.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for name, path in logs.items():
            if path.exists():
                print(f"--- {name} log (tail)\n{path.read_text()[-3000:]}", file=sys.stderr)
        raise
    return out


# -- report ------------------------------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> None:
    mach = results["machine"]
    load = tuple(round(x, 2) for x in mach["loadavg_at_start"])
    print(f"\nmachine: {mach['nproc']} cores, {mach['cpu']}, load at start {load}; code {mach['code']}")
    a = results["appends"]
    print(f"\n1. log appends (in process, durable; {a['threads']} threads for one-by-one)")
    for kind, raw in (("batched", "raw_batched_entries_per_s"), ("single", "raw_single_entries_per_s")):
        row, base = a[kind], a[raw]
        label = f"batches of {a['batch']}" if kind == "batched" else "one per call"
        print(
            f"  {label:18} {row['entries_per_s']:9.0f} entries/s  p50 {row['p50_ms']:8.2f} ms  p95 "
            f"{row['p95_ms']:8.2f} ms | raw sha256+write+fsync {base:9.0f} entries/s  ratio "
            f"{row['entries_per_s'] / base:.3f}"
        )
    p = results["proofs"]
    print(
        f"\n2. proofs at {p['leaves']} leaves (filled in {p['fill_s']:.0f} s, {p['fill_entries_per_s']:.0f} "
        f"entries/s); ceil(log2 n) = {p['ceil_log2_n']}"
    )
    for kind in ("inclusion", "consistency"):
        row = p[kind]
        print(
            f"  {kind:12} p50 {row['p50_ms']:7.3f} ms  hashes max {row['hashes_max']} mean {row['hashes_mean']:.1f}"
            f"  verify p50 {row['verify_p50_ms']:.3f} ms | node hashes p50 {row['baseline_p50_ms']:.4f} ms  ratio "
            f"{row['p50_ms'] / row['baseline_p50_ms']:.0f}"
        )
    v = results["verify"]
    ratio = v["proofs_per_s"] / v["ed25519_pairs_per_s"]
    print(
        f"\n3. offline verify_proof {v['proofs_per_s']:.0f}/s | raw Ed25519 x{v['signatures_per_proof']} "
        f"{v['ed25519_pairs_per_s']:.0f}/s  ratio {ratio:.2f}"
    )
    s = results["served"]
    print("\n4. AcquireLicense | GetCheckpoint (same server and channel)")
    for kind in ("no_witness", "one_witness"):
        acq, triv = s[kind]["acquire"], s[kind]["get_checkpoint"]
        print(
            f"  {kind:12} p50 {acq['p50_ms']:7.2f} ms p95 {acq['p95_ms']:7.2f} ms | p50 {triv['p50_ms']:6.2f} ms "
            f"p95 {triv['p95_ms']:6.2f} ms  ratio p50 {acq['p50_ms'] / triv['p50_ms']:.1f}"
        )
    pub = s["publish"]
    ratio = pub["publish_mb_s"] / pub["sha256sum_mb_s"]
    print(
        f"\n5. PublishRelease of {pub['cubes']} cubes ({pub['bundle_bytes'] / 1e6:.1f} MB): {pub['publish_mb_s']:.1f} "
        f"MB/s in {pub['publish_s']:.2f} s | sha256sum {pub['sha256sum_mb_s']:.1f} MB/s, hashlib "
        f"{pub['hashlib_mb_s']:.1f} MB/s; ratio {ratio:.2f} (aim >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})"
    )
    report_buyer(results["buyer"])


def report_buyer(b: dict[str, Any]) -> None:
    print(
        f"\n6. the buyer's node, {b['cubes']} cubes per space, {b['calls']} calls per space and kind (the licensed "
        f"import took {b['import_s']:.1f} s, BatchCreateCubes of the same cubes {b['create_s']:.1f} s)"
    )
    rows = (
        ("phase1", "unlicensed", "(a) unlicensed space"),
        ("phase1", "licensed", "(b) licensed, uses written in batches"),
        ("phase1", "limited", "(b2) count-limited, each use written"),
        ("phase2", "unlicensed", "(c) unlicensed, a blocked license held"),
        ("phase2", "licensed", "(b') licensed, a blocked license held"),
        ("phase2", "limited", "(b2') count-limited, a blocked license held"),
        ("phase2", "mixed", "(d) half the cubes blocked"),
    )
    for kind, label in (("search", "SearchCubes top_k 10"), ("recall", "Recall (lexical, 10 items)")):
        print(f"  {label}")
        base = b["phase1"]["unlicensed"][kind]
        for phase, space, name in rows:
            row = b[phase][space][kind]
            print(
                f"    {name:44} p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f} ms  results "
                f"{row['results_mean']:5.1f} | x(a) p50 {row['p50_ms'] / base['p50_ms']:.2f} p95 "
                f"{row['p95_ms'] / base['p95_ms']:.2f}"
            )
    owed = [b[phase]["batched_events_owed_at_end"] for phase in ("counted_phase1", "counted_phase2")]
    print(
        f"  every use counted and audited; the batched license's events still unwritten as each phase ended: "
        f"{owed[0]}, {owed[1]}; the audit chain verified, {b['audit_events']} events"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small sizes for a quick check (under a minute)")
    parser.add_argument("--append-batch", type=int, help="entries per batched append (default 1000; smoke 200)")
    parser.add_argument("--append-batches", type=int, help="batched appends (default 10; smoke 3)")
    parser.add_argument("--single-appends", type=int, help="one-entry appends, all threads (default 2000; smoke 200)")
    parser.add_argument("--threads", type=int, default=4, help="threads of the one-entry appends")
    parser.add_argument("--proof-leaves", type=int, help="leaves of the proof log (default 150000; smoke 5000)")
    parser.add_argument("--fill-batch", type=int, default=10_000, help="entries per append while filling")
    parser.add_argument("--proofs", type=int, help="proofs of each kind timed (default 200; smoke 30)")
    parser.add_argument("--checked-consistency", type=int, default=20, help="consistency proofs also verified")
    parser.add_argument("--verify-seconds", type=float, help="seconds per verification loop (default 3; smoke 1)")
    parser.add_argument("--licenses", type=int, help="timed AcquireLicense calls per server (default 200; smoke 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls before them")
    parser.add_argument("--cubes", type=int, help="cubes of the published release (default 10000; smoke 500)")
    parser.add_argument("--buyer-cubes", type=int, help="cubes per space on the buyer (default 10000; smoke 500)")
    parser.add_argument("--buyer-calls", type=int, help="timed calls per space and kind (default 300; smoke 30)")
    parser.add_argument(
        "--only", choices=("appends", "proofs", "served", "buyer"), help="run one part (served includes 3)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep-data", action="store_true", help="keep the temp data, server logs and bundle")
    args = parser.parse_args(argv)
    sizes = {
        "append_batch": (1000, 200),
        "append_batches": (10, 3),
        "single_appends": (2000, 200),
        "proof_leaves": (150_000, 5000),
        "proofs": (200, 30),
        "verify_seconds": (3.0, 1.0),
        "licenses": (200, 20),
        "cubes": (10_000, 500),
        "buyer_cubes": (10_000, 500),
        "buyer_calls": (300, 30),
    }
    for name, (full, smoke) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)

    results: dict[str, Any] = {"machine": machine(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    results["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    tmp = Path(tempfile.mkdtemp(prefix="memos-bench-marketplace-"))
    started = time.perf_counter()
    parts: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("appends", lambda: part_appends(args, tmp / "appends")),
        ("proofs", lambda: part_proofs(args, tmp / "proofs")),
        ("served", lambda: part_served(args, tmp / "served")),
        ("buyer", lambda: part_buyer(args, tmp / "buyer")),
    ]
    try:
        for name, run in parts:
            if args.only in (None, name):
                print(f"[{name}] ...", file=sys.stderr)
                results[name] = run()
        if "served" in results:
            results["verify"] = part_verify(args, results["served"]["sample"])
    finally:
        if args.keep_data:
            print(f"data, logs and bundle kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["total_s"] = time.perf_counter() - started
    if args.only is None:
        report(results)
    elif args.only == "buyer":
        report_buyer(results["buyer"])
    else:
        print(json.dumps({k: v for k, v in results.items() if k not in ("machine", "config")}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
