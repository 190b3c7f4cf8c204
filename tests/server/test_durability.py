"""Durability: an RPC that returned OK survives kill -9, and derived indexes repair themselves.

Every test runs the real server as a child process (``_process.ServerProcess``)
on a data directory of its own, kills it with SIGKILL (no shutdown code runs:
no index save, no checkpoint) and starts it again on the same directory.
DuckDB is the source of truth; the hnswlib index files are saved only every
``index_flush_seconds`` (set to an hour here, so the file on disk is stale or
absent at kill time) and must be brought back in line with DuckDB at start-up.
The servers run without an embedder: clients send their own vectors.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import hnswlib
import numpy as np
import numpy.typing as npt
import pytest
from _lost_commit import lost_vectors
from _process import ServerFactory, ServerProcess, child_env, wait_until
from memos_test_support import BACKEND_VARIABLE, reason_of

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub

FloatArray = npt.NDArray[np.float32]

SPACE_ID = "durable"
PARENT = f"spaces/{SPACE_ID}"
DIMENSION = 384
#: Never save indexes in the background: at kill time the index file is absent or stale.
NO_FLUSH = {"MEMOS_INDEX_FLUSH_SECONDS": "3600"}
#: A search for a cube's own vector scores at least this (cosine similarity).
SELF_SCORE = 0.999
REPAIR_LINE = re.compile(
    r"vector indexes checked against DuckDB: (?P<spaces>\d+) spaces, (?P<vectors>\d+) vectors, "
    r"(?P<added>\d+) added, (?P<removed>\d+) removed, (?P<dropped>\d+) orphan index files dropped, "
    r"(?P<replaced>\d+) stale vectors replaced"
)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path)
    yield factory
    factory.close()


# -- helpers -------------------------------------------------------------------


def unit_vector(rng: np.random.Generator) -> FloatArray:
    vector = rng.normal(size=DIMENSION).astype(np.float32)
    return vector / np.linalg.norm(vector)


def cube_name(cube_id: str) -> str:
    return f"{PARENT}/cubes/{cube_id}"


def cube_request(cube_id: str, vector: FloatArray, writer: int = 0) -> v.CreateCubeRequest:
    return v.CreateCubeRequest(
        parent=PARENT,
        cube_id=cube_id,
        cube=cube_pb2.MemCube(
            plaintext=cube_pb2.PlaintextPayload(text=f"memory {cube_id}"),
            labels={"writer": str(writer)},
            tags=["durability"],
        ),
        vector=v.Vector(values=vector.tolist()),
    )


def create_space(server: ServerProcess) -> None:
    server.governance().CreateSpace(g.CreateSpaceRequest(space_id=SPACE_ID), timeout=10)


def create_cubes(stub: VaultServiceStub, vectors: Mapping[str, FloatArray]) -> dict[str, cube_pb2.MemCube]:
    """Creates one cube per (id, vector) in batches; returns the acknowledged cubes by name."""
    created: dict[str, cube_pb2.MemCube] = {}
    items = list(vectors.items())
    for start in range(0, len(items), 100):
        chunk = items[start : start + 100]
        reply = stub.BatchCreateCubes(
            v.BatchCreateCubesRequest(parent=PARENT, requests=[cube_request(i, vec) for i, vec in chunk]),
            timeout=30,
        )
        created.update({c.name: c for c in reply.cubes})
    return created


#: Whether the servers keep vector indexes apart from the database (hnswlib files, repaired at start-up): on the
#: embedded backend. On PostgreSQL the database's rows are the index, so there is no file and nothing to repair,
#: and the tests check what was stored, as on DuckDB, but not the repair.
DERIVED_INDEX = os.environ.get(BACKEND_VARIABLE) != "postgres"
#: The environment of a server that runs on the embedded backend whichever the suite runs on: for the tests of
#: the hnswlib index files themselves.
EMBEDDED = {"MEMOS_POSTGRES_URL": ""}


def stored_then_stopped(
    servers: ServerFactory, vectors: Mapping[str, FloatArray], env: Mapping[str, str] = NO_FLUSH
) -> ServerProcess:
    """A server that stored one cube per (id, vector) and then stopped cleanly (its index saved)."""
    first = servers.start(env=env)
    create_space(first)
    create_cubes(first.vault(), vectors)
    assert first.terminate() == 0  # a clean stop saves the index: every cube is in the file on disk
    return first


def list_cubes(stub: VaultServiceStub, page_size: int = 250) -> dict[str, cube_pb2.MemCube]:
    """Every cube of the space, by name, following next_page_token to the end."""
    found: dict[str, cube_pb2.MemCube] = {}
    token = ""
    while True:
        page = stub.ListCubes(v.ListCubesRequest(parent=PARENT, page_size=page_size, page_token=token), timeout=30)
        for cube in page.cubes:
            assert cube.name not in found, f"{cube.name} listed twice"
            found[cube.name] = cube
        token = page.next_page_token
        if not token:
            return found


def search(stub: VaultServiceStub, vector: FloatArray, top_k: int = 5) -> list[tuple[str, float]]:
    reply = stub.SearchCubes(
        v.SearchCubesRequest(parent=PARENT, vector=v.Vector(values=vector.tolist()), top_k=top_k), timeout=30
    )
    return [(hit.cube.name, hit.score) for hit in reply.results]


def unfindable_by_own_vector(stub: VaultServiceStub, vectors: Mapping[str, FloatArray]) -> dict[str, object]:
    """The cubes (by name) whose own vector does not find them as the top hit with score ~1."""

    def check(item: tuple[str, FloatArray]) -> tuple[str, object] | None:
        name, vector = item
        hits = search(stub, vector)
        if not hits or hits[0][0] != name or hits[0][1] < SELF_SCORE:
            return name, hits[:2]
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [r for r in pool.map(check, vectors.items()) if r is not None]
    return dict(failures)


def get_cube(stub: VaultServiceStub, name: str) -> cube_pb2.MemCube | None:
    try:
        cube: cube_pb2.MemCube = stub.GetCube(v.GetCubeRequest(name=name), timeout=10)
        return cube
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def content(cube: cube_pb2.MemCube) -> cube_pb2.MemCube:
    """The cube without the fields that recall may legitimately change."""
    copy = cube_pb2.MemCube()
    copy.CopyFrom(cube)
    copy.ClearField("last_use_time")
    copy.ClearField("usage_count")
    return copy


def repair_report(server: ServerProcess) -> dict[str, int]:
    """The numbers of the start-up repair line of this server's log."""
    match = REPAIR_LINE.search(server.log_text())
    assert match is not None, f"no repair line in the log\n{server.log_tail()}"
    return {key: int(value) for key, value in match.groupdict().items()}


