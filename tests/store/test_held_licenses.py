"""memos_grpc.store.held_licenses on a real database: a held license is kept once, as first imported, and its uses
are counted per action from the counts its first import opened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memos_grpc.store import held_licenses
from memos_grpc.store.database import Connection, Database
from memos_grpc.store.held_licenses import HeldRow

T0 = datetime(2030, 1, 1, tzinfo=UTC)
ACTIONS = ("import", "recall", "search")


def _import(database: Database, held: HeldRow) -> None:
    """What a licensed import writes of its license: the row (first time), the counts, one import counted."""

    def apply(cursor: Connection) -> None:
        held_licenses.insert_held_license(cursor, held, "principals/bob", "market.example/log", 41)
        held_licenses.open_use_counts(cursor, held.license_id, ACTIONS)
        held_licenses.count_use(cursor, held.license_id, "import")

    database.write(apply)


def test_a_held_license_is_kept_as_first_imported(database: Database) -> None:
    first = HeldRow("a" * 64, b'{"grant": 1}', "tlog-proof@v1 ...", 42, T0)
    _import(database, first)
    _import(database, HeldRow("a" * 64, b'{"grant": "other"}', "another proof", 43, T0 + timedelta(days=1)))
    second = HeldRow("b" * 64, b'{"grant": 2}', "proof 2", 50, T0 + timedelta(hours=1))
    _import(database, second)
    with database.read() as cursor:
        rows = held_licenses.held_licenses(cursor)
        kept = cursor.execute("SELECT licensee, log_origin, publish_index FROM held_licenses").fetchall()
    assert sorted(rows, key=lambda row: row.license_id) == [first, second]
    assert set(kept) == {("principals/bob", "market.example/log", 41)}


def test_uses_are_counted_per_action(database: Database) -> None:
    held = HeldRow("c" * 64, b"{}", "proof", 1, T0)
    _import(database, held)
    _import(database, held)  # a second import of the same license opens no count twice
    database.write(lambda cursor: held_licenses.count_use(cursor, held.license_id, "search", 5))
    database.write(lambda cursor: held_licenses.count_use(cursor, held.license_id, "search"))
    with database.read() as cursor:
        uses = held_licenses.license_uses(cursor)
    assert sorted(uses) == [
        (held.license_id, "import", 2),
        (held.license_id, "recall", 0),
        (held.license_id, "search", 6),
    ]
