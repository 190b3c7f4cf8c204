"""Bad input gets a specific status and ErrorInfo reason, and changes nothing.

Each case is a named row: the call to make against a space holding one known
cube, the status code and reason expected. After every call the space's
cubes and blobs are compared with a snapshot taken before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from memos_test_support import admin_token, authorized_channel

from memos_grpc._proto.memos.v1 import cube_pb2, space_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.server.app import MemosServer

Code = grpc.StatusCode


@dataclass(frozen=True)
class World:
    vault: VaultServiceStub
    governance: GovernanceServiceStub
    space: str
    cube: cube_pb2.MemCube


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[World], object]
    code: grpc.StatusCode
    reason: str


def text(value: str) -> cube_pb2.MemCube:
    return cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=value))


def _upload(w: World, data: bytes, digest: str) -> object:
    def stream() -> Iterator[v.WritePayloadRequest]:
        yield v.WritePayloadRequest(parent=w.space, expected_digest=digest)
        yield v.WritePayloadRequest(data=data)

    return w.vault.WritePayload(stream())


def _update(w: World, cube: cube_pb2.MemCube, paths: list[str]) -> object:
    return w.vault.UpdateCube(v.UpdateCubeRequest(cube=cube, update_mask=field_mask_pb2.FieldMask(paths=paths)))


def _stale_update(w: World) -> object:
    cube = cube_pb2.MemCube(name=w.cube.name, etag="0" * 20, tags=["t"])
    return _update(w, cube, ["tags"])


CASES = [
    Case(
        "empty text",
        lambda w: w.vault.CreateCube(v.CreateCubeRequest(parent=w.space, cube=text(""))),
        Code.INVALID_ARGUMENT,
        "EMPTY_TEXT",
    ),
    Case(
        "blank text",
        lambda w: w.vault.CreateCube(v.CreateCubeRequest(parent=w.space, cube=text(" \n\t"))),
        Code.INVALID_ARGUMENT,
        "EMPTY_TEXT",
    ),
    Case(
        "oversized text",
        lambda w: w.vault.CreateCube(v.CreateCubeRequest(parent=w.space, cube=text("x" * 70_000))),
        Code.INVALID_ARGUMENT,
        "TEXT_TOO_LONG",
    ),
    Case(
        "wrong vector dimension",
        lambda w: w.vault.CreateCube(
            v.CreateCubeRequest(parent=w.space, cube=text("a"), vector=v.Vector(values=[1.0] * 3))
        ),
        Code.INVALID_ARGUMENT,
        "VECTOR_DIMENSION_MISMATCH",
    ),
    Case(
        "search vector of wrong dimension",
        lambda w: w.vault.SearchCubes(v.SearchCubesRequest(parent=w.space, vector=v.Vector(values=[1.0] * 10))),
        Code.INVALID_ARGUMENT,
        "VECTOR_DIMENSION_MISMATCH",
    ),
    Case(
        "zero vector",
        lambda w: w.vault.CreateCube(
            v.CreateCubeRequest(parent=w.space, cube=text("a"), vector=v.Vector(values=[0.0] * 384))
        ),
        Code.INVALID_ARGUMENT,
        "INVALID_VECTOR",
    ),
    Case(
        "unknown space on create",
        lambda w: w.vault.CreateCube(v.CreateCubeRequest(parent="spaces/no-such-space", cube=text("a"))),
        Code.NOT_FOUND,
        "SPACE_NOT_FOUND",
    ),
    Case(
        "unknown space on list",
        lambda w: w.vault.ListCubes(v.ListCubesRequest(parent="spaces/no-such-space")),
        Code.NOT_FOUND,
        "SPACE_NOT_FOUND",
    ),
    Case(
        "unknown space on search",
        lambda w: w.vault.SearchCubes(v.SearchCubesRequest(parent="spaces/no-such-space", text="a")),
        Code.NOT_FOUND,
        "SPACE_NOT_FOUND",
    ),
    Case(
        "unknown cube on get",
        lambda w: w.vault.GetCube(v.GetCubeRequest(name=f"{w.space}/cubes/nope")),
        Code.NOT_FOUND,
        "CUBE_NOT_FOUND",
    ),
    Case(
        "unknown cube on delete",
        lambda w: w.vault.DeleteCube(v.DeleteCubeRequest(name=f"{w.space}/cubes/nope")),
        Code.NOT_FOUND,
        "CUBE_NOT_FOUND",
    ),
    Case(
        "unknown space on get space",
        lambda w: w.governance.GetSpace(g.GetSpaceRequest(name="spaces/no-such-space")),
        Code.NOT_FOUND,
        "SPACE_NOT_FOUND",
    ),
    Case(
        "malformed cube name",
        lambda w: w.vault.GetCube(v.GetCubeRequest(name="cubes/x")),
        Code.INVALID_ARGUMENT,
        "INVALID_NAME",
    ),
    Case(
        "malformed cube id",
        lambda w: w.vault.CreateCube(v.CreateCubeRequest(parent=w.space, cube_id="Bad_Id", cube=text("a"))),
        Code.INVALID_ARGUMENT,
        "INVALID_NAME",
    ),
    Case(
        "duplicate cube id",
        lambda w: w.vault.CreateCube(v.CreateCubeRequest(parent=w.space, cube_id="known", cube=text("a"))),
        Code.ALREADY_EXISTS,
        "CUBE_ALREADY_EXISTS",
    ),
    Case(
        "malformed filter on list",
        lambda w: w.vault.ListCubes(v.ListCubesRequest(parent=w.space, filter="type = ")),
        Code.INVALID_ARGUMENT,
        "INVALID_FILTER",
    ),
    Case(
        "unknown filter field on search",
        lambda w: w.vault.SearchCubes(v.SearchCubesRequest(parent=w.space, text="a", filter="colour = red")),
        Code.INVALID_ARGUMENT,
        "INVALID_FILTER",
    ),
    Case(
        "bad page token",
        lambda w: w.vault.ListCubes(v.ListCubesRequest(parent=w.space, page_token="garbage!!")),
        Code.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    ),
    Case(
        "bad page token on spaces",
        lambda w: w.governance.ListSpaces(g.ListSpacesRequest(page_token="eyJ4IjoxfQ")),
        Code.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    ),
    Case(
        "negative page size",
        lambda w: w.vault.ListCubes(v.ListCubesRequest(parent=w.space, page_size=-1)),
        Code.INVALID_ARGUMENT,
        "INVALID_PAGE_SIZE",
    ),
    Case(
        "negative top_k",
        lambda w: w.vault.SearchCubes(v.SearchCubesRequest(parent=w.space, text="a", top_k=-5)),
        Code.INVALID_ARGUMENT,
        "INVALID_TOP_K",
    ),
    Case(
        "search without query",
        lambda w: w.vault.SearchCubes(v.SearchCubesRequest(parent=w.space)),
        Code.INVALID_ARGUMENT,
        "MISSING_QUERY",
    ),
    Case("stale etag on update", _stale_update, Code.ABORTED, "ETAG_MISMATCH"),
    Case(
        "stale etag on delete",
        lambda w: w.vault.DeleteCube(v.DeleteCubeRequest(name=w.cube.name, etag="stale")),
        Code.ABORTED,
        "ETAG_MISMATCH",
    ),
    Case(
        "update without mask",
        lambda w: _update(w, cube_pb2.MemCube(name=w.cube.name), []),
        Code.INVALID_ARGUMENT,
        "MISSING_UPDATE_MASK",
    ),
    Case(
        "update of an output-only field",
        lambda w: _update(w, cube_pb2.MemCube(name=w.cube.name, version=9), ["version"]),
        Code.INVALID_ARGUMENT,
        "INVALID_UPDATE_MASK",
    ),
    Case(
        "payload digest mismatch",
        lambda w: _upload(w, b"real bytes", "sha256:" + hashlib.sha256(b"other").hexdigest()),
        Code.INVALID_ARGUMENT,
        "PAYLOAD_DIGEST_MISMATCH",
    ),
    Case(
        "malformed payload digest",
        lambda w: _upload(w, b"bytes", "md5:abc"),
        Code.INVALID_ARGUMENT,
        "INVALID_DIGEST",
    ),
    Case(
        "payload type mismatch",
        lambda w: w.vault.CreateCube(
            v.CreateCubeRequest(
                parent=w.space,
                cube=cube_pb2.MemCube(
                    type=cube_pb2.MEMORY_TYPE_ACTIVATION, plaintext=cube_pb2.PlaintextPayload(text="a")
                ),
            )
        ),
        Code.INVALID_ARGUMENT,
        "PAYLOAD_TYPE_MISMATCH",
    ),
    Case(
        "priority out of range",
        lambda w: w.vault.CreateCube(
            v.CreateCubeRequest(
                parent=w.space,
                cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="a"), priority=1000),
            )
        ),
        Code.INVALID_ARGUMENT,
        "INVALID_PRIORITY",
    ),
    Case(
        "batch over the limit",
        lambda w: w.vault.BatchCreateCubes(
            v.BatchCreateCubesRequest(parent=w.space, requests=[v.CreateCubeRequest(cube=text("a"))] * 1001)
        ),
        Code.INVALID_ARGUMENT,
        "BATCH_TOO_LARGE",
    ),
    Case(
        "space with cubes deleted without force",
        lambda w: w.governance.DeleteSpace(g.DeleteSpaceRequest(name=w.space)),
        Code.FAILED_PRECONDITION,
        "SPACE_NOT_EMPTY",
    ),
    # Found by fuzzing: a default TTL this large overflowed timedelta and answered INTERNAL.
    Case(
        "default ttl of 2**63 seconds",
        lambda w: w.governance.CreateSpace(
            g.CreateSpaceRequest(space_id="ttl-huge", space=space_pb2.Space(default_ttl={"seconds": 2**63 - 1}))
        ),
        Code.INVALID_ARGUMENT,
        "INVALID_TTL",
    ),
    Case(
        "default ttl past the year 9999",
        lambda w: w.governance.CreateSpace(
            g.CreateSpaceRequest(space_id="ttl-far", space=space_pb2.Space(default_ttl={"seconds": 315_576_000_000}))
        ),
        Code.INVALID_ARGUMENT,
        "INVALID_TTL",
    ),
    Case(
        "duplicate space",
        lambda w: w.governance.CreateSpace(g.CreateSpaceRequest(space_id=w.space.split("/")[1])),
        Code.ALREADY_EXISTS,
        "SPACE_ALREADY_EXISTS",
    ),
]


@pytest.fixture(scope="module")
def world(server: MemosServer) -> Iterator[World]:
    with authorized_channel(server.address, admin_token(server)) as channel:
        vault, governance = VaultServiceStub(channel), GovernanceServiceStub(channel)
        space = governance.CreateSpace(g.CreateSpaceRequest(space_id="bad-input")).name
        cube = vault.CreateCube(v.CreateCubeRequest(parent=space, cube_id="known", cube=text("a known memory")))
        yield World(vault, governance, space, cube)


def snapshot(w: World, data_dir: Path) -> tuple[object, ...]:
    cubes = w.vault.ListCubes(v.ListCubesRequest(parent=w.space, page_size=1000)).cubes
    blobs = sorted(p.name for p in (data_dir / "blobs").rglob("*") if p.is_file())
    spaces = w.governance.ListSpaces(g.ListSpacesRequest(page_size=1000)).spaces
    return tuple(c.SerializeToString() for c in cubes), tuple(blobs), tuple(s.name for s in spaces)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_with_reason_and_changes_nothing(case: Case, world: World, server: MemosServer) -> None:
    before = snapshot(world, server.settings.data_dir)
    with pytest.raises(grpc.RpcError) as caught:
        case.call(world)
    error = caught.value
    assert error.code() == case.code, error.details()
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    infos = [error_details_pb2.ErrorInfo() for _ in status.details]
    assert any(d.Unpack(i) for d, i in zip(status.details, infos, strict=True))
    assert [i.reason for i in infos if i.reason] == [case.reason]
    assert infos[0].domain == "memos-grpc.dev"
    assert error.details(), "the message must tell a person what to do"
    assert snapshot(world, server.settings.data_dir) == before
