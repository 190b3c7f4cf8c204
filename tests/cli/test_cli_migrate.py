"""``memos-grpc migrate``: an embedded vault copied into PostgreSQL is served the same by a server on that database.

Each test fills a real embedded server's data directory, stops the server, migrates into a fresh PostgreSQL database
and, where the copy succeeds, starts a server on the same data directory with ``postgres_url`` set; the refusals check
that the target is left as it was.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import grpc
import psycopg
import pytest
from google.protobuf import field_mask_pb2
from memos_test_support import admin_token, authorized_channel, reason_of, start_server
from postgres_support import drop_database, fresh_database

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.cli.main import main
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import MemosServer
from memos_grpc.store import schema
from memos_grpc.store.postgres.blobs import PgBlobStore
from memos_grpc.store.postgres.database import PostgresDatabase
from memos_grpc.store.uploads import store_blob

ALPHA, BETA = "spaces/alpha", "spaces/beta"
TEXTS = {
    ALPHA: ["the heron fishes at dawn by the reeds", "tea with lemon settles the stomach", "the lighthouse keeper"],
    BETA: ["a spreadsheet of quarterly invoices", "the bus to the airport leaves at six"],
}
NEW_TEXTS = [
    "a zeppelin over the harbour",
    "violin lessons on tuesday",
    "the glacier retreated a mile",
    "sourdough needs a warm kitchen",
    "the chess club meets upstairs",
    "a comet visible before sunrise",
    "the orchard needs pruning in march",
]
#: More than two of the database's 1 MiB chunks, so a blob spans three.
PAYLOAD = hashlib.sha256(b"payload").digest() * (2 * 2**20 // 32 + 1000)


@pytest.fixture
def target() -> Iterator[str]:
    url = fresh_database(empty=True)
    yield url
    drop_database(url)


def embedded(data_dir: Path, embedder: Embedder) -> MemosServer:
    """A server on the embedded backend, whichever backend the suite runs on."""
    return start_server(data_dir, embedder, postgres_url="")


def migrate(capsys: pytest.CaptureFixture[str], data_dir: Path, url: str) -> tuple[int, str, str]:
    code = main(["migrate", "--data-dir", str(data_dir), "--to", url])
    out, err = capsys.readouterr()
    return code, out, err


def upload(vault: VaultServiceStub, space: str, data: bytes) -> cube_pb2.BlobRef:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    pieces = [data[start : start + 2**20] for start in range(0, len(data), 2**20)]
    requests = [v.WritePayloadRequest(parent=space, expected_digest=digest, expected_size=len(data))]
    requests += [v.WritePayloadRequest(data=piece) for piece in pieces]
    return vault.WritePayload(iter(requests)).blob


def activation(vault: VaultServiceStub, space: str, data: bytes, cube_id: str) -> cube_pb2.MemCube:
    """A cube on an opaque cache blob (not a memos-activation file, so no model is needed)."""
    payload = cube_pb2.ActivationPayload(blob=upload(vault, space, data), model_fingerprint="other@sha256:1")
    return vault.CreateCube(
        v.CreateCubeRequest(parent=space, cube_id=cube_id, cube=cube_pb2.MemCube(activation=payload))
    )


def rows_in(url: str) -> dict[str, int]:
    """Every table's row count in the database (none before its schema is made)."""
    with psycopg.connect(url) as connection:
        tables = [
            str(name)
            for (name,) in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        counts = {}
        for table in tables:
            row = connection.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
            counts[table] = int(row[0]) if row else 0
        return counts


def embedded_rows(data_dir: Path) -> dict[str, int]:
    """Every table's row count in the data directory's DuckDB file."""
    with duckdb.connect(str(data_dir / "vault.duckdb"), read_only=True) as connection:
        tables = [str(name) for (name,) in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {table: int(connection.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]) for table in tables}


@dataclass
class Seen:
    """What a client sees of the vault: the answers a server on PostgreSQL must give the same."""

    cubes: dict[str, list[cube_pb2.MemCube]]
    versions: v.ListCubeVersionsResponse
    payload: bytes
    searches: list[list[tuple[str, float]]]
    robot: list[str]
    audit_hashes: list[str]


def look(server: MemosServer, robot_token: str, updated: str, cached: str) -> Seen:
    robot = robot_sees(server, robot_token)
    with authorized_channel(server.address, admin_token(server)) as channel:
        vault = VaultServiceStub(channel)
        governance = GovernanceServiceStub(channel)
        cubes = {space: list(vault.ListCubes(v.ListCubesRequest(parent=space)).cubes) for space in TEXTS}
        versions = vault.ListCubeVersions(v.ListCubeVersionsRequest(name=updated))
        payload = b"".join(chunk.data for chunk in vault.ReadPayload(v.ReadPayloadRequest(name=cached)))
        searches = [
            [(result.cube.name, round(result.score, 5)) for result in search_results(vault, space, text)]
            for space, texts in TEXTS.items()
            for text in texts
        ]
        audit = governance.ListAuditEvents(g.ListAuditEventsRequest(page_size=1000)).events
    return Seen(cubes, versions, payload, searches, robot, [event.hash for event in audit])


def search_results(vault: VaultServiceStub, space: str, text: str) -> list[v.SearchResult]:
    return list(vault.SearchCubes(v.SearchCubesRequest(parent=space, text=text, top_k=3)).results)


def lexical_results(vault: VaultServiceStub, space: str, text: str) -> list[v.SearchResult]:
    request = v.SearchCubesRequest(parent=space, text=text, top_k=3, mode=v.SEARCH_MODE_LEXICAL)
    return list(vault.SearchCubes(request).results)


def robot_sees(server: MemosServer, token: str) -> list[str]:
    """What the viewer of alpha may and may not do: each call's outcome (denials by status and reason)."""
    outcomes = []
    with authorized_channel(server.address, token) as channel:
        vault = VaultServiceStub(channel)
        calls = [
            lambda: len(vault.ListCubes(v.ListCubesRequest(parent=ALPHA)).cubes),
            lambda: vault.CreateCube(v.CreateCubeRequest(parent=ALPHA, cube=text_cube("not allowed"))).name,
            lambda: len(vault.ListCubes(v.ListCubesRequest(parent=BETA)).cubes),
        ]
        for call in calls:
            try:
                outcomes.append(f"ok {call()}")
            except grpc.RpcError as error:
                outcomes.append(f"{error.code().name} {reason_of(error)}")
    return outcomes


def text_cube(text: str) -> cube_pb2.MemCube:
    return cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text))


