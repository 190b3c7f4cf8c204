"""memos_grpc.store.market_releases on a real database and blob store: a release's row by id and by its publish
entry, yanked rows left out of the active ones, the filter over its columns, key changes in log order, and the
bundle's blob file kept only when asked."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc.store import market_releases
from memos_grpc.store.blobs import BlobStore
from memos_grpc.store.database import Database
from memos_grpc.store.filter import compile_filter
from memos_grpc.store.market_releases import RELEASE_FIELDS_FILTER, PublishedRelease

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _release(listing_id: str, release_id: str, log_index: int, license: str) -> m.Release:
    return m.Release(
        name=f"listings/{listing_id}/releases/{release_id}",
        state=m.Release.STATE_ACTIVE,
        bundle_digest="sha256:" + hashlib.sha256(release_id.encode()).hexdigest(),
        statement_digest="sha256:" + "0" * 64,
        license=license,
        memory_types=[cube_pb2.MEMORY_TYPE_PLAINTEXT],
        log_index=log_index,
    )


def _publish(database: Database, listing_id: str, release: m.Release, license_ids: list[str]) -> None:
    release_id = release.name.rsplit("/", 1)[1]
    database.write(
        lambda cursor: market_releases.insert_release(cursor, listing_id, release_id, release, T0, license_ids)
    )


@pytest.fixture
def published(database: Database) -> dict[str, m.Release]:
    releases = {
        "1.0.0": _release("wine", "1.0.0", 0, "MIT"),
        "1.1.0": _release("wine", "1.1.0", 3, "MIT OR Apache-2.0"),
        "2.0.0": _release("wine", "2.0.0", 5, "Apache-2.0"),
    }
    for release_id, release in releases.items():
        _publish(database, "wine", release, ["MIT", "Apache-2.0"] if release_id == "1.1.0" else [release.license])
    _publish(database, "beer", _release("beer", "1.0.0", 7, "MIT"), ["MIT"])
    return releases


def test_a_release_is_found_by_id_and_by_its_publish_entry(database: Database, published: dict[str, m.Release]) -> None:
    release = published["1.1.0"]
    with database.read() as cursor:
        assert market_releases.release_by_id(cursor, "wine", "1.1.0") == release
        assert market_releases.release_by_id(cursor, "beer", "1.1.0") is None
        assert market_releases.release_and_bundle(cursor, "wine", "1.1.0") == (release, release.bundle_digest)
        assert market_releases.release_and_bundle(cursor, "wine", "9.9.9") is None
        assert market_releases.release_published_at(cursor, 3) == PublishedRelease("wine", release)
        assert market_releases.release_published_at(cursor, 4) is None


def test_a_yanked_release_leaves_the_active_ones(database: Database, published: dict[str, m.Release]) -> None:
    yanked = m.Release()
    yanked.CopyFrom(published["2.0.0"])
    yanked.state = m.Release.STATE_YANKED
    yanked.yank.reason = "broken"
    database.write(lambda cursor: market_releases.yank_release(cursor, "wine", "2.0.0", yanked))
    with database.read() as cursor:
        active = market_releases.active_releases(cursor, "wine")
        assert market_releases.release_by_id(cursor, "wine", "2.0.0") == yanked
    assert sorted(r.release_id for r in active) == ["1.0.0", "1.1.0"]
    assert {r.release_id: r.message() for r in active} == {k: published[k] for k in ("1.0.0", "1.1.0")}


def test_the_filter_reads_the_release_columns(database: Database, published: dict[str, m.Release]) -> None:
    database.write(lambda cursor: market_releases.yank_release(cursor, "wine", "1.0.0", published["1.0.0"]))

    def ids(text: str, show_yanked: bool) -> list[str]:
        matching = compile_filter(text, fields=RELEASE_FIELDS_FILTER)
        with database.read() as cursor:
            rows = market_releases.releases_matching(cursor, "wine", matching, show_yanked=show_yanked)
        return sorted(r.release_id for r in rows)

    assert ids("", False) == ["1.1.0", "2.0.0"]
    assert ids("", True) == ["1.0.0", "1.1.0", "2.0.0"]
    assert ids("license_ids:MIT", True) == ["1.0.0", "1.1.0"]
    assert ids('license = "Apache-2.0"', False) == ["2.0.0"]
    assert ids("state = STATE_YANKED", True) == ["1.0.0"]
    assert ids("state = STATE_YANKED", False) == []
    assert ids("memory_types:MEMORY_TYPE_PLAINTEXT", False) == ["1.1.0", "2.0.0"]


def _key_change(database: Database, index: int, listing_id: str, record: bytes) -> None:
    database.write(lambda cursor: market_releases.insert_key_change(cursor, index, listing_id, record, T0))


def test_key_changes_are_read_in_log_order(database: Database) -> None:
    for index, listing_id in [(9, "wine"), (2, "wine"), (4, "beer")]:
        record = f'{{"listing":"listings/{listing_id}","at":{index}}}'.encode()
        _key_change(database, index, listing_id, record)
    with database.read() as cursor:
        assert market_releases.key_changes(cursor, "wine") == [
            (2, b'{"listing":"listings/wine","at":2}'),
            (9, b'{"listing":"listings/wine","at":9}'),
        ]
        assert market_releases.key_changes(cursor, "cider") == []


def test_a_bundle_is_a_blob_only_once_kept(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    bundle = b"a bundle's bytes " * 1000
    writer = market_releases.bundle_writer(blobs, len(bundle))
    writer.write(bundle[:100])
    writer.write(bundle[100:])
    digest = market_releases.keep_bundle(writer)
    assert digest == "sha256:" + hashlib.sha256(bundle).hexdigest()
    assert b"".join(blobs.read(digest, chunk_bytes=4096)) == bundle
    dropped = market_releases.bundle_writer(blobs, 100)
    dropped.write(b"validated only")
    dropped.abort()
    assert not blobs.exists(dropped.digest)
    assert list(blobs.temp_dir.iterdir()) == []
