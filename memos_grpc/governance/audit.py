"""The audit log: append-only, hash-chained events of every mutating and every denied call.

Each event's hash is the sha256 of its canonical JSON (sorted keys, no
spaces), which includes the previous event's hash; editing, removing or
reordering any row breaks the chain from there on, and ``verify`` names the
first broken event.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import audit_pb2
from memos_grpc.store import audit as audit_store
from memos_grpc.store.audit import AUDIT_FIELDS, AuditRow
from memos_grpc.store.database import Connection
from memos_grpc.store.filter import compile_filter
from memos_grpc.store.group_commit import Rider
from memos_grpc.store.paging import decode_token, encode_token, page_size
from memos_grpc.vault.context import VaultContext
from memos_grpc.vault.validation import invalid

GENESIS_HASH = "0" * 64


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
    # Read the chain's end inside the transaction: earlier events of the same group count.
    end = audit_store.chain_end(cursor)
    sequence, previous = (1, GENESIS_HASH) if end is None else (end.sequence + 1, end.hash)
    digest = hashlib.sha256(canonical(sequence, time, record, previous)).hexdigest()
    event = AuditRow(
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
    )
    audit_store.append_event(cursor, event, end)


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

    def rider(self, record: AuditRecord) -> Rider:
        """``record`` as work for the write that concludes its call (``group_commit.riding``): if that write
        commits, so does the event, in its transaction; if the rider is not ``committed``, ``append`` it."""
        return Rider(lambda cursor: append_in(cursor, record, self._context.clock()))

    def list(self, requested_size: int, token: str, filter_text: str) -> tuple[list[audit_pb2.AuditEvent], str]:
        settings = self._context.settings
        size = page_size(requested_size, settings.default_page_size, settings.max_page_size)
        compiled = compile_filter(filter_text, max_length=settings.max_filter_length, fields=AUDIT_FIELDS)
        last = decode_token(token, "audit", filter_text) or "0"
        if not last.isdigit():
            raise invalid(
                "page_token is not a token this server issued; start again without one", reasons.INVALID_PAGE_TOKEN
            )
        after = int(last)
        with self._context.database.read() as cursor:
            rows = audit_store.events_after(cursor, after, compiled, size + 1)
        events = [row.message() for row in rows[:size]]
        next_token = encode_token(str(rows[size - 1].sequence), "audit", filter_text) if len(rows) > size else ""
        return events, next_token

    def verify(self) -> Verification:
        previous, expected, checked = GENESIS_HASH, 1, 0
        with self._context.database.read() as cursor:
            for row in audit_store.chain(cursor):
                checked += 1
                seq = row.sequence
                if seq != expected:
                    return Verification(False, checked, seq, f"event {seq} follows {expected - 1}: events are missing")
                if row.previous_hash != previous:
                    return Verification(False, checked, seq, f"event {seq} does not link to the event before it")
                record = AuditRecord(row.principal, row.method, row.resource, row.outcome, row.status_code, row.reason)
                if hashlib.sha256(canonical(seq, row.time, record, row.previous_hash)).hexdigest() != row.hash:
                    return Verification(
                        False, checked, seq, f"event {seq} was altered: its hash does not match its content"
                    )
                previous, expected = row.hash, expected + 1
        return Verification(True, checked)
