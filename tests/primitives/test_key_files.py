"""Key files made by servers that share a key directory and start at once: exactly one writes, all read the same."""

from __future__ import annotations

import threading
from pathlib import Path

from memos_grpc.files import create_private
from memos_grpc.primitives.keys import SigningKey

CREATORS = 8


def test_of_creators_racing_exactly_one_creates_the_file_and_it_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "node.key"
    start = threading.Barrier(CREATORS)
    made: list[bool] = []

    def create(number: int) -> None:
        start.wait()
        made.append(create_private(path, f"written by creator {number}\n".encode() * 100))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(CREATORS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(made) == [False] * (CREATORS - 1) + [True]
    lines = set(path.read_text().splitlines())
    assert len(lines) == 1  # one creator's bytes, whole
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["node.key"]  # no temporary file left behind


def test_servers_loading_a_new_key_at_once_all_get_the_one_written(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    start = threading.Barrier(CREATORS)
    loaded: list[bytes] = []

    def load() -> None:
        start.wait()
        loaded.append(SigningKey.load_or_create(path).public_key)

    threads = [threading.Thread(target=load) for _ in range(CREATORS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(loaded) == {SigningKey.read(path).public_key}
    assert not create_private(path, b"another key")
