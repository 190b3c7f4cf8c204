"""The witness's state (``witness_state``, schema v10): per log origin, the latest checkpoint it cosigned."""

from __future__ import annotations

from dataclasses import dataclass

from memos_grpc.store.database import Connection


@dataclass(frozen=True)
class WitnessedCheckpoint:
    """The latest checkpoint the witness cosigned for a log."""

    origin: str
    size: int
    root: bytes
    note: str
    #: Unix seconds of the cosignature.
    cosign_time: int


def witnessed_checkpoint(cursor: Connection, origin: str) -> WitnessedCheckpoint | None:
    """The latest checkpoint cosigned for ``origin``, or None before the first."""
    row = cursor.execute(
        "SELECT tree_size, root, note, cosign_time FROM witness_state WHERE origin = ?", [origin]
    ).fetchone()
    if row is None:
        return None
    return WitnessedCheckpoint(origin, int(row[0]), bytes(row[1]), str(row[2]), int(row[3]))


def record_cosigned(cursor: Connection, checkpoint: WitnessedCheckpoint) -> None:
    """Makes ``checkpoint`` its log's latest cosigned one, replacing what was there."""
    cursor.execute(
        """
        INSERT INTO witness_state VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (origin) DO UPDATE
        SET tree_size = excluded.tree_size, root = excluded.root, note = excluded.note,
            cosign_time = excluded.cosign_time
        """,
        [checkpoint.origin, checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.cosign_time],
    )
