"""Start-up repair benchmark: proving every indexed vector against DuckDB, beside a label-only check.

Run by hand, never in the test suite::

    .venv/bin/python bench/repair.py                  # 100,000 cubes
    .venv/bin/python bench/repair.py --cubes 10000    # smoke run

It fills a vault in this process (``embedder = none``, random 384-d client vectors, BatchCreateCubes
through ``Cubes.batch_create``), closes it (the index is saved), and reopens it, timing the whole
start-up. Then, on the open vault, it times ``repair_indexes`` (which reads every stored vector and
compares it with the one the index holds under its label) beside the baseline, the repair as it was
before that proof (the catalog reloaded, then the stored labels against the index's labels, with no
vector read), each ``--repeat`` times in turn.
Only the ratio within one run means anything on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc.governance.caller import Caller
from memos_grpc.node import Node
from memos_grpc.settings import Settings
from memos_grpc.store.repair import load_catalog, repair_indexes
from memos_grpc.vault.context import VaultContext

SPACE = "bench"
ADMIN = Caller(principal="principals/admin", admin=True, method="token")


def settings_for(data_dir: Path) -> Settings:
    return Settings.load(
        environ={},
        overrides={"data_dir": data_dir, "embedder": "none", "vector_dimension": 384, "index_flush_seconds": 3600},
    )


def fill(data_dir: Path, cubes: int, batch: int, seed: int) -> None:
    vault = Node(settings_for(data_dir))
    try:
        vault.spaces.create(SPACE, space_pb2.Space(), ADMIN.principal)
        rng = np.random.default_rng(seed)
        for start in range(0, cubes, batch):
            count = min(batch, cubes - start)
            vectors = rng.normal(size=(count, 384)).astype(np.float32)
            requests = [
                v.CreateCubeRequest(
                    cube_id=f"c{start + n}",
                    cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=f"cube {start + n}")),
                    vector=v.Vector(values=vectors[n].tolist()),
                )
                for n in range(count)
            ]
            vault.cubes.batch_create(v.BatchCreateCubesRequest(parent=f"spaces/{SPACE}", requests=requests), ADMIN)
    finally:
        vault.close()


def label_only_repair(context: VaultContext) -> int:
    """The baseline, the repair as it was: the search catalog reloaded, then which stored labels the index
    lacks and which it holds in excess, by label alone (no vector read)."""
    index = context.indexes.get(SPACE)
    with context.database.read() as cursor:
        roles = {
            str(p): int(r)
            for p, r in cursor.execute("SELECT principal, role FROM space_roles WHERE space_id = ?", [SPACE]).fetchall()
        }
    load_catalog(context, SPACE, roles)
    with context.database.read() as cursor:
        stored = {
            int(r[0])
            for r in cursor.execute(
                "SELECT vec_id FROM cubes WHERE space_id = ? AND vec_id IS NOT NULL", [SPACE]
            ).fetchall()
        }
    held = index.labels()
    return len(stored - held) + len(held - stored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cubes", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="memos-repair-") as temp:
        data_dir = Path(temp) / "data"
        started = time.perf_counter()
        fill(data_dir, args.cubes, args.batch, args.seed)
        print(f"filled {args.cubes:,} cubes in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        vault = Node(settings_for(data_dir))
        startup = time.perf_counter() - started
        try:
            proof, labels = [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                report = repair_indexes(vault.context)
                proof.append(time.perf_counter() - started)
                assert (report.added, report.replaced, report.removed) == (0, 0, 0), report
                started = time.perf_counter()
                assert label_only_repair(vault.context) == 0
                labels.append(time.perf_counter() - started)
        finally:
            vault.close()
    p, b = statistics.median(proof), statistics.median(labels)
    print(f"start-up (vault open, repair included): {startup:.2f} s")
    print(f"repair_indexes, every vector proved: median {p:.2f} s ({min(proof):.2f}-{max(proof):.2f})")
    print(f"baseline, labels only:               median {b:.2f} s ({min(labels):.2f}-{max(labels):.2f})")
    print(f"ratio proof / labels only: {p / b:.2f}")


if __name__ == "__main__":
    main()
