"""A child process that appends to the transparency log from several threads and dies by SIGKILL.

Run as ``python _log_child.py DATA_DIR THREADS APPENDS``: it opens the vault of DATA_DIR (no embedder), and
THREADS threads each append APPENDS batches of one to three entries, printing ``acked INDEX ENTRY_HEX`` for
every entry once its append returned. When all are acknowledged it holds the vault's single writer inside an
open transaction, queues one more append (``entry_bytes(-1, ...)``) that can therefore never commit, prints
``queued``, and kills itself with SIGKILL: no clean close, no checkpoint of the database file, so the parent
reads back only what the write-ahead log kept.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from memos_grpc.marketplace.log import TransparencyLog
from memos_grpc.node import Node
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.settings import Settings
from memos_grpc.store.database import Connection
from memos_grpc.transparency.note import sign_note

ORIGIN = "memos.test/log"
KEY = SigningKey.from_seed(bytes(range(32)))


def open_vault(data_dir: Path) -> Node:
    settings = Settings.load(environ={}, overrides={"data_dir": data_dir, "embedder": "none", "vector_dimension": 8})
    return Node(settings)


def sign(body: str) -> str:
    return sign_note(body, ORIGIN, KEY)


def entry_bytes(thread: int, batch: int, n: int) -> bytes:
    return f"memstore-entry/v1\ntype publish\nthread {thread} batch {batch} n {n}\n".encode()


def main(data_dir: Path, threads: int, appends: int) -> None:
    vault = open_vault(data_dir)
    log = TransparencyLog(vault.context, ORIGIN, sign)
    printing = threading.Lock()

    def work(thread: int) -> None:
        for batch in range(appends):
            entries = [entry_bytes(thread, batch, n) for n in range(1 + (thread + batch) % 3)]
            indexes = log.append(entries)
            with printing:
                for index, entry in zip(indexes, entries, strict=True):
                    print("acked", index, entry.hex(), flush=True)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    writer_busy = threading.Event()
    never = threading.Event()

    def hold_the_writer(_: Connection) -> None:
        writer_busy.set()
        never.wait()  # the process dies here, inside an open transaction

    vault.context.database.submit(hold_the_writer)
    if not writer_busy.wait(timeout=30):
        raise SystemExit("the writer never took the blocking write")
    log.submit([entry_bytes(-1, 0, n) for n in range(3)])  # queued behind the held writer: never committed
    print("queued", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
