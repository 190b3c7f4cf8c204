"""A child process that loses a batch's commit after its vectors reached a saved index file.

Run as ``python _lost_commit.py DATA_DIR SPACE_ID COUNT SEED``: it opens the vault
of DATA_DIR (no embedder, 384-dimensional vectors), holds the single DuckDB
writer busy, sends a BatchCreateCubes of COUNT cubes with client vectors, waits
until the batch's vectors are in the space's hnswlib index (vectors are indexed
while the writer commits), saves the index file, and kills itself with SIGKILL
before the batch can commit. It prints the labels the batch's vectors took.

This is the interleaving of a periodic index save between add and commit,
forced instead of hoped for: the writer is blocked on an event, and the
save waits on the index's own labels.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc.governance.caller import Caller
from memos_grpc.node import Node
from memos_grpc.settings import Settings
from memos_grpc.store.database import Connection

DIMENSION = 384


def lost_vectors(count: int, seed: int) -> list[np.ndarray]:
    """The unit vectors of the lost batch (the test makes the same ones to search for them)."""
    rng = np.random.default_rng(seed)
    vectors = [rng.normal(size=DIMENSION).astype(np.float32) for _ in range(count)]
    return [vector / np.linalg.norm(vector) for vector in vectors]


def main(data_dir: Path, space_id: str, count: int, seed: int) -> None:
    settings = Settings.load(
        environ={},
        overrides={
            "data_dir": data_dir,
            "embedder": "none",
            "vector_dimension": DIMENSION,
            "index_flush_seconds": 3600,
            # The database the test's servers use for this data directory, when they run on PostgreSQL.
            "postgres_url": os.environ.get("MEMOS_POSTGRES_URL", ""),
        },
    )
    vault = Node(settings)
    index = vault.context.indexes.get(space_id)
    before = index.labels()

    writer_busy = threading.Event()
    never = threading.Event()

    def hold_the_writer(_: Connection) -> None:
        writer_busy.set()
        never.wait()  # the process dies here, inside an open transaction

    vault.context.database.submit(hold_the_writer)
    if not writer_busy.wait(timeout=30):
        raise SystemExit("the writer never took the blocking write")

    requests = [
        v.CreateCubeRequest(
            parent=f"spaces/{space_id}",
            cube_id=f"lost-{n}",
            cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=f"lost {n}")),
            vector=v.Vector(values=vector.tolist()),
        )
        for n, vector in enumerate(lost_vectors(count, seed))
    ]
    batch = v.BatchCreateCubesRequest(parent=f"spaces/{space_id}", requests=requests)
    admin = Caller(principal="principals/admin", admin=True, method="token")
    threading.Thread(target=vault.cubes.batch_create, args=(batch, admin), daemon=True).start()

    # The batch's vectors are in the index once its labels are: wait on that, then save the index file.
    deadline = time.monotonic() + 30
    while len(index.labels() - before) < count:
        if time.monotonic() > deadline:
            raise SystemExit("the batch's vectors never reached the index")
        time.sleep(0.01)
    vault.context.indexes.flush()
    print("labels", *sorted(index.labels() - before), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