def index_file(data_dir: Path) -> Path:
    return data_dir / "index" / f"{SPACE_ID}.hnsw"


# -- kill -9 in the middle of a stream of writes -----------------------------------


@dataclass
class WriteLog:
    """What the writers attempted and what the server acknowledged, shared by their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Every cube id sent, with its batch (None for a CreateCube).
    attempted: dict[str, str | None] = field(default_factory=dict)
    batches: dict[str, list[str]] = field(default_factory=dict)
    vectors: dict[str, FloatArray] = field(default_factory=dict)
    #: Acknowledged cubes, by name, as the server returned them.
    acked: dict[str, cube_pb2.MemCube] = field(default_factory=dict)
    in_flight: int = 0
    killed: bool = False
    unexpected: list[str] = field(default_factory=list)


def run_writer(server: ServerProcess, log: WriteLog, writer: int, batched: bool, cycle: int = 0) -> None:
    """Creates cubes back to back (one per CreateCube, or 2..20 per BatchCreateCubes) until the kill."""
    rng = np.random.default_rng([cycle, writer])
    stub = server.vault()
    for seq in range(1_000_000):
        if batched:
            batch: str | None = f"b{writer}-{cycle}-{seq}"
            ids = [f"{batch}-{i}" for i in range(int(rng.integers(2, 21)))]
        else:
            batch, ids = None, [f"c{writer}-{cycle}-{seq}"]
        vectors = {cube_id: unit_vector(rng) for cube_id in ids}
        requests = [cube_request(cube_id, vectors[cube_id], writer) for cube_id in ids]
        with log.lock:
            if log.killed:
                return
            log.attempted.update(dict.fromkeys(ids, batch))
            log.vectors.update(vectors)
            if batch is not None:
                log.batches[batch] = ids
            log.in_flight += 1
        try:
            if batched:
                cubes = list(
                    stub.BatchCreateCubes(v.BatchCreateCubesRequest(parent=PARENT, requests=requests), timeout=20).cubes
                )
            else:
                cubes = [stub.CreateCube(requests[0], timeout=20)]
        except grpc.RpcError as exc:
            with log.lock:
                log.in_flight -= 1
                if not log.killed:
                    log.unexpected.append(f"{ids[0]}: {exc.code()} {exc.details()}")
            return
        with log.lock:
            log.in_flight -= 1
            log.acked.update({cube.name: cube for cube in cubes})


def write_until_kill9(server: ServerProcess, log: WriteLog, cycle: int = 0, acks: int = 400) -> None:
    """Four writers (two with batches) create cubes until ``acks`` more are acknowledged; then kill -9
    while at least one write is in flight."""
    start = len(log.acked)
    log.killed = False
    writers = [
        threading.Thread(target=run_writer, args=(server, log, n, batched, cycle), name=f"writer-{n}", daemon=True)
        for n, batched in enumerate([False, False, True, True])
    ]
    for thread in writers:
        thread.start()
    wait_until(lambda: len(log.acked) >= start + acks or log.unexpected, timeout=40, what=f"{acks} acknowledged cubes")
    assert not log.unexpected, f"writes failed before the kill: {log.unexpected[:5]}"
    time.sleep(random.uniform(0.0, 0.5))  # where in the stream the kill lands; any point must be safe

    def kill_while_writes_in_flight() -> bool:
        with log.lock:
            if log.in_flight == 0:
                return False
            log.killed = True
            server.kill9()
            return True

    wait_until(kill_while_writes_in_flight, timeout=10, what="a write in flight")
    for thread in writers:
        thread.join(timeout=30)
        assert not thread.is_alive(), f"{thread.name} hangs after the kill"
    assert not log.unexpected, f"writes failed before the kill: {log.unexpected[:5]}"
    assert server.process is not None and server.process.returncode == -9


def check_after_restart(stub: VaultServiceStub, log: WriteLog) -> dict[str, cube_pb2.MemCube]:
    """Every acknowledged cube is stored unchanged and is its own nearest neighbour; nothing else is
    stored but whole batches that were sent. Returns the stored cubes."""
    stored = list_cubes(stub)
    attempted = {cube_name(cube_id) for cube_id in log.attempted}
    unacked = attempted - set(log.acked)
    print(f"{len(log.acked)} acknowledged, {len(unacked)} unacknowledged, {len(stored)} stored")

    missing = sorted(set(log.acked) - set(stored))
    assert not missing, f"{len(missing)} acknowledged cubes lost by kill -9, e.g. {missing[:5]}"
    never_sent = sorted(set(stored) - attempted)
    assert not never_sent, f"cubes nobody created: {never_sent[:5]}"
    half_written = {
        batch: sum(cube_name(i) in stored for i in ids)
        for batch, ids in log.batches.items()
        if 0 < sum(cube_name(i) in stored for i in ids) < len(ids)
    }
    assert not half_written, f"batches stored in part (batch: cubes stored): {half_written}"

    for name, acked in log.acked.items():
        fetched = get_cube(stub, name)
        assert fetched is not None, f"GetCube cannot find acknowledged {name}"
        assert content(fetched) == content(acked), f"{name} changed across the kill"
    for name, cube in stored.items():
        assert cube.plaintext.text == f"memory {name.rsplit('/', 1)[1]}", f"{name} has another cube's text"

    vectors = {name: log.vectors[name.rsplit("/", 1)[1]] for name in stored}
    unfindable = unfindable_by_own_vector(stub, vectors)
    assert not unfindable, (
        f"{len(unfindable)} stored cubes not found by their own vector: {list(unfindable.items())[:3]}"
    )
    return stored


def test_acknowledged_writes_survive_kill9_mid_stream(servers: ServerFactory) -> None:
    server = servers.start(env=NO_FLUSH)
    create_space(server)
    log = WriteLog()
    write_until_kill9(server, log)
    assert not (DERIVED_INDEX and index_file(server.data_dir).exists()), "the index was saved with flushing off"

    restarted = servers.start(server.data_dir, env=NO_FLUSH)
    stored = check_after_restart(restarted.vault(), log)
    if DERIVED_INDEX:
        # Derived indexes repaired on their own: nothing was on disk, so every vector came from DuckDB.
        report = repair_report(restarted)
        assert report["added"] > 0
        assert report["added"] == report["vectors"] == len(stored), report


def test_acknowledged_writes_survive_repeated_kill9_while_the_index_is_saved(servers: ServerFactory) -> None:
    """Kill -9 cycles where the index is saved many times a second (between adds and commits) and
    cycles where it is never saved; after every restart each acknowledged cube is its own nearest neighbour."""
    fast_flush = {"MEMOS_INDEX_FLUSH_SECONDS": "0.05"}
    server = servers.start(env=fast_flush)
    create_space(server)
    log = WriteLog()
    for cycle, env in enumerate([fast_flush, NO_FLUSH, fast_flush, fast_flush]):
        write_until_kill9(server, log, cycle=cycle, acks=250)
        server = servers.start(server.data_dir, env=env)
        check_after_restart(server.vault(), log)


# -- deletes across kill -9 ------------------------------------------------------------


def test_deleted_cubes_stay_deleted_across_kill9(servers: ServerFactory) -> None:
    rng = np.random.default_rng(7)
    vectors = {f"cube-{n}": unit_vector(rng) for n in range(60)}
    first = stored_then_stopped(servers, vectors)
    assert index_file(first.data_dir).exists() or not DERIVED_INDEX

    second = servers.start(first.data_dir, env=NO_FLUSH)
    stub = second.vault()
    deleted = {cube_name(i): vectors[i] for i in random.Random(3).sample(sorted(vectors), 15)}
    for name in deleted:
        stub.DeleteCube(v.DeleteCubeRequest(name=name), timeout=10)
    second.kill9()  # the index file on disk still holds the deleted cubes' vectors

    third = servers.start(first.data_dir, env=NO_FLUSH)
    stub = third.vault()
    if DERIVED_INDEX:
        report = repair_report(third)
        assert report["removed"] == len(deleted), report
        assert report["vectors"] == len(vectors) - len(deleted), report
    for name in deleted:
        assert get_cube(stub, name) is None, f"deleted {name} is back after kill -9"
    stored = list_cubes(stub)
    assert not set(deleted) & set(stored), "ListCubes returns deleted cubes"
    assert len(stored) == len(vectors) - len(deleted)
    for name, vector in deleted.items():
        returned = [hit for hit, _ in search(stub, vector, top_k=10)]
        assert name not in returned, f"search returns deleted {name}"
    survivors = {cube_name(i): vec for i, vec in vectors.items() if cube_name(i) not in deleted}
    assert not unfindable_by_own_vector(stub, survivors)


def test_cubes_created_after_deleting_the_newest_survive_kill9(servers: ServerFactory) -> None:
    """Deleting the newest cubes, crashing, then creating more must not hand out their index labels again.

    Index labels (``vec_id``) must never be reused: start-up repair assumes a label
    keeps one vector for ever, and hnswlib keeps deleted labels in its file.
    """
    rng = np.random.default_rng(11)
    old = {f"old-{n}": unit_vector(rng) for n in range(20)}
    first = stored_then_stopped(servers, old)

    second = servers.start(first.data_dir, env=NO_FLUSH)
    newest = [cube_name(f"old-{n}") for n in range(15, 20)]  # created last: the highest labels
    for name in newest:
        second.vault().DeleteCube(v.DeleteCubeRequest(name=name), timeout=10)
    second.kill9()

    third = servers.start(first.data_dir, env=NO_FLUSH)
    kept = {cube_name(i): vec for i, vec in old.items() if cube_name(i) not in newest}
    assert not unfindable_by_own_vector(third.vault(), kept)
    new = {f"new-{n}": unit_vector(rng) for n in range(5)}
    create_cubes(third.vault(), new)
    third.kill9()

    fourth = servers.start(first.data_dir, env=NO_FLUSH)
    stub = fourth.vault()
    live = {cube_name(i): vec for i, vec in (old | new).items() if cube_name(i) not in newest}
    assert set(list_cubes(stub)) == set(live)
    unfindable = unfindable_by_own_vector(stub, live)
    assert not unfindable, f"cubes not found by their own vector (name: top hits): {unfindable}"
    for name in newest:
        hits = search(stub, old[name.rsplit("/", 1)[1]], top_k=3)
        assert all(score < 0.5 for _, score in hits), f"the vector of deleted {name} still matches: {hits}"


# -- expiry across kill -9 -----------------------------------------------------------

#: The sweeper runs often (its condition to wait on is its log line), and tombstones stay for an hour.
SWEEPING = NO_FLUSH | {"MEMOS_SWEEP_INTERVAL_SECONDS": "0.1", "MEMOS_EXPIRED_RETENTION_SECONDS": "3600"}
#: The sweeper never runs within a test.
NOT_SWEEPING = NO_FLUSH | {"MEMOS_SWEEP_INTERVAL_SECONDS": "3600", "MEMOS_EXPIRED_RETENTION_SECONDS": "3600"}


def get_reason(stub: VaultServiceStub, name: str) -> str:
    """The reason GetCube refuses ``name`` with (it must refuse with NOT_FOUND)."""
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetCube(v.GetCubeRequest(name=name), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    return reason_of(caught.value)


def test_expiry_survives_kill9_between_emptying_a_cube_and_removing_its_tombstone(servers: ServerFactory) -> None:
    """The sweeper's two steps each commit on their own: a kill -9 after the first (the content gone, the
    tombstone stored, the index file on disk still holding the expired cubes' vectors) leaves tombstones and
    no content at the next start, and the second step then removes the tombstones for good."""
    rng = np.random.default_rng(17)
    live = {f"live-{n}": unit_vector(rng) for n in range(6)}
    fleeting = {f"fleeting-{n}": unit_vector(rng) for n in range(6)}
    first = servers.start(env=NOT_SWEEPING)
    create_space(first)
    create_cubes(first.vault(), live)
    requests = [cube_request(i, vec) for i, vec in fleeting.items()]
    for request in requests:
        request.cube.expire_time.FromSeconds(int(time.time()) - 1)  # expired already; nothing sweeps here
    created = first.vault().BatchCreateCubes(v.BatchCreateCubesRequest(parent=PARENT, requests=requests), timeout=30)
    provenance = {c.name: c.provenance_id for c in created.cubes}
    assert first.terminate() == 0  # the index file on disk holds all twelve vectors

    second = servers.start(first.data_dir, env=SWEEPING)
    second.wait_for_log(r"retention sweep: 6 expired cubes emptied into tombstones, 0 tombstones removed")
    second.kill9()  # before the tombstones' hour is up, and before any index save

    third = servers.start(first.data_dir, env=NOT_SWEEPING)
    stub = third.vault()
    if DERIVED_INDEX:
        report = repair_report(third)
        assert (report["vectors"], report["removed"]) == (6, 6), report
    assert set(list_cubes(stub)) == {cube_name(i) for i in live}
    listed = stub.ListCubes(v.ListCubesRequest(parent=PARENT, show_expired=True, page_size=100), timeout=10).cubes
    stones = {c.name: c for c in listed if c.state == cube_pb2.LIFECYCLE_STATE_EXPIRED}
    assert {name: c.provenance_id for name, c in stones.items()} == provenance
    assert all(c.WhichOneof("payload") is None and c.expire_time_setter == "principals/admin" for c in stones.values())
    for cube_id, vector in fleeting.items():
        assert get_reason(stub, cube_name(cube_id)) == "CUBE_EXPIRED"
        assert cube_name(cube_id) not in [hit for hit, _ in search(stub, vector, top_k=10)]
    assert not unfindable_by_own_vector(stub, {cube_name(i): vec for i, vec in live.items()})
    third.kill9()

    fourth = servers.start(first.data_dir, env=SWEEPING | {"MEMOS_EXPIRED_RETENTION_SECONDS": "0"})
    fourth.wait_for_log(r"retention sweep: 0 expired cubes emptied into tombstones, 6 tombstones removed")
    fourth.kill9()

    fifth = servers.start(first.data_dir, env=NOT_SWEEPING)
    stub = fifth.vault()
    listed = stub.ListCubes(v.ListCubesRequest(parent=PARENT, show_expired=True, page_size=100), timeout=10).cubes
    assert {c.name for c in listed} == {cube_name(i) for i in live}
    for cube_id in fleeting:
        assert get_reason(stub, cube_name(cube_id)) == "CUBE_NOT_FOUND"


# -- a batch lost after its vectors reached a saved index ----------------------------


def test_labels_of_a_batch_lost_after_an_index_save_are_never_issued_again(servers: ServerFactory) -> None:
    """Vectors are indexed while their batch commits; an index saved in between, then kill -9, must not
    leave labels whose vectors belong to cubes that were never stored (they would be handed out again).

    The child holds the writer, lets the batch index its vectors, saves the index and kills itself
    (``_lost_commit.py``): the save between add and commit is forced, not hoped for.
    """
    rng = np.random.default_rng(13)
    old = {f"old-{n}": unit_vector(rng) for n in range(30)}
    first = stored_then_stopped(servers, old, {**NO_FLUSH, **EMBEDDED})

    lost_count, lost_seed = 6, 99
    script = Path(__file__).with_name("_lost_commit.py")
    child = subprocess.run(
        [sys.executable, str(script), str(first.data_dir), SPACE_ID, str(lost_count), str(lost_seed)],
        capture_output=True,
        text=True,
        env=child_env({"MEMOS_POSTGRES_URL": first.env.get("MEMOS_POSTGRES_URL", "")}),
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert child.stdout.startswith("labels "), child.stdout + child.stderr[-3000:]
    assert len(child.stdout.split()) == 1 + lost_count

    second = servers.start(first.data_dir, env={**NO_FLUSH, **EMBEDDED})
    new = {f"new-{n}": unit_vector(rng) for n in range(lost_count)}
    create_cubes(second.vault(), new)
    live = {cube_name(i): vec for i, vec in (old | new).items()}
    assert set(list_cubes(second.vault())) == set(live)
    assert not unfindable_by_own_vector(second.vault(), live)
    second.kill9()  # the index file on disk is still the one saved with the lost batch's vectors

    third = servers.start(first.data_dir, env={**NO_FLUSH, **EMBEDDED})
    stub = third.vault()
    unfindable = unfindable_by_own_vector(stub, live)
    assert not unfindable, f"cubes not found by their own vector (name: top hits): {unfindable}"
    report = repair_report(third)
    assert report["replaced"] == 0, f"labels of the lost batch were issued again: {report}"
    for vector in lost_vectors(lost_count, lost_seed):
        hits = search(stub, vector, top_k=3)
        assert all(score < 0.5 for _, score in hits), f"a lost batch's vector finds stored cubes: {hits}"


def test_repair_replaces_a_vector_the_index_file_holds_under_another_cubes_label(servers: ServerFactory) -> None:
    """Start-up repair proves each label holds its cube's vector, not only that the label is there."""
    rng = np.random.default_rng(17)
    vectors = {f"cube-{n}": unit_vector(rng) for n in range(50)}
    first = stored_then_stopped(servers, vectors, {**NO_FLUSH, **EMBEDDED})

    # Swap the vectors of two labels in the saved file, as a stale save would leave them.
    path = index_file(first.data_dir)
    index = hnswlib.Index(space="cosine", dim=DIMENSION)
    index.load_index(str(path))
    a, b = sorted(int(label) for label in index.get_ids_list())[10:12]
    held = index.get_items([a, b])
    index.add_items(np.asarray([held[1], held[0]], dtype=np.float32), [a, b])
    index.save_index(str(path))

    second = servers.start(first.data_dir, env={**NO_FLUSH, **EMBEDDED})
    report = repair_report(second)
    assert (report["replaced"], report["added"], report["removed"]) == (2, 0, 0), report
    named = {cube_name(i): vec for i, vec in vectors.items()}
    assert not unfindable_by_own_vector(second.vault(), named)


