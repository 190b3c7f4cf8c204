"""``memos-grpc migrate``: copy an embedded vault (a data directory's DuckDB file and blobs) into PostgreSQL.

The copy is ``store/postgres/transfer.py``'s. This command reports its progress on stderr, then compares both
sides (every table's rows, the blobs' bytes, the next vector label) and verifies the audit chain on PostgreSQL
with the vault's own verification, printing the comparison on stdout; it exits 0 only if every check holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from memos_grpc.errors import MemosError
from memos_grpc.settings import Settings

if TYPE_CHECKING:  # the store and the vault load only when the command runs
    from memos_grpc.governance.audit import Verification
    from memos_grpc.store.group_commit import Database
    from memos_grpc.store.postgres.transfer import Check, Copied


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "migrate",
        help="copy an embedded vault into an empty PostgreSQL database",
        description="Copy the vault of a data directory (its DuckDB records and blob files) into an empty "
        "PostgreSQL database, so that a server started on the same data directory with postgres_url set serves the "
        "same vault. The server must be stopped; the data directory is only read. docs/scaling.md describes it.",
    )
    parser.add_argument("--data-dir", type=Path, required=True, metavar="DIR", help="the embedded server's data dir")
    parser.add_argument(
        "--to",
        metavar="URL",
        help="the PostgreSQL database (libpq URL or key=value string; default: $MEMOS_POSTGRES_URL)",
    )
    parser.set_defaults(handler=run)


class _Reporter:
    """Prints a transfer's progress on stderr."""

    def blob_copied(self, digest: str, size: int, done: int, total: int) -> None:
        _note(f"blob {done}/{total} {digest} ({size:,} bytes)")

    def table_copied(self, table: str, done: int, total: int) -> None:
        _note(f"table {table}: {done:,} of {total:,} rows")

    def documents_written(self, done: int, total: int) -> None:
        _note(f"BM25 documents: {done:,} of {total:,} cubes")


class _Records:
    """The part of a vault's context ``AuditLog.verify`` reads: the database, here the one just written."""

    def __init__(self, database: Database) -> None:
        self.database = database


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.load(overrides={"data_dir": args.data_dir, "postgres_url": args.to})
    except MemosError as exc:
        _note(f"error: {exc.reason}: {exc.message}")
        return 2
    if not settings.postgres_url:
        _note("error: give the target database as --to URL or in MEMOS_POSTGRES_URL")
        return 2
    from memos_grpc.governance.audit import AuditLog
    from memos_grpc.store.postgres.transfer import VaultTransfer
    from memos_grpc.vault.context import VaultContext

    try:
        transfer = VaultTransfer(settings)
    except MemosError as exc:
        _note(f"error: {exc.reason}: {exc.message}")
        _note("nothing was copied")
        return 1
    try:
        _note(f"copying the vault in {settings.data_dir} into the PostgreSQL database")
        try:
            copied = transfer.copy(_Reporter())
        except MemosError as exc:
            _note(f"error: {exc.reason}: {exc.message}")
            _note("the copy failed; the target database holds none of the vault")
            return 1
        _report_copy(copied, settings)
        try:
            check = transfer.check()
            # Through the audit log itself, so the chain is checked exactly as VerifyAuditLog will check it.
            verification = AuditLog(cast(VaultContext, _Records(transfer.database))).verify()
        except MemosError as exc:
            _note(f"error: {exc.reason}: {exc.message}")
            _note("the copy is committed but was not checked: drop the database and migrate again into a new one")
            return 1
    finally:
        transfer.close()
    return _report_check(check, verification, settings)


def _report_copy(copied: Copied, settings: Settings) -> None:
    rows = sum(count for _, count in copied.tables)
    _note(f"copied {len(copied.tables)} tables ({rows:,} rows) and {copied.blobs} blobs ({copied.blob_bytes:,} bytes)")
    if copied.missing_files:
        _note(
            f"warning: {len(copied.missing_files)} recorded blobs have no file under {settings.blob_dir}; they could "
            "not be read before the copy either: " + ", ".join(copied.missing_files)
        )


def _report_check(check: Check, verification: Verification, settings: Settings) -> int:
    width = max(len(count.table) for count in check.counts)
    print(f"{'table':<{width}}  {'data dir':>10}  {'database':>10}")
    for count in check.counts:
        flag = "" if count.matches else "  MISMATCH"
        print(f"{count.table:<{width}}  {count.source:>10,}  {count.target:>10,}{flag}")
    print(f"blobs in the database: {check.blobs:,} ({check.blob_bytes:,} bytes)")
    print(f"vector labels: highest issued {check.highest_label:,}, next {check.next_label:,}")
    if verification:
        print(f"audit chain in the database: verified, {verification.events_checked:,} events")
    else:
        print(
            f"audit chain in the database: BROKEN at event {verification.first_broken_sequence}: {verification.problem}"
        )
    for problem in check.problems:
        _note(f"error: {problem}")
    if check.problems:
        _note(
            "error: the database does not hold the same vault as the data directory (the copy is committed: do not "
            "serve it; drop the database and migrate again into a new one)"
        )
    if not verification:
        _note(
            "error: the audit chain does not verify in the database; if the embedded server's VerifyAuditLog reports "
            "the same break, it was copied as it was"
        )
    if check.problems or not verification:
        return 1
    _note(
        f"done: start the server on {settings.data_dir} with postgres_url set to this database; the data directory's "
        "DuckDB file and blob files are no longer read"
    )
    return 0


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
