"""Blob references: a digest is storage, never permission.

The world: alice owns ``alice-vault`` holding activation cubes on blobs she
uploaded (one labelled ``secret``, which the space redacts for viewers, one
narrowed to alice alone); bob is a viewer of it and owns ``bob-own``; erin is an
editor of it; carol holds no role on it and owns ``carol-own``. For every path
that takes a blob reference (CreateCube, BatchCreateCubes, UpdateCube,
MergeCubes, ImportBundle; TransformCube makes blobs of its own, see
tests/scheduler/test_transform.py), naming alice's digest is refused exactly as a digest nobody
uploaded is — same code, reason and message but for the digest, so the
refusal is no existence oracle — and changes nothing. What is allowed: a blob
the caller uploaded into the same space, or one a cube of that space the caller
may read in full names already.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import field_mask_pb2
from memos_test_support import admin_token, authorized_channel, reason_of, start_server

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, principal_pb2, space_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import MemosServer
from tests.interchange._bundles import activation_cube, blob_entry, bundle, cube_entry, node_key

Rule = space_pb2.RedactionRule
ALICE_SPACE = "spaces/alice-vault"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def activation(digest: str, *labels: str, scope: int = 0) -> cube_pb2.MemCube:
    return cube_pb2.MemCube(
        activation=cube_pb2.ActivationPayload(
            blob=cube_pb2.BlobRef(digest=digest), model_fingerprint="test-model", dtype="float32"
        ),
        sensitivity_labels=list(labels),
        access=cube_pb2.CubeAccess(scope=scope),  # type: ignore[arg-type]
    )


def upload(vault: VaultServiceStub, parent: str, data: bytes) -> str:
    reply = vault.WritePayload(iter([v.WritePayloadRequest(parent=parent, data=data)]), timeout=10)
    return str(reply.blob.digest)


@dataclass
class World:
    server: MemosServer
    vaults: dict[str, VaultServiceStub]
    tokens: dict[str, str]
    plain: bytes  # alice's blob behind a cube every role of her space may read in full
    secret: bytes  # alice's blob behind a cube redacted for viewers
    private: bytes  # alice's blob behind a cube only alice may see

    def refusal(self, call: object) -> grpc.RpcError:
        assert callable(call)
        with pytest.raises(grpc.RpcError) as refused:
            call()
        return refused.value


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[World]:
    server = start_server(tmp_path_factory.mktemp("blobs") / "data", embedder)
    admin = authorized_channel(server.address, admin_token(server))
    governance = GovernanceServiceStub(admin)
    channels, tokens = {}, {}
    for name in ("alice", "bob", "carol", "erin"):
        governance.CreatePrincipal(g.CreatePrincipalRequest(principal_id=name, principal=principal_pb2.Principal()))
        token = governance.CreateCredential(g.CreateCredentialRequest(parent=f"principals/{name}")).token
        channels[name], tokens[name] = authorized_channel(server.address, token), token
    rules = [Rule(sensitivity_label="secret", action=Rule.ACTION_REDACT_TEXT, audience=Rule.AUDIENCE_VIEWERS)]
    GovernanceServiceStub(channels["alice"]).CreateSpace(
        g.CreateSpaceRequest(space_id="alice-vault", space=space_pb2.Space(redaction_rules=rules))
    )
    policy = access_pb2.AccessPolicy(
        bindings=[
            access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/alice"]),
            access_pb2.AccessBinding(role=access_pb2.ROLE_EDITOR, members=["principals/erin"]),
            access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=["principals/bob"]),
        ]
    )
    GovernanceServiceStub(channels["alice"]).SetAccessPolicy(
        g.SetAccessPolicyRequest(resource=ALICE_SPACE, policy=policy)
    )
    GovernanceServiceStub(channels["bob"]).CreateSpace(g.CreateSpaceRequest(space_id="bob-own"))
    GovernanceServiceStub(channels["carol"]).CreateSpace(g.CreateSpaceRequest(space_id="carol-own"))
    vaults = {name: VaultServiceStub(channel) for name, channel in channels.items()}
    w = World(
        server,
        vaults,
        tokens,
        os.urandom(512),
        os.urandom(512),
        os.urandom(512),
    )
    alice = vaults["alice"]
    for cube_id, data, labels, scope in [
        ("plain", w.plain, (), 0),
        ("secret", w.secret, ("secret",), 0),
        ("private", w.private, (), cube_pb2.CubeAccess.SCOPE_OWNER),
    ]:
        digest = upload(alice, ALICE_SPACE, data)
        alice.CreateCube(
            v.CreateCubeRequest(parent=ALICE_SPACE, cube_id=cube_id, cube=activation(digest, *labels, scope=scope))
        )
    yield w
    server.stop(grace=1)


def assert_like_an_unknown_blob(w: World, call: object, digest: str, unknown_call: object, unknown: str) -> None:
    """Refused with the code, reason and message of a digest nobody uploaded (the digest aside)."""
    refused, never = w.refusal(call), w.refusal(unknown_call)
    assert refused.code() == never.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(refused) == reason_of(never) == "BLOB_NOT_FOUND"
    assert refused.details().replace(digest, "D") == never.details().replace(unknown, "D")


def stored_ids(w: World, who: str, parent: str) -> set[str]:
    return {c.name.rsplit("/", 1)[1] for c in w.vaults[who].ListCubes(v.ListCubesRequest(parent=parent)).cubes}


# -- CreateCube and BatchCreateCubes -------------------------------------------------


@pytest.mark.parametrize(
    ("who", "parent", "blob"),
    [
        ("carol", "spaces/carol-own", "plain"),  # a stranger, into her own space
        ("carol", "spaces/carol-own", "secret"),
        ("bob", "spaces/bob-own", "secret"),  # a viewer of the redacted cube, into his own space
        ("bob", "spaces/bob-own", "plain"),  # read in full in alice's space, but named in another
        ("erin", ALICE_SPACE, "private"),  # an editor, in alice's space, of a cube she may not see
    ],
)
def test_create_cube_cannot_name_a_blob_the_caller_may_not(world: World, who: str, parent: str, blob: str) -> None:
    digest = digest_of(getattr(world, blob))
    unknown = digest_of(os.urandom(64))
    vault = world.vaults[who]
    before = stored_ids(world, who, parent)

    def create(d: str) -> object:
        return lambda: vault.CreateCube(v.CreateCubeRequest(parent=parent, cube=activation(d)))

    assert_like_an_unknown_blob(world, create(digest), digest, create(unknown), unknown)

    def batch(d: str) -> object:
        requests = [
            v.CreateCubeRequest(cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="an honest cube"))),
            v.CreateCubeRequest(cube=activation(d)),
        ]
        return lambda: vault.BatchCreateCubes(v.BatchCreateCubesRequest(parent=parent, requests=requests))

    assert_like_an_unknown_blob(world, batch(digest), digest, batch(unknown), unknown)
    assert stored_ids(world, who, parent) == before, "a refused create stored something"


def test_a_blob_the_caller_uploaded_or_may_read_in_full_in_the_space_can_be_named(world: World) -> None:
    # carol holds the same bytes as alice: uploading them into her space lets her name them there.
    same = os.urandom(256)
    alice, carol = world.vaults["alice"], world.vaults["carol"]
    alice.CreateCube(v.CreateCubeRequest(parent=ALICE_SPACE, cube=activation(upload(alice, ALICE_SPACE, same))))
    digest = upload(carol, "spaces/carol-own", same)
    cube = carol.CreateCube(v.CreateCubeRequest(parent="spaces/carol-own", cube=activation(digest)))
    read = b"".join(r.data for r in carol.ReadPayload(v.ReadPayloadRequest(name=cube.name)))
    assert read == same
    # erin may read alice's plain cube in full, in the same space: she may name its blob there.
    erin = world.vaults["erin"]
    named = erin.CreateCube(v.CreateCubeRequest(parent=ALICE_SPACE, cube=activation(digest_of(world.plain))))
    assert named.activation.blob.size_bytes == len(world.plain)
    # Her upload into alice's space does not let her name it in another space.
    with pytest.raises(grpc.RpcError) as refused:
        erin.CreateCube(v.CreateCubeRequest(parent="spaces/carol-own", cube=activation(digest)))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND  # not hers: the space does not exist for her


def test_a_viewer_cannot_read_a_redacted_payload_through_a_cube_of_their_own(world: World) -> None:
    bob = world.vaults["bob"]
    secret = f"{ALICE_SPACE}/cubes/secret"
    shown = bob.GetCube(v.GetCubeRequest(name=secret))
    with pytest.raises(grpc.RpcError) as redacted:
        list(bob.ReadPayload(v.ReadPayloadRequest(name=secret)))
    assert reason_of(redacted.value) == "PAYLOAD_REDACTED"
    with pytest.raises(grpc.RpcError) as refused:
        bob.CreateCube(v.CreateCubeRequest(parent="spaces/bob-own", cube=activation(shown.activation.blob.digest)))
    assert reason_of(refused.value) == "BLOB_NOT_FOUND"


# -- UpdateCube ---------------------------------------------------------------------------


def test_update_cube_cannot_swap_in_another_blob(world: World) -> None:
    carol = world.vaults["carol"]
    own = upload(carol, "spaces/carol-own", os.urandom(300))
    cube = carol.CreateCube(v.CreateCubeRequest(parent="spaces/carol-own", cube=activation(own)))
    theirs = activation(digest_of(world.secret))
    theirs.name = cube.name
    with pytest.raises(grpc.RpcError) as refused:
        carol.UpdateCube(v.UpdateCubeRequest(cube=theirs, update_mask=field_mask_pb2.FieldMask(paths=["activation"])))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A mask that does not name the payload leaves it as it was, whatever the message carries.
    theirs.tags.append("t")
    updated = carol.UpdateCube(v.UpdateCubeRequest(cube=theirs, update_mask=field_mask_pb2.FieldMask(paths=["tags"])))
    assert updated.activation.blob.digest == own
    assert list(updated.tags) == ["t"]


# -- MergeCubes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "parent", "blob"),
    [("carol", "spaces/carol-own", "private"), ("bob", "spaces/bob-own", "secret")],
)
def test_merge_cannot_name_a_blob_the_caller_may_not(world: World, who: str, parent: str, blob: str) -> None:
    vault = world.vaults[who]
    names = [
        vault.CreateCube(
            v.CreateCubeRequest(parent=parent, cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=t)))
        ).name
        for t in ("one half", "other half")
    ]
    digest, unknown = digest_of(getattr(world, blob)), digest_of(os.urandom(64))

    def merge(d: str) -> object:
        return lambda: vault.MergeCubes(v.MergeCubesRequest(parent=parent, names=names, cube=activation(d)))

    before = stored_ids(world, who, parent)
    assert_like_an_unknown_blob(world, merge(digest), digest, merge(unknown), unknown)
    assert stored_ids(world, who, parent) == before
    for name in names:
        assert vault.GetCube(v.GetCubeRequest(name=name)).state != cube_pb2.LIFECYCLE_STATE_MERGED


# -- ImportBundle -------------------------------------------------------------------------


def test_import_cannot_name_a_blob_the_bundle_does_not_carry(world: World) -> None:
    """A bundle's cube names alice's digest without carrying the bytes: refused, though the server holds them."""
    carol = InterchangeServiceStub(authorized_channel(world.server.address, world.tokens["carol"]))
    key = node_key(world.server)

    def requests(archive: bytes) -> Iterator[i.ImportBundleRequest]:
        yield i.ImportBundleRequest(parent="spaces/carol-own")
        yield i.ImportBundleRequest(chunk=archive)

    before = stored_ids(world, "carol", "spaces/carol-own")
    with pytest.raises(grpc.RpcError) as refused:
        carol.ImportBundle(requests(bundle(key, [cube_entry(activation_cube(world.secret))])))
    assert reason_of(refused.value) == "BUNDLE_BLOB_MISSING"
    assert stored_ids(world, "carol", "spaces/carol-own") == before
    # Carrying the bytes is holding them: then the cube may name the blob.
    carried = bundle(key, [cube_entry(activation_cube(world.secret)), blob_entry(world.secret)])
    carol.ImportBundle(requests(carried))
    assert len(stored_ids(world, "carol", "spaces/carol-own")) == len(before) + 1


# -- derivation links ---------------------------------------------------------------------
#
# Labels flow along an adapter's source_cubes and a merge's merged_from (docs/security.md), so a link to
# a cube its writer may not see would show them the labels that cube gains: links are checked as blobs are.


def adapter(digest: str, *sources: str) -> cube_pb2.MemCube:
    return cube_pb2.MemCube(
        parametric=cube_pb2.ParametricPayload(
            blob=cube_pb2.BlobRef(digest=digest), model_fingerprint="test-model", source_cubes=list(sources)
        )
    )


def test_an_adapter_cannot_name_a_source_its_writer_may_not_see(world: World) -> None:
    erin = world.vaults["erin"]
    digest = upload(erin, ALICE_SPACE, os.urandom(128))

    def create(source: str) -> object:
        return lambda: erin.CreateCube(v.CreateCubeRequest(parent=ALICE_SPACE, cube=adapter(digest, source)))

    hidden, absent = f"{ALICE_SPACE}/cubes/private", f"{ALICE_SPACE}/cubes/never-made"
    refused, never = world.refusal(create(hidden)), world.refusal(create(absent))
    assert refused.code() == never.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(refused) == reason_of(never) == "SOURCE_CUBE_NOT_FOUND"
    assert refused.details().replace(hidden, "N") == never.details().replace(absent, "N")
    made = erin.CreateCube(v.CreateCubeRequest(parent=ALICE_SPACE, cube=adapter(digest, f"{ALICE_SPACE}/cubes/plain")))
    assert list(made.parametric.source_cubes) == [f"{ALICE_SPACE}/cubes/plain"]


def test_merged_from_is_set_by_merges_alone(world: World) -> None:
    erin, alice = world.vaults["erin"], world.vaults["alice"]
    forged = cube_pb2.MemCube(
        plaintext=cube_pb2.PlaintextPayload(text="a forged merge"), merged_from=[f"{ALICE_SPACE}/cubes/private"]
    )
    made = erin.CreateCube(v.CreateCubeRequest(parent=ALICE_SPACE, cube=forged))
    assert list(made.merged_from) == []
    private = alice.GetCube(v.GetCubeRequest(name=f"{ALICE_SPACE}/cubes/private"))
    private.sensitivity_labels.append("audit")
    alice.UpdateCube(
        v.UpdateCubeRequest(cube=private, update_mask=field_mask_pb2.FieldMask(paths=["sensitivity_labels"]))
    )
    assert list(erin.GetCube(v.GetCubeRequest(name=made.name)).sensitivity_labels) == []


def test_an_import_keeps_only_links_to_cubes_the_importer_may_see(world: World) -> None:
    erin = InterchangeServiceStub(authorized_channel(world.server.address, world.tokens["erin"]))
    key = node_key(world.server)
    cube = cube_pb2.MemCube(
        provenance_id="p" + hashlib.sha256(b"linked").hexdigest()[:32],
        plaintext=cube_pb2.PlaintextPayload(text="imported with links"),
        merged_from=[f"{ALICE_SPACE}/cubes/private", f"{ALICE_SPACE}/cubes/plain", "spaces/elsewhere/cubes/x"],
    )
    reply = erin.ImportBundle(
        iter([i.ImportBundleRequest(parent=ALICE_SPACE), i.ImportBundleRequest(chunk=bundle(key, [cube_entry(cube)]))])
    )
    imported = world.vaults["erin"].GetCube(v.GetCubeRequest(name=reply.cubes[0].name))
    assert list(imported.merged_from) == [f"{ALICE_SPACE}/cubes/plain", "spaces/elsewhere/cubes/x"]
