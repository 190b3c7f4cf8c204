"""The audit log: append-only, hash-chained events of every mutating and every denied call.

Each event's hash is the sha256 of its canonical JSON (sorted keys, no
spaces), which includes the previous event's hash; editing, removing or
reordering any row breaks the chain from there on, and ``verify`` names the
first broken event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from memos_grpc._proto.memos.v1 import audit_pb2
from memos_grpc.store.database import Connection
from memos_grpc.store.filter import FilterField, compile_filter, enum_field
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.store.rows import set_timestamp
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.validation import invalid

GENESIS_HASH = "0" * 64
_COLUMNS = "sequence, time, principal, method, resource, outcome, status_code, reason, previous_hash, hash"

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
class AuditRecord:
    """What happened, before it gets its place in the chain."""

    principal: str
    method: str
    resource: str
    outcome: int
    status_code: str
    reason: str


def canonical(sequence: int, time: datetime, record: AuditRecord, previous_hash: str) -> bytes:
    """The bytes an event's hash covers (docs/security.md)."""
    body = {
        "method": record.method,
        "outcome": audit_pb2.AuditEvent.Outcome.Name(record.outcome),
        "previous_hash": previous_hash,
        "principal": record.principal,
        "reason": record.reason,
        "resource": record.resource,
        "sequence": sequence,
        "status_code": record.status_code,
        "time": time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Verification:
    """The result of walking the audit chain: whether it holds, how many events were checked, and the first break."""

    verified: bool
    events_checked: int
    first_broken_sequence: int = 0
    problem: str = ""

    def __bool__(self) -> bool:
        return self.verified


def append_in(cursor: Connection, record: AuditRecord, time: datetime) -> None:
    """Appends ``record`` to the chain inside the caller's write transaction (one commit with what it records)."""
    # Read the chain's end inside the transaction: earlier events of the same group count. The one-row head
    # table keeps it, so an append costs the same at the millionth event as at the first (no scan of the log).
    last = cursor.execute("SELECT sequence, hash FROM audit_head WHERE id = 1").fetchone()
    sequence, previous = (1, GENESIS_HASH) if last is None else (int(last[0]) + 1, str(last[1]))
    digest = hashlib.sha256(canonical(sequence, time, record, previous)).hexdigest()
    cursor.execute(
        f"INSERT INTO audit_events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            sequence,
            time,
            record.principal,
            record.method,
            record.resource,
            record.outcome,
            record.status_code,
            record.reason,
            previous,
            digest,
        ],
    )
    if last is None:
        cursor.execute("INSERT INTO audit_head VALUES (1, ?, ?)", [sequence, digest])
    else:
        cursor.execute("UPDATE audit_head SET sequence = ?, hash = ? WHERE id = 1", [sequence, digest])


class AuditLog:
    """The vault's audit log: appends events to the hash chain, lists them by filter, and verifies the chain.

    One per vault; the policy enforcement point appends, GovernanceService reads. Appends go through the
    database's single writer, so the chain's order is the commit order. Events are never changed or removed here.
    """

    def __init__(self, context: VaultContext) -> None:
        self._context = context

    def append(self, record: AuditRecord) -> None:
        time = self._context.clock()
        self._context.database.write(lambda cursor: append_in(cursor, record, time))

    def list(self, requested_size: int, token: str, filter_text: str) -> tuple[list[audit_pb2.AuditEvent], str]:
        settings = self._context.settings
        size = page_size(requested_size, settings.default_page_size, settings.max_page_size)
        compiled = compile_filter(filter_text, max_length=settings.max_filter_length, fields=AUDIT_FIELDS)
        last = decode_token(token, "audit", filter_text) or "0"
        if not last.isdigit():
            raise invalid("page_token is not a token this server issued; start again without one", "INVALID_PAGE_TOKEN")
        after = int(last)
        with self._context.database.read() as cursor:
            rows = cursor.execute(
                f"SELECT {_COLUMNS} FROM audit_events WHERE sequence > ? AND ({compiled.sql}) "
                "ORDER BY sequence LIMIT ?",
                [after, *compiled.params, size + 1],
            ).fetchall()
        events = [_event(row) for row in rows[:size]]
        next_token = encode_token(str(rows[size - 1][0]), "audit", filter_text) if len(rows) > size else ""
        return events, next_token

    def rows(self) -> Iterator[tuple[object, ...]]:
        with self._context.database.read() as cursor:
            cursor.execute(f"SELECT {_COLUMNS} FROM audit_events ORDER BY sequence")
            while batch := cursor.fetchmany(10_000):
                yield from batch

    def verify(self) -> Verification:
        previous, expected, checked = GENESIS_HASH, 1, 0
        for row in self.rows():
            sequence, time, principal, method, resource, outcome, status_code, reason, prev, digest = row
            checked += 1
            seq = int(str(sequence))
            if seq != expected:
                return Verification(False, checked, seq, f"event {seq} follows {expected - 1}: events are missing")
            if prev != previous:
                return Verification(False, checked, seq, f"event {seq} does not link to the event before it")
            record = AuditRecord(
                str(principal), str(method), str(resource), int(str(outcome)), str(status_code), str(reason)
            )
            assert isinstance(time, datetime)
            if hashlib.sha256(canonical(seq, time, record, str(prev))).hexdigest() != digest:
                return Verification(
                    False, checked, seq, f"event {seq} was altered: its hash does not match its content"
                )
            previous, expected = str(digest), expected + 1
        return Verification(True, checked)


def _event(row: tuple[object, ...]) -> audit_pb2.AuditEvent:
    sequence, time, principal, method, resource, outcome, status_code, reason, previous, digest = row
    event = audit_pb2.AuditEvent(
        name=f"auditEvents/{sequence}",
        sequence=int(str(sequence)),
        principal=str(principal),
        method=str(method),
        resource=str(resource),
        outcome=int(str(outcome)),  # type: ignore[arg-type]
        status_code=str(status_code),
        reason=str(reason),
        previous_hash=str(previous),
        hash=str(digest),
    )
    assert isinstance(time, datetime)
    set_timestamp(event.time, time)
    return event