def fill(server: MemosServer) -> tuple[str, str, str]:
    """Spaces, plaintext cubes, a second version, a cube on a three-chunk blob, a principal with a credential and a
    policy; returns the robot's token, the updated cube's name and the activation cube's name."""
    with authorized_channel(server.address, admin_token(server)) as channel:
        vault = VaultServiceStub(channel)
        governance = GovernanceServiceStub(channel)
        for space in TEXTS:
            governance.CreateSpace(g.CreateSpaceRequest(space_id=space.split("/")[1]))
        created = [vault.CreateCube(v.CreateCubeRequest(parent=s, cube=text_cube(t))) for s in TEXTS for t in TEXTS[s]]
        updated = created[0].name
        vault.UpdateCube(
            v.UpdateCubeRequest(
                cube=cube_pb2.MemCube(name=updated, plaintext=cube_pb2.PlaintextPayload(text="the heron naps at noon")),
                update_mask=field_mask_pb2.FieldMask(paths=["plaintext.text"]),
            )
        )
        # The newest label goes with a removed cube; the sequence must go past it all the same (meta.last_vec_id).
        removed = vault.CreateCube(v.CreateCubeRequest(parent=BETA, cube=text_cube("the ferry timetable changed")))
        vault.DeleteCube(v.DeleteCubeRequest(name=removed.name))
        cached = activation(vault, ALPHA, PAYLOAD, "cache").name
        governance.CreatePrincipal(g.CreatePrincipalRequest(principal_id="robot", principal=principal_pb2.Principal()))
        token = governance.CreateCredential(g.CreateCredentialRequest(parent="principals/robot")).token
        policy = access_pb2.AccessPolicy(
            bindings=[
                access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/admin"]),
                access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=["principals/robot"]),
            ]
        )
        governance.SetAccessPolicy(g.SetAccessPolicyRequest(resource=ALPHA, policy=policy))
    return token, updated, cached