# -- damaged index files -------------------------------------------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_index_file_is_rebuilt_at_start(servers: ServerFactory, damage: str) -> None:
    rng = np.random.default_rng(5)
    vectors = {f"cube-{n}": unit_vector(rng) for n in range(200)}
    first = stored_then_stopped(servers, vectors, {**NO_FLUSH, **EMBEDDED})
    path = index_file(first.data_dir)
    original = path.read_bytes()
    assert len(original) > 10_000
    if damage == "garbage":
        path.write_bytes(os.urandom(len(original)))
    elif damage == "truncated":
        path.write_bytes(original[: len(original) // 2])
    else:
        path.write_bytes(b"")

    second = servers.start(first.data_dir, env={**NO_FLUSH, **EMBEDDED})
    assert "unreadable" in second.log_text(), second.log_tail()
    report = repair_report(second)
    assert report["added"] == report["vectors"] == len(vectors), report
    named = {cube_name(i): vec for i, vec in vectors.items()}
    assert not unfindable_by_own_vector(second.vault(), named)
    assert second.terminate() == 0  # saves the rebuilt index

    third = servers.start(first.data_dir, env={**NO_FLUSH, **EMBEDDED})
    report = repair_report(third)
    assert (report["added"], report["removed"]) == (0, 0), f"the rebuilt index was not saved: {report}"
    assert "unreadable" not in third.log_text()


# -- payload uploads across kill -9 --------------------------------------------------


def upload_request(data: bytes, **header: object) -> v.WritePayloadRequest:
    return v.WritePayloadRequest(parent=PARENT, data=data, **header)  # type: ignore[arg-type]


def activation_request(cube_id: str, digest: str) -> v.CreateCubeRequest:
    return v.CreateCubeRequest(
        parent=PARENT,
        cube_id=cube_id,
        cube=cube_pb2.MemCube(
            activation=cube_pb2.ActivationPayload(
                blob=cube_pb2.BlobRef(digest=digest), model_fingerprint="test-model", dtype="float32"
            )
        ),
    )


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def test_interrupted_upload_leaves_nothing_and_completed_one_survives(servers: ServerFactory) -> None:
    chunk = 64 * 1024
    completed = os.urandom(5 * chunk + 123)
    completed_digest = "sha256:" + hashlib.sha256(completed).hexdigest()
    interrupted = os.urandom(8 * chunk)
    interrupted_digest = "sha256:" + hashlib.sha256(interrupted).hexdigest()

    server = servers.start()
    create_space(server)
    stub = server.vault()
    blob = stub.WritePayload(
        iter(
            [upload_request(completed[:chunk], expected_digest=completed_digest, media_type="application/x-test")]
            + [v.WritePayloadRequest(data=completed[i : i + chunk]) for i in range(chunk, len(completed), chunk)]
        ),
        timeout=30,
    ).blob
    assert blob.digest == completed_digest

    release = threading.Event()

    def slow_upload() -> Iterator[v.WritePayloadRequest]:
        yield upload_request(interrupted[:chunk], expected_digest=interrupted_digest, expected_size=len(interrupted))
        yield v.WritePayloadRequest(data=interrupted[chunk : 2 * chunk])
        release.wait(30)  # the rest never comes: the server is killed mid-upload

    temp_dir = server.data_dir / "blobs" / "tmp"
    try:
        pending = stub.WritePayload.future(slow_upload(), timeout=30)
        wait_until(
            lambda: any(p.stat().st_size >= chunk for p in temp_dir.glob("*")),
            timeout=10,
            what="the upload's temporary file",
        )
        server.kill9()
        with pytest.raises(grpc.RpcError) as failed:
            pending.result(timeout=10)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        release.set()
    assert files_under(temp_dir), "expected the killed upload to leave its temporary file behind"

    restarted = servers.start(server.data_dir)
    blob_dir = restarted.data_dir / "blobs"
    assert files_under(blob_dir / "tmp") == [], "temporary upload files survive the restart"
    hex_digest = completed_digest.split(":")[1]
    # On PostgreSQL the completed blob is in the database (read back below), none on disk.
    stored = (
        [] if os.environ.get(BACKEND_VARIABLE) == "postgres" else [blob_dir / "sha256" / hex_digest[:2] / hex_digest]
    )
    assert files_under(blob_dir / "sha256") == stored

    stub = restarted.vault()
    with pytest.raises(grpc.RpcError) as refused:
        stub.CreateCube(activation_request("interrupted", interrupted_digest), timeout=10)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    cube = stub.CreateCube(activation_request("completed", completed_digest), timeout=10)
    assert cube.activation.blob.size_bytes == len(completed)
    assert cube.activation.blob.media_type == "application/x-test"
    read = b"".join(r.data for r in stub.ReadPayload(v.ReadPayloadRequest(name=cube.name), timeout=30))
    assert read == completed
