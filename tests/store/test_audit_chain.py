"""memos_grpc.store.audit on a real database: events appended to the chain, its end, filtered pages, the walk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memos_grpc._proto.memos.v1 import audit_pb2
from memos_grpc.store import audit as audit_store
from memos_grpc.store.audit import AUDIT_FIELDS, AuditRow, ChainEnd
from memos_grpc.store.database import Connection, Database
from memos_grpc.store.filter import compile_filter

T0 = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
Outcome = audit_pb2.AuditEvent.Outcome


def _row(sequence: int, outcome: int = Outcome.OUTCOME_OK, principal: str = "principals/admin") -> AuditRow:
    return AuditRow(
        sequence=sequence,
        time=T0 + timedelta(seconds=sequence),
        principal=principal,
        method="/memos.v1.GovernanceService/CreateSpace",
        resource=f"s{sequence}",
        outcome=outcome,
        status_code="OK" if outcome == Outcome.OUTCOME_OK else "PERMISSION_DENIED",
        reason="" if outcome == Outcome.OUTCOME_OK else "NOT_ALLOWED",
        previous_hash=f"h{sequence - 1}",
        hash=f"h{sequence}",
    )


def _append(database: Database, *rows: AuditRow) -> None:
    """Appends each row after the chain's end as the transaction sees it, one write for all."""

    def apply(cursor: Connection) -> None:
        for row in rows:
            audit_store.append_event(cursor, row, audit_store.chain_end(cursor))

    database.write(apply)


def _end(database: Database) -> ChainEnd | None:
    with database.read() as cursor:
        return audit_store.chain_end(cursor)


def _chain(database: Database) -> list[AuditRow]:
    with database.read() as cursor:
        return list(audit_store.chain(cursor))


def test_an_empty_log_has_no_end_and_no_events(database: Database) -> None:
    assert _end(database) is None
    assert _chain(database) == []


def test_appends_move_the_end_and_read_back_in_order(database: Database) -> None:
    _append(database, _row(1))
    assert _end(database) == ChainEnd(1, "h1")
    _append(database, _row(2), _row(3, Outcome.OUTCOME_DENIED))  # the second sees the first of the same write
    assert _end(database) == ChainEnd(3, "h3")
    assert _chain(database) == [_row(1), _row(2), _row(3, Outcome.OUTCOME_DENIED)]  # times to the microsecond


def test_the_walk_reads_the_whole_chain_in_batches(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [_row(sequence) for sequence in range(1, 8)]
    _append(database, *rows)
    monkeypatch.setattr(audit_store, "_BATCH", 3)
    assert _chain(database) == rows


def test_a_page_of_events_after_a_sequence_that_a_filter_admits(database: Database) -> None:
    rows = [
        _row(1),
        _row(2, Outcome.OUTCOME_DENIED, ""),
        _row(3),
        _row(4, Outcome.OUTCOME_DENIED, "principals/bob"),
        _row(5, Outcome.OUTCOME_DENIED, "principals/bob"),
    ]
    _append(database, *rows)
    denied = compile_filter("outcome = DENIED", fields=AUDIT_FIELDS)
    everything = compile_filter("", fields=AUDIT_FIELDS)
    with database.read() as cursor:
        assert audit_store.events_after(cursor, 0, denied, 10) == [rows[1], rows[3], rows[4]]
        assert audit_store.events_after(cursor, 2, denied, 1) == [rows[3]]
        assert audit_store.events_after(cursor, 3, everything, 10) == rows[3:]
        by_bob = compile_filter('principal = "principals/bob" AND sequence > 4', fields=AUDIT_FIELDS)
        assert audit_store.events_after(cursor, 0, by_bob, 10) == [rows[4]]


def test_a_row_as_the_event_list_audit_events_returns() -> None:
    event = _row(4, Outcome.OUTCOME_DENIED).message()
    assert event.name == "auditEvents/4" and event.sequence == 4
    assert event.time.ToDatetime(tzinfo=UTC) == T0 + timedelta(seconds=4)
    assert (event.outcome, event.status_code, event.reason) == (
        Outcome.OUTCOME_DENIED,
        "PERMISSION_DENIED",
        "NOT_ALLOWED",
    )
    assert (event.previous_hash, event.hash, event.resource) == ("h3", "h4", "s4")
    assert event.method == "/memos.v1.GovernanceService/CreateSpace" and event.principal == "principals/admin"