def test_a_migrated_vault_is_served_the_same_from_postgresql(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, embedder: Embedder, target: str
) -> None:
    data_dir = tmp_path / "data"
    server = embedded(data_dir, embedder)
    try:
        token, updated, cached = fill(server)
        before = look(server, token, updated, cached)
    finally:
        server.stop(grace=1)
    assert before.payload == PAYLOAD and len(before.versions.versions) == 2
    assert before.robot[0] == "ok 4" and before.robot[1].startswith("PERMISSION_DENIED")
    keys = sorted(path.name for path in (data_dir / "keys").iterdir())

    code, out, err = migrate(capsys, data_dir, target)
    assert code == 0, err
    assert "table cubes: 6 of 6 rows" in err and "blob 1/1 sha256:" in err and f"({len(PAYLOAD):,} bytes)" in err
    assert "MISMATCH" not in out and f"audit chain in the database: verified, {len(before.audit_hashes)} events" in out
    assert "vector labels: highest issued 7, next 8" in out
    # The BM25 documents the database ranks by: one per live plaintext cube (the cache has no vector), written in
    # the copy's transaction.
    assert "BM25 documents: 5 of 5 cubes" in err
    # Every table of the embedded schema came across, with the same rows (but the DuckDB file's schema version).
    counts, source = rows_in(target), embedded_rows(data_dir)
    assert set(source) == {statement.split()[5] for statement in schema.DDL if "CREATE TABLE" in statement}
    assert {table: counts[table] for table in source} == {**source, "meta": source["meta"] - 1}
    assert source["cubes"] == 6 and source["cube_versions"] > 6 and counts["blob_chunks"] == 3
    assert counts["lexical_docs"] == sum(len(texts) for texts in TEXTS.values())
    # The data directory keeps its keys and admin token, and is read only.
    assert sorted(path.name for path in (data_dir / "keys").iterdir()) == keys
    assert (data_dir / "admin.token").is_file()

    server = start_server(data_dir, embedder, postgres_url=target)
    try:
        after = look(server, token, updated, cached)
        assert after.cubes == before.cubes
        assert after.versions == before.versions
        assert after.payload == PAYLOAD
        assert after.searches == before.searches
        assert after.robot == before.robot  # the credential authenticates; the policy holds
        assert after.audit_hashes[: len(before.audit_hashes)] == before.audit_hashes
        with authorized_channel(server.address, admin_token(server)) as channel:
            vault = VaultServiceStub(channel)
            verdict = GovernanceServiceStub(channel).VerifyAuditLog(g.VerifyAuditLogRequest())
            assert verdict.verified and verdict.events_checked > len(before.audit_hashes)
            # New cubes' labels come after every label the embedded server issued (seven: as many as it did), so
            # none takes an older cube's place in the index and catalog.
            for text in NEW_TEXTS:
                fresh = vault.CreateCube(v.CreateCubeRequest(parent=ALPHA, cube=text_cube(text)))
                assert search_results(vault, ALPHA, text)[0].cube.name == fresh.name
            for cube in before.cubes[ALPHA]:
                if cube.HasField("plaintext"):
                    assert search_results(vault, ALPHA, cube.plaintext.text)[0].cube.name == cube.name
            # Lexically too, the copied cubes are found by their words (and the old text of a new version is not).
            for space in TEXTS:
                for cube in before.cubes[space]:
                    if cube.HasField("plaintext"):
                        assert lexical_results(vault, space, cube.plaintext.text)[0].cube.name == cube.name
            assert lexical_results(vault, ALPHA, "dawn reeds") == []
    finally:
        server.stop(grace=1)

    # A second run finds the vault there and changes nothing.
    counts = rows_in(target)
    code, _, err = migrate(capsys, data_dir, target)
    assert code == 1 and "already holds a vault (rows in" in err and "nothing was copied" in err
    assert rows_in(target) == counts


