"""Expiry: an expired cube's content goes from every store and a tombstone in state EXPIRED stays, listed only on
request and only to those who could see the cube, until ``expired_retention_seconds`` past its expire time.

The sweeper's own thread never runs here (an hour apart): the tests move the vault's clock and call ``sweep``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from memos_test_support import admin_token, authorized_channel, reason_of, share_with_viewer_and_editor, start_server

from memos_grpc._proto.memos.v1 import cube_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import MemosServer
from memos_grpc.vault.context import VaultContext, utc_now
from memos_grpc.vault.retention import sweep

SPACE = "spaces/fleeting"
RETENTION = 600
EXPIRED = cube_pb2.LIFECYCLE_STATE_EXPIRED
LEXICAL = v.SEARCH_MODE_LEXICAL


@dataclass
class World:
    server: MemosServer
    context: VaultContext
    admin: VaultServiceStub
    viewer: VaultServiceStub
    editor: VaultServiceStub
    governance: GovernanceServiceStub
    expire_at: datetime
    blob_digest: str


@pytest.fixture
def world(tmp_path: Path, embedder: Embedder) -> Iterator[World]:
    server = start_server(
        tmp_path / "data",
        embedder,
        sweep_interval_seconds=3600,
        blob_grace_seconds=30,
        expired_retention_seconds=RETENTION,
    )
    assert server.vault is not None
    admin = authorized_channel(server.address, admin_token(server))
    governance = GovernanceServiceStub(admin)
    governance.CreateSpace(g.CreateSpaceRequest(space_id="fleeting"))
    channels = [admin]
    stubs = {}
    for name, token in share_with_viewer_and_editor(governance, SPACE).items():
        channels.append(authorized_channel(server.address, token))
        stubs[name] = VaultServiceStub(channels[-1])
    vault = VaultServiceStub(admin)
    expire_at = utc_now().replace(microsecond=0) + timedelta(seconds=60)

    def fleeting(text: str, **fields: object) -> cube_pb2.MemCube:
        cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text), **fields)  # type: ignore[arg-type]
        cube.expire_time.FromDatetime(expire_at)
        return cube

    vault.CreateCube(
        v.CreateCubeRequest(
            parent=SPACE, cube_id="note", cube=fleeting("the narwhal tank closes at noon", tags=["zoo"])
        )
    )
    vault.UpdateCube(  # a second version, whose history goes with the content
        v.UpdateCubeRequest(
            cube=cube_pb2.MemCube(name=f"{SPACE}/cubes/note", labels={"room": "aquarium"}),
            update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
        )
    )
    private = fleeting("the owner's own reminder about the axolotl")
    private.access.scope = cube_pb2.CubeAccess.SCOPE_OWNER
    vault.CreateCube(v.CreateCubeRequest(parent=SPACE, cube_id="private", cube=private))
    data = b"kv cache bytes of a fleeting cache"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    vault.WritePayload(iter([v.WritePayloadRequest(parent=SPACE, data=data)]))
    cache = cube_pb2.MemCube(
        activation=cube_pb2.ActivationPayload(
            blob=cube_pb2.BlobRef(digest=digest), model_fingerprint="m@sha256:0", source_text="a cached okapi"
        )
    )
    cache.expire_time.FromDatetime(expire_at)
    vault.CreateCube(v.CreateCubeRequest(parent=SPACE, cube_id="cache", cube=cache))
    stubs["editor"].CreateCube(v.CreateCubeRequest(parent=SPACE, cube_id="theirs", cube=fleeting("an editor's note")))
    vault.CreateCube(
        v.CreateCubeRequest(
            parent=SPACE, cube_id="stays", cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="a keeper"))
        )
    )
    try:
        yield World(
            server,
            server.vault.context,
            vault,
            stubs["viewer"],
            stubs["editor"],
            governance,
            expire_at,
            digest,
        )
    finally:
        for channel in channels:
            channel.close()
        server.stop(grace=1)


def listed(stub: VaultServiceStub, show_expired: bool = False) -> dict[str, cube_pb2.MemCube]:
    reply = stub.ListCubes(v.ListCubesRequest(parent=SPACE, show_expired=show_expired, page_size=2))
    cubes = list(reply.cubes)
    while reply.next_page_token:
        reply = stub.ListCubes(
            v.ListCubesRequest(parent=SPACE, show_expired=show_expired, page_size=2, page_token=reply.next_page_token)
        )
        cubes.extend(reply.cubes)
    return {c.name.rsplit("/", 1)[1]: c for c in cubes}


def refused(call: object, *args: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.code(), reason_of(caught.value)


def move_clock(context: VaultContext, when: datetime) -> None:
    context.clock = lambda: when


def test_an_expired_cube_becomes_a_tombstone_then_goes(world: World) -> None:
    admin, context = world.admin, world.context
    before = {name: world.admin.GetCube(v.GetCubeRequest(name=f"{SPACE}/cubes/{name}")) for name in ("note", "cache")}
    assert before["note"].expire_time_setter == "principals/admin" and before["note"].version == 2
    assert not listed(admin)["stays"].expire_time_setter
    assert listed(world.editor)["theirs"].expire_time_setter == "principals/editor"

    move_clock(context, world.expire_at + timedelta(seconds=1))
    # At once, before any sweep: out of every read and search, told apart from a deletion.
    assert set(listed(admin)) == {"stays"}
    assert refused(admin.GetCube, v.GetCubeRequest(name=f"{SPACE}/cubes/note")) == (
        grpc.StatusCode.NOT_FOUND,
        "CUBE_EXPIRED",
    )
    assert refused(admin.GetCube, v.GetCubeRequest(name=f"{SPACE}/cubes/gone")) == (
        grpc.StatusCode.NOT_FOUND,
        "CUBE_NOT_FOUND",
    )
    rendered = listed(admin, show_expired=True)
    assert set(rendered) == {"note", "private", "cache", "theirs", "stays"}
    for name, original in before.items():
        stone = rendered[name]
        assert stone.state == EXPIRED and stone.WhichOneof("payload") is None
        assert (stone.name, stone.provenance_id, stone.type) == (original.name, original.provenance_id, original.type)
        assert stone.expire_time == original.expire_time and stone.create_time == original.create_time
        assert stone.expire_time_setter == "principals/admin"
        assert stone.purge_time.seconds == original.expire_time.seconds + RETENTION
        assert stone.version == original.version + 1 and stone.etag != original.etag
        assert not stone.tags and not stone.labels and not stone.usage_count
    search = admin.SearchCubes(v.SearchCubesRequest(parent=SPACE, text="narwhal tank", top_k=10)).results
    assert [hit.cube.name for hit in search] == [f"{SPACE}/cubes/stays"]

    report = sweep(context)
    assert (report.expired, report.cubes, report.vectors) == (4, 0, 4)
    assert report.blobs == 1, "the cache's blob goes: its upload is past the grace period and nothing names it"
    assert not context.blobs.exists(world.blob_digest)
    assert listed(admin, show_expired=True) == rendered, "the stored tombstones are the ones reads rendered"
    assert context.catalog.size("fleeting") == 1
    with context.database.read() as cursor:
        stones = cursor.execute(
            "SELECT count(*) FROM cubes WHERE space_id = 'fleeting' AND state = ? AND vec_id IS NULL "
            "AND embedding IS NULL AND blob_digest IS NULL AND len(tags) = 0",
            [EXPIRED],
        ).fetchone()
        versions = cursor.execute(
            "SELECT count(*) FROM cube_versions WHERE space_id = 'fleeting' AND cube_id <> 'stays'"
        ).fetchone()
        assert cursor.execute("SELECT count(*) FROM blobs").fetchone() == (0,)
    assert stones == (4,) and versions == (0,)
    lexical = context.catalog.lexical
    assert lexical is not None
    lexical.refresh()
    for text in ("narwhal", "okapi", "axolotl"):
        hits = admin.SearchCubes(v.SearchCubesRequest(parent=SPACE, text=text, top_k=10, mode=LEXICAL)).results
        assert [hit.cube.name for hit in hits] in ([], [f"{SPACE}/cubes/stays"]), text
    assert refused(admin.ListCubeVersions, v.ListCubeVersionsRequest(name=f"{SPACE}/cubes/note"))[0] == (
        grpc.StatusCode.NOT_FOUND
    )
    assert sweep(context).expired == 0, "a tombstone is not emptied twice"
    # The name stays taken while its tombstone is listed.
    text = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="a new note"))
    assert refused(admin.CreateCube, v.CreateCubeRequest(parent=SPACE, cube_id="note", cube=text)) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "CUBE_ALREADY_EXISTS",
    )

    move_clock(context, world.expire_at + timedelta(seconds=RETENTION - 1))
    assert sweep(context).cubes == 0
    move_clock(context, world.expire_at + timedelta(seconds=RETENTION))
    report = sweep(context)
    assert (report.expired, report.cubes) == (0, 4)
    assert set(listed(admin, show_expired=True)) == {"stays"}
    with context.database.read() as cursor:
        assert cursor.execute("SELECT count(*) FROM cubes WHERE space_id = 'fleeting'").fetchone() == (1,)
    admin.CreateCube(v.CreateCubeRequest(parent=SPACE, cube_id="note", cube=text))


def test_a_tombstone_is_shown_only_to_those_who_could_see_the_cube(world: World) -> None:
    move_clock(world.context, world.expire_at + timedelta(seconds=1))
    for swept in (False, True):
        assert set(listed(world.viewer, show_expired=True)) == {"note", "cache", "theirs", "stays"}, swept
        assert refused(world.viewer.GetCube, v.GetCubeRequest(name=f"{SPACE}/cubes/private")) == (
            grpc.StatusCode.NOT_FOUND,
            "CUBE_NOT_FOUND",
        )
        assert refused(world.viewer.GetCube, v.GetCubeRequest(name=f"{SPACE}/cubes/note"))[1] == "CUBE_EXPIRED"
        assert set(listed(world.viewer)) == {"stays"}
        sweep(world.context)


def test_erasure_removes_the_tombstones_of_a_principals_cubes(world: World) -> None:
    move_clock(world.context, world.expire_at + timedelta(seconds=1))
    assert sweep(world.context).expired == 4
    report = world.governance.ErasePrincipalData(g.ErasePrincipalDataRequest(name="principals/editor"))
    assert report.cubes_removed == 1 and report.vectors_removed == 0, "its tombstone has no vector left"
    assert set(listed(world.admin, show_expired=True)) == {"note", "private", "cache", "stays"}


def test_a_zero_retention_removes_the_tombstone_in_the_same_sweep(world: World) -> None:
    world.context.settings = dataclasses.replace(world.context.settings, expired_retention_seconds=0)
    move_clock(world.context, world.expire_at)
    report = sweep(world.context)
    assert (report.expired, report.cubes) == (4, 4)
    assert set(listed(world.admin, show_expired=True)) == {"stays"}


def test_tombstones_are_not_counted_and_do_not_keep_a_space_from_being_deleted(world: World) -> None:
    assert world.governance.GetSpace(g.GetSpaceRequest(name=SPACE)).cube_count == 5
    move_clock(world.context, world.expire_at)
    assert world.governance.GetSpace(g.GetSpaceRequest(name=SPACE)).cube_count == 1
    assert sweep(world.context).expired == 4
    listed_spaces = world.governance.ListSpaces(g.ListSpacesRequest()).spaces
    assert [s.cube_count for s in listed_spaces if s.name == SPACE] == [1]
    world.admin.DeleteCube(v.DeleteCubeRequest(name=f"{SPACE}/cubes/stays"))
    world.governance.DeleteSpace(g.DeleteSpaceRequest(name=SPACE))  # no force: only tombstones are left
    with world.context.database.read() as cursor:
        assert cursor.execute("SELECT count(*) FROM cubes WHERE space_id = 'fleeting'").fetchone() == (0,)
