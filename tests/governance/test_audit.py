"""The audit log: what is recorded, the hash chain, and tampering named by VerifyAuditLog."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from memos_test_support import admin_token, authorized_channel, start_server

from memos_grpc._proto.memos.v1 import audit_pb2, cube_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import MemosServer

Outcome = audit_pb2.AuditEvent


@pytest.fixture
def stubs(fresh_server: MemosServer) -> Iterator[tuple[GovernanceServiceStub, VaultServiceStub]]:
    with authorized_channel(fresh_server.address, admin_token(fresh_server)) as channel:
        yield GovernanceServiceStub(channel), VaultServiceStub(channel)


def events(governance: GovernanceServiceStub, filter_text: str = "") -> list[audit_pb2.AuditEvent]:
    found, token = [], ""
    while True:
        page = governance.ListAuditEvents(g.ListAuditEventsRequest(filter=filter_text, page_size=2, page_token=token))
        found += list(page.events)
        token = page.next_page_token
        if not token:
            return found


def make_history(fresh_server: MemosServer, governance: GovernanceServiceStub, vault: VaultServiceStub) -> None:
    governance.CreateSpace(g.CreateSpaceRequest(space_id="audited"))
    text = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="remember this"))
    vault.CreateCube(v.CreateCubeRequest(parent="spaces/audited", cube_id="one", cube=text))
    vault.GetCube(v.GetCubeRequest(name="spaces/audited/cubes/one"))  # a read: not audited
    with pytest.raises(grpc.RpcError):
        vault.CreateCube(v.CreateCubeRequest(parent="spaces/audited", cube_id="one", cube=text))
    with grpc.insecure_channel(fresh_server.address) as anonymous, pytest.raises(grpc.RpcError):
        VaultServiceStub(anonymous).GetCube(v.GetCubeRequest(name="spaces/audited/cubes/one"))


def test_mutating_failed_and_denied_calls_are_recorded(
    fresh_server: MemosServer, stubs: tuple[GovernanceServiceStub, VaultServiceStub]
) -> None:
    governance, vault = stubs
    make_history(fresh_server, governance, vault)
    recorded = events(governance)
    summary = [(e.method.rsplit("/", 1)[1], e.resource, Outcome.Outcome.Name(e.outcome), e.reason) for e in recorded]
    assert summary[-4:] == [
        ("CreateSpace", "audited", "OUTCOME_OK", ""),
        ("CreateCube", "spaces/audited", "OUTCOME_OK", ""),
        ("CreateCube", "spaces/audited", "OUTCOME_FAILED", "CUBE_ALREADY_EXISTS"),
        ("GetCube", "", "OUTCOME_DENIED", "MISSING_CREDENTIAL"),
    ]
    assert recorded[-2].principal == "principals/admin" and recorded[-1].principal == ""
    assert [e.sequence for e in recorded] == list(range(1, len(recorded) + 1))
    assert all(later.previous_hash == earlier.hash for earlier, later in itertools.pairwise(recorded))
    denied = events(governance, "outcome = DENIED")
    assert [e.method for e in denied] == ["/memos.v1.VaultService/GetCube"]
    verdict = governance.VerifyAuditLog(g.VerifyAuditLogRequest())
    assert verdict.verified and verdict.events_checked == len(recorded) and verdict.first_broken_sequence == 0


@pytest.mark.parametrize(
    ("tamper", "broken", "problem"),
    [
        ("UPDATE audit_events SET principal = 'principals/mallory' WHERE sequence = 3", 3, "altered"),
        ("UPDATE audit_events SET outcome = 1 WHERE sequence = 4", 4, "altered"),
        ("DELETE FROM audit_events WHERE sequence = 2", 3, "missing"),
        ("UPDATE audit_events SET time = time + INTERVAL '1 second' WHERE sequence = 1", 1, "altered"),
    ],
    ids=["principal edited", "outcome edited", "row removed", "time moved"],
)
def test_verify_names_the_first_tampered_event(
    fresh_server: MemosServer,
    stubs: tuple[GovernanceServiceStub, VaultServiceStub],
    tamper: str,
    broken: int,
    problem: str,
) -> None:
    governance, vault = stubs
    make_history(fresh_server, governance, vault)
    assert fresh_server.vault is not None
    fresh_server.vault.context.database.write(lambda cursor: cursor.execute(tamper))
    verdict = governance.VerifyAuditLog(g.VerifyAuditLogRequest())
    assert not verdict.verified
    assert verdict.first_broken_sequence == broken
    assert problem in verdict.problem


def test_audit_calls_are_admin_only_and_filters_are_checked(
    stubs: tuple[GovernanceServiceStub, VaultServiceStub],
) -> None:
    governance, _ = stubs
    with pytest.raises(grpc.RpcError) as bad:
        governance.ListAuditEvents(g.ListAuditEventsRequest(filter="colour = red"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_log_written_before_the_head_table_continues_its_chain(tmp_path: Path, embedder: Embedder) -> None:
    """The chain's end lives in a one-row head table; a database from before it has none, and its first start
    seeds it from the newest event, so the next event chains on and the whole log still verifies.

    An upgrade of the embedded schema, so on the embedded backend whichever the suite runs on; PostgreSQL's schema
    is upgraded by its migrations (tests/store/postgres/test_migrations.py)."""
    server = start_server(tmp_path / "data", embedder, postgres_url="")
    try:
        governance = GovernanceServiceStub(authorized_channel(server.address, admin_token(server)))
        for n in range(3):
            governance.CreateSpace(g.CreateSpaceRequest(space_id=f"before-{n}"))
        newest = max(e.sequence for e in events(governance))
        assert server.vault is not None
        server.vault.context.database.write(lambda cursor: cursor.execute("DROP TABLE audit_head"))
    finally:
        server.stop(grace=1)
    server = start_server(tmp_path / "data", embedder, postgres_url="")
    try:
        governance = GovernanceServiceStub(authorized_channel(server.address, admin_token(server)))
        governance.CreateSpace(g.CreateSpaceRequest(space_id="after"))
        created = [e for e in events(governance) if e.method.endswith("/CreateSpace") and e.sequence > newest]
        assert [e.sequence for e in created] == [newest + 1]
        assert governance.VerifyAuditLog(g.VerifyAuditLogRequest()).verified
    finally:
        server.stop(grace=1)


def test_a_change_commits_with_its_success_event_or_not_at_all(
    fresh_server: MemosServer, stubs: tuple[GovernanceServiceStub, VaultServiceStub]
) -> None:
    """The success event of a call that concludes in one write is written in that write's transaction: when the
    event cannot be stored, the change is not either (no change goes unrecorded)."""
    governance, vault = stubs
    governance.CreateSpace(g.CreateSpaceRequest(space_id="atomic"))
    text = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="remember this"))
    vault.CreateCube(v.CreateCubeRequest(parent="spaces/atomic", cube_id="kept", cube=text))
    assert fresh_server.vault is not None
    # A row squatting on the next sequence: the next append collides with it.
    fresh_server.vault.context.database.write(
        lambda cursor: cursor.execute(
            "INSERT INTO audit_events SELECT sequence + 1, time, principal, method, resource, outcome, status_code, "
            "reason, hash, hash FROM audit_events ORDER BY sequence DESC LIMIT 1"
        )
    )
    with pytest.raises(grpc.RpcError):
        vault.CreateCube(v.CreateCubeRequest(parent="spaces/atomic", cube_id="unrecorded", cube=text))
    with pytest.raises(grpc.RpcError) as missing:
        vault.GetCube(v.GetCubeRequest(name="spaces/atomic/cubes/unrecorded"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert vault.GetCube(v.GetCubeRequest(name="spaces/atomic/cubes/kept")).plaintext.text == "remember this"
    # The same for a removal and for a new version.
    with pytest.raises(grpc.RpcError):
        vault.DeleteCube(v.DeleteCubeRequest(name="spaces/atomic/cubes/kept"))
    with pytest.raises(grpc.RpcError):
        vault.FreezeCube(v.FreezeCubeRequest(name="spaces/atomic/cubes/kept"))
    kept = vault.GetCube(v.GetCubeRequest(name="spaces/atomic/cubes/kept"))
    assert (kept.version, kept.state) == (1, cube_pb2.LIFECYCLE_STATE_GENERATED)