def test_a_running_servers_data_directory_is_refused(tmp_path: Path, embedder: Embedder, target: str) -> None:
    data_dir = tmp_path / "data"
    server = embedded(data_dir, embedder)
    try:
        # Another process, as an operator would run it: DuckDB's file lock is the running server's.
        child = subprocess.run(
            [sys.executable, "-m", "memos_grpc.cli.main", "migrate", "--data-dir", str(data_dir)],
            env={**os.environ, "MEMOS_POSTGRES_URL": target},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.stop(grace=1)
    assert child.returncode == 1, child.stderr
    assert "DATABASE_IN_USE" in child.stderr and "stop the server, then migrate" in child.stderr
    assert rows_in(target) == {}


def test_a_directory_without_a_vault_and_a_missing_target_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = migrate(capsys, tmp_path, target)
    assert code == 1 and "holds no vault" in err
    assert rows_in(target) == {}
    assert not (tmp_path / "blobs").exists()
    monkeypatch.delenv("MEMOS_POSTGRES_URL", raising=False)
    code = main(["migrate", "--data-dir", str(tmp_path)])
    assert code == 2 and "--to URL or in MEMOS_POSTGRES_URL" in capsys.readouterr().err


def test_a_damaged_blob_fails_the_copy_and_a_second_run_after_the_repair_succeeds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, embedder: Embedder, target: str
) -> None:
    data_dir = tmp_path / "data"
    server = embedded(data_dir, embedder)
    contents = {}
    try:
        with authorized_channel(server.address, admin_token(server)) as channel:
            GovernanceServiceStub(channel).CreateSpace(g.CreateSpaceRequest(space_id="alpha"))
            for n in range(3):
                data = bytes([n]) * 5000
                blob = activation(VaultServiceStub(channel), ALPHA, data, f"c{n}").activation.blob
                contents[blob.digest] = data
    finally:
        server.stop(grace=1)
    # A blob a killed run left in the database, which no record of the vault names.
    stray = PostgresDatabase(target, group_max=8)
    try:
        store_blob(PgBlobStore(stray, tmp_path / "spool"), [b"left by a killed run"], 100)
    finally:
        stray.close()
    # The last in digest order, so that the blobs before it are in the database when the copy fails.
    damaged = max(contents)
    path = data_dir / "blobs" / "sha256" / damaged[7:9] / damaged[7:]
    path.write_bytes(b"not the bytes its digest names")

    code, _, err = migrate(capsys, data_dir, target)
    assert code == 1 and "damaged" in err and "holds none of the vault" in err
    assert "blob 2/3" in err  # two were copied before
    counts = rows_in(target)
    assert not any(counts[table] for table in counts if table not in ("schema_migrations", "blob_chunks"))
    assert counts["blob_chunks"] == 1  # this run's blobs are gone again; the stray one was not this run's

    path.write_bytes(contents[damaged])
    code, out, err = migrate(capsys, data_dir, target)
    assert code == 0, err
    assert "blobs in the database: 3 (15,000 bytes)" in out and rows_in(target)["blob_chunks"] == 3


def test_a_row_postgresql_cannot_hold_fails_the_copy_and_leaves_the_target_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, embedder: Embedder, target: str
) -> None:
    """The embedded backend stores a NUL character in a label; PostgreSQL's text cannot hold one. The tables' copy
    fails after the blobs went in, and takes them out again."""
    data_dir = tmp_path / "data"
    server = embedded(data_dir, embedder)
    try:
        with authorized_channel(server.address, admin_token(server)) as channel:
            GovernanceServiceStub(channel).CreateSpace(g.CreateSpaceRequest(space_id="alpha"))
            vault = VaultServiceStub(channel)
            activation(vault, ALPHA, b"cache bytes" * 100, "cache")
            cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="a note"), labels={"room": "a\x00b"})
            vault.CreateCube(v.CreateCubeRequest(parent=ALPHA, cube=cube))
    finally:
        server.stop(grace=1)

    code, _, err = migrate(capsys, data_dir, target)
    assert code == 1 and "blob 1/1" in err and "holds none of the vault" in err
    assert "copying table cubes failed" in err and "u0000" in err
    counts = rows_in(target)
    assert counts and not any(counts[table] for table in counts if table != "schema_migrations")


def test_a_broken_audit_chain_is_copied_as_it_is_and_fails_the_check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, embedder: Embedder, target: str
) -> None:
    data_dir = tmp_path / "data"
    server = embedded(data_dir, embedder)
    try:
        with authorized_channel(server.address, admin_token(server)) as channel:
            for space_id in ("one", "two"):
                GovernanceServiceStub(channel).CreateSpace(g.CreateSpaceRequest(space_id=space_id))
    finally:
        server.stop(grace=1)
    with duckdb.connect(str(data_dir / "vault.duckdb")) as connection:
        connection.execute("UPDATE audit_events SET resource = 'zzz' WHERE sequence = 2")

    code, out, err = migrate(capsys, data_dir, target)
    assert code == 1 and "MISMATCH" not in out
    assert "audit chain in the database: BROKEN at event 2" in out and "audit chain does not verify" in err
