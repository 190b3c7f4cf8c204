"""The public halves of the keys every server sharing a database must sign with alike (``meta`` rows).

A node's identity is its keys: the node key signs its exports, the marketplace and log keys its releases and
checkpoints, the witness key its cosignatures. Servers sharing a PostgreSQL database are one node, so they must
load the same keys (one ``keys_dir``). The first server to start records each key's public half; the others
compare theirs with it.
"""

from __future__ import annotations

from memos_grpc.store.cursor import Cursor

_PREFIX = "server_key:"


def agree_on_keys(cursor: Cursor, keys: dict[str, bytes]) -> list[str]:
    """Returns the names of the keys that differ from the recorded ones; when none does, records those not
    recorded yet."""
    recorded = {}
    for name in keys:
        found = cursor.execute("SELECT value FROM meta WHERE key = ?", [_PREFIX + name]).fetchone()
        if found is not None:
            recorded[name] = str(found[0])
    differing = sorted(name for name, value in recorded.items() if value != keys[name].hex())
    if not differing:
        for name in sorted(set(keys) - set(recorded)):
            cursor.execute("INSERT INTO meta (key, value) VALUES (?, ?)", [_PREFIX + name, keys[name].hex()])
    return differing
