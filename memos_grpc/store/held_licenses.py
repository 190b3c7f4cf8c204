"""A buyer's held licenses as stored: ``held_licenses`` and ``held_license_uses`` (schema v12).

A held license is a grant this node verified at a licensed import, keyed by the grant's sha256, with the proof it
came with; its uses are counted per metered action, one row each from the first import on, so that counting a use
is a plain update. Whether a use is allowed is the license book's (``memos_grpc.marketplace.held``).

Every write notes ``LICENSES`` in the change log, so that the other servers of a PostgreSQL database read the
counts again (and any license new to them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from memos_grpc.store.database import Connection

#: The change kind of a held license kept or a use counted.
LICENSES = "held_licenses"


@dataclass(frozen=True)
class HeldRow:
    """A held license as stored: its id, the grant's envelope, its proof, its grant's log index, when imported."""

    license_id: str
    envelope: bytes
    proof: str
    grant_index: int
    import_time: datetime


def held_licenses(cursor: Connection) -> list[HeldRow]:
    """Every held license, in no particular order."""
    rows = cursor.execute(
        "SELECT license_id, grant_envelope, proof, grant_index, import_time FROM held_licenses"
    ).fetchall()
    return [
        HeldRow(str(license_id), bytes(envelope), str(proof), int(grant_index), import_time)
        for license_id, envelope, proof, grant_index, import_time in rows
    ]


def held_license_ids(cursor: Connection) -> list[str]:
    """The id of every held license, in no particular order."""
    return [str(license_id) for (license_id,) in cursor.execute("SELECT license_id FROM held_licenses").fetchall()]


def held_license(cursor: Connection, license_id: str) -> HeldRow | None:
    """The held license ``license_id``, or None when this node does not hold it."""
    row = cursor.execute(
        "SELECT license_id, grant_envelope, proof, grant_index, import_time FROM held_licenses WHERE license_id = ?",
        [license_id],
    ).fetchone()
    if row is None:
        return None
    return HeldRow(str(row[0]), bytes(row[1]), str(row[2]), int(row[3]), row[4])


def license_uses(cursor: Connection) -> list[tuple[str, str, int]]:
    """(license id, action, uses) of every counted action of every held license."""
    rows = cursor.execute("SELECT license_id, action, uses FROM held_license_uses").fetchall()
    return [(str(license_id), str(action), int(uses)) for license_id, action, uses in rows]


def use_count(cursor: Connection, license_id: str, action: str) -> int:
    """How many times ``action`` used the license, as committed (0 before its first import)."""
    row = cursor.execute(
        "SELECT uses FROM held_license_uses WHERE license_id = ? AND action = ?", [license_id, action]
    ).fetchone()
    return 0 if row is None else int(row[0])


def insert_held_license(cursor: Connection, held: HeldRow, licensee: str, log_origin: str, publish_index: int) -> None:
    """Keeps a newly held license (one held already keeps its row)."""
    cursor.execute(
        "INSERT INTO held_licenses VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (license_id) DO NOTHING",
        [
            held.license_id,
            held.envelope,
            held.proof,
            licensee,
            log_origin,
            held.grant_index,
            publish_index,
            held.import_time,
        ],
    )
    cursor.changed(LICENSES)


def open_use_counts(cursor: Connection, license_id: str, actions: Iterable[str]) -> None:
    """A count of 0 for each of ``actions`` the license has no count of yet (``count_use`` then updates it)."""
    for action in actions:
        cursor.execute(
            "INSERT INTO held_license_uses VALUES (?, ?, 0) ON CONFLICT (license_id, action) DO NOTHING",
            [license_id, action],
        )


def count_use(cursor: Connection, license_id: str, action: str, uses: int = 1) -> int | None:
    """Adds ``uses`` to the license's count of ``action`` (opened by ``open_use_counts``); returns the new count,
    None when the license has no count of ``action`` to add to.

    An increment, never a value computed elsewhere: uses other servers count meanwhile add up.
    """
    # A plain update of the row the import wrote (an insert-or-update costs about twice as much).
    row = cursor.execute(
        "UPDATE held_license_uses SET uses = uses + ? WHERE license_id = ? AND action = ? RETURNING uses",
        [uses, license_id, action],
    ).fetchone()
    cursor.changed(LICENSES)
    return None if row is None else int(row[0])
