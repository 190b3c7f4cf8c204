"""The audit chain's rows: ``audit_events``, one per event, and ``audit_head``, the chain's end.

Each row keeps its event's place in the chain (sequence, the previous event's hash, its own hash); hashing
and verifying are ``governance/audit.py``'s. The one-row head table keeps the newest event's sequence and
hash, so an append costs the same at the millionth event as at the first (no scan of the log).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from memos_grpc._proto.memos.v1 import audit_pb2
from memos_grpc.store.database import Connection
from memos_grpc.store.filter import CompiledFilter, FilterField, enum_field
from memos_grpc.store.rows import set_timestamp

_COLUMNS = "sequence, time, principal, method, resource, outcome, status_code, reason, previous_hash, hash"
#: Rows read at a time when the whole chain is walked.
_BATCH = 10_000

#: The fields a ListAuditEvents filter may name, and their columns.
AUDIT_FIELDS: Final[dict[str, FilterField]] = {
    "sequence": FilterField("sequence", "int"),
    "time": FilterField("time", "time"),
    "principal": FilterField("principal", "string"),
    "method": FilterField("method", "string"),
    "resource": FilterField("resource", "string"),
    "outcome": enum_field("outcome", "OUTCOME_", audit_pb2.AuditEvent.Outcome.items()),
    "status_code": FilterField("status_code", "string"),
    "reason": FilterField("reason", "string"),
}


@dataclass(frozen=True)
class AuditRow:
    """One event as stored: what happened, and its place in the chain."""

    sequence: int
    time: datetime
    principal: str
    method: str
    resource: str
    outcome: int
    status_code: str
    reason: str
    previous_hash: str
    hash: str

    def message(self) -> audit_pb2.AuditEvent:
        """The event as ListAuditEvents returns it."""
        event = audit_pb2.AuditEvent(
            name=f"auditEvents/{self.sequence}",
            sequence=self.sequence,
            principal=self.principal,
            method=self.method,
            resource=self.resource,
            outcome=self.outcome,  # type: ignore[arg-type]
            status_code=self.status_code,
            reason=self.reason,
            previous_hash=self.previous_hash,
            hash=self.hash,
        )
        set_timestamp(event.time, self.time)
        return event


@dataclass(frozen=True)
class ChainEnd:
    """The newest event's sequence and hash: what the next event follows."""

    sequence: int
    hash: str


def chain_end(cursor: Connection) -> ChainEnd | None:
    """The end of the chain as of the caller's transaction (events of its own group count), or None if empty."""
    last = cursor.execute("SELECT sequence, hash FROM audit_head WHERE id = 1").fetchone()
    return None if last is None else ChainEnd(int(last[0]), str(last[1]))


def append_event(cursor: Connection, event: AuditRow, end: ChainEnd | None) -> None:
    """Stores ``event`` and makes it the chain's end; ``end`` is the end it follows (None for the first event)."""
    cursor.execute(
        f"INSERT INTO audit_events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            event.sequence,
            event.time,
            event.principal,
            event.method,
            event.resource,
            event.outcome,
            event.status_code,
            event.reason,
            event.previous_hash,
            event.hash,
        ],
    )
    if end is None:
        cursor.execute("INSERT INTO audit_head VALUES (1, ?, ?)", [event.sequence, event.hash])
    else:
        cursor.execute("UPDATE audit_head SET sequence = ?, hash = ? WHERE id = 1", [event.sequence, event.hash])


def events_after(cursor: Connection, after: int, matching: CompiledFilter, limit: int) -> list[AuditRow]:
    """Up to ``limit`` events after sequence ``after`` that ``matching`` (over ``AUDIT_FIELDS``) admits, in order."""
    rows = cursor.execute(
        f"SELECT {_COLUMNS} FROM audit_events WHERE sequence > ? AND ({matching.sql}) ORDER BY sequence LIMIT ?",
        [after, *matching.params, limit],
    ).fetchall()
    return [_row(row) for row in rows]


def chain(cursor: Connection) -> Iterator[AuditRow]:
    """Every event in sequence order, read in batches (the log may be far larger than memory)."""
    cursor.execute(f"SELECT {_COLUMNS} FROM audit_events ORDER BY sequence")
    while batch := cursor.fetchmany(_BATCH):
        yield from (_row(row) for row in batch)


def _row(row: tuple[object, ...]) -> AuditRow:
    sequence, time, principal, method, resource, outcome, status_code, reason, previous, digest = row
    assert isinstance(time, datetime)
    return AuditRow(
        int(str(sequence)),
        time,
        str(principal),
        str(method),
        str(resource),
        int(str(outcome)),
        str(status_code),
        str(reason),
        str(previous),
        str(digest),
    )
