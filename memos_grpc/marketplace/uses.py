"""Counting the uses of held licenses: the count a limit is decided on, and what one server knows of the counts.

A ``count`` limit is decided inside the write transaction that counts the use, from the stored count
(``count_in``): every server of a PostgreSQL database writes one transaction at a time, so two servers counting at
once never pass a limit together, and a use refused there writes nothing. Before that each server checks what it
knows (``UseCounts``): the stored counts as it last read them, plus the uses it counted itself and has not
committed yet (reserved, admitted imports, and the uses no limit depends on, written in batches). That check
refuses early what the transaction would refuse, and keeps this server's own concurrent calls from taking more
uses than are left; the transaction has the last word.

A use whose action has happened already when it is counted (a transform, counted once its operation is queued)
is counted even past the limit, and logged: the record must say what happened.

The stored counts are replaced, never added to, by what a transaction read (``stored``): a use this server
committed (the count its own write left) or a read of every count (another server counted). Both run on the
vault's writer and reach this server in commit order, so each replacement holds every earlier commit and none of
the uses still pending here.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from memos_grpc import reasons
from memos_grpc._proto.memos.v1 import audit_pb2
from memos_grpc.errors import FailedPreconditionError
from memos_grpc.governance.audit import AuditRecord, append_in
from memos_grpc.marketplace.grants import Grant
from memos_grpc.store import held_licenses
from memos_grpc.store.database import Connection

log = logging.getLogger(__name__)

#: What ``count_in`` does with a use the stored count leaves no room for: refuse the whole transaction (the action
#: has not happened), leave that license out (the action drops what it may not use), or count it all the same (the
#: action has happened).
REFUSE, LEAVE_OUT, RECORD = "refuse", "leave out", "record"
#: ``heldLicenses/{id}``: the id is the lowercase hex sha256 of the grant's statement (its grant digest).
COLLECTION = "heldLicenses"


def held_license_name(license_id: str) -> str:
    return f"{COLLECTION}/{license_id}"


@dataclass
class Held:
    """One held license as the book keeps it; ``uses`` are the stored counts per action as last read."""

    license_id: str
    grant: Grant
    envelope: bytes
    proof: str
    grant_index: int
    import_time: datetime
    uses: dict[str, int] = field(default_factory=dict)


class UseCounts:
    """This server's uses not yet committed, per (license, action), on top of the stored counts a ``Held`` keeps.

    Not locked: the license book calls it under its own lock.
    """

    def __init__(self) -> None:
        self._pending: Counter[tuple[str, str]] = Counter()

    def of(self, held: Held, action: str) -> int:
        """The uses of ``held`` by ``action`` as this server knows them: stored, plus its own not yet committed."""
        return held.uses.get(action, 0) + self._pending[(held.license_id, action)]

    def add(self, license_id: str, action: str, uses: int = 1) -> None:
        """Uses counted here, not yet committed (they count against the limits at once)."""
        self._pending[(license_id, action)] += uses

    def settle(self, license_id: str, action: str, uses: int = 1) -> None:
        """Uses no longer pending: committed (the stored count now holds them) or given back."""
        key = (license_id, action)
        left = self._pending[key] - uses
        if left > 0:
            self._pending[key] = left
        else:
            del self._pending[key]


def counted_against_a_limit(held: Held, action: str) -> bool:
    """Whether the terms limit how many times ``action`` may use ``held`` (then each use is written at once)."""
    permission = held.grant.terms.permission(action)
    return permission is not None and permission.count is not None


def exhausted(held: Held, action: str, stored: int) -> bool:
    """Whether a ``count`` limit of ``action`` leaves no use after ``stored`` (terms without one never do)."""
    permission = held.grant.terms.permission(action)
    return permission is not None and permission.count is not None and stored >= permission.count


def limit_reached(held: Held, action: str) -> FailedPreconditionError:
    return FailedPreconditionError(
        f"{held_license_name(held.license_id)} ({held.grant.release}): every {action} the terms permit has been used",
        reason=reasons.LICENSE_LIMIT_REACHED,
    )


def count_in(
    cursor: Connection, held: list[Held], action: str, principal: str, now: datetime, *, past_limit: str
) -> dict[str, tuple[int, bool]]:
    """Counts one use of each of ``held`` by ``action`` in the caller's transaction, each with its audit event,
    where the stored count leaves one; returns per license (its count now, whether this use was counted).

    ``past_limit`` says what happens to a license whose limit is reached: ``REFUSE`` the whole transaction
    (LICENSE_LIMIT_REACHED), ``LEAVE_OUT`` that license (the others are counted), or ``RECORD`` it all the same.
    """
    counts: dict[str, tuple[int, bool]] = {}
    for one in held:
        stored = held_licenses.use_count(cursor, one.license_id, action)
        if exhausted(one, action, stored):
            if past_limit == REFUSE:
                raise limit_reached(one, action)
            if past_limit == LEAVE_OUT:
                counts[one.license_id] = (stored, False)
                continue
            log.warning(
                "%s of %s counted past its limit: another server took the last use after this one's check",
                action,
                held_license_name(one.license_id),
            )
        after = held_licenses.count_use(cursor, one.license_id, action)
        counts[one.license_id] = (stored if after is None else after, True)
        append_in(cursor, use_record(principal, action, one.license_id), now)
    return counts


def use_record(principal: str, action: str, license_id: str) -> AuditRecord:
    """The audit event of one counted use (method ``license.<action>``, the held license as resource)."""
    return AuditRecord(
        principal, f"license.{action}", held_license_name(license_id), audit_pb2.AuditEvent.OUTCOME_OK, "OK", ""
    )
