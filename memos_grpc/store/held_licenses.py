"""A buyer's held licenses as stored: ``held_licenses`` and ``held_license_uses`` (schema v12).

A held license is a grant this node verified at a licensed import, keyed by the grant's sha256, with the proof it
came with; its uses are counted per metered action, one row each from the first import on, so that counting a use
is a plain update. Whether a use is allowed is the license book's (``memos_grpc.marketplace.held``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from memos_grpc.store.database import Connection


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


def license_uses(cursor: Connection) -> list[tuple[str, str, int]]:
    """(license id, action, uses) of every counted action of every held license."""
    rows = cursor.execute("SELECT license_id, action, uses FROM held_license_uses").fetchall()
    return [(str(license_id), str(action), int(uses)) for license_id, action, uses in rows]


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


def open_use_counts(cursor: Connection, license_id: str, actions: Iterable[str]) -> None:
    """A count of 0 for each of ``actions`` the license has no count of yet (``count_use`` then updates it)."""
    for action in actions:
        cursor.execute(
            "INSERT INTO held_license_uses VALUES (?, ?, 0) ON CONFLICT (license_id, action) DO NOTHING",
            [license_id, action],
        )


def count_use(cursor: Connection, license_id: str, action: str, uses: int = 1) -> None:
    """Adds ``uses`` to the license's count of ``action`` (opened by ``open_use_counts``)."""
    # A plain update of the row the import wrote (an insert-or-update costs about twice as much).
    cursor.execute(
        "UPDATE held_license_uses SET uses = uses + ? WHERE license_id = ? AND action = ?", [uses, license_id, action]
    )
