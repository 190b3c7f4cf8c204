"""DeleteCube, DeleteSpace and ErasePrincipalData leave nothing of what they remove in any store.

The server has a tiny model, so a TransformCube leaves what removal must take
too: an operation record, a KV-cache blob and a second version. After each
removal every store is searched for what was removed: every DuckDB table
(but the audit log and the principal's own records, which stay), the hnswlib
indexes (no live label, no index file of a removed space), the search
catalog, the BM25 index (searched directly, not through the catalog), the
blob files, and the operations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from memos_test_support import admin_token, authorized_channel, reason_of, start_server
from tiny_models import save_llama

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import MemosServer
from memos_grpc.store.names import parse_cube_name
from memos_grpc.vault.context import VaultContext

#: Tables that keep what a removal leaves: the append-only audit log, and the principal itself
#: (ErasePrincipalData removes its data; DeletePrincipal removes it).
_KEPT_TABLES = frozenset({"audit_events", "principals", "credentials", "meta", "trust_roots"})
#: Every store a removal must leave clean.
STORES = frozenset({"database", "vectors", "index file", "catalog", "bm25", "blob file", "operation"})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture
def served(tmp_path: Path, embedder: Embedder, model_dir: Path) -> Iterator[MemosServer]:
    running = start_server(tmp_path / "data", embedder, model_dir=str(model_dir))
    yield running
    running.stop(grace=1)


@dataclass
class Client:
    channel: grpc.Channel
    vault: VaultServiceStub = field(init=False)
    governance: GovernanceServiceStub = field(init=False)
    scheduler: SchedulerServiceStub = field(init=False)

    def __post_init__(self) -> None:
        self.vault = VaultServiceStub(self.channel)
        self.governance = GovernanceServiceStub(self.channel)
        self.scheduler = SchedulerServiceStub(self.channel)

    def text_cube(self, space: str, text: str) -> cube_pb2.MemCube:
        cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text))
        return self.vault.CreateCube(v.CreateCubeRequest(parent=f"spaces/{space}", cube=cube))

    def blob_cube(self, space: str, data: bytes) -> cube_pb2.MemCube:
        parent = f"spaces/{space}"
        blob = self.vault.WritePayload(iter([v.WritePayloadRequest(parent=parent, data=data)])).blob
        cube = cube_pb2.MemCube(parametric=cube_pb2.ParametricPayload(blob=blob, model_fingerprint="base@sha256:0"))
        return self.vault.CreateCube(v.CreateCubeRequest(parent=parent, cube=cube))

    def activate(self, cube: cube_pb2.MemCube) -> tuple[str, str]:
        """Turns a text cube into a KV cache; returns the operation's name and the cache blob's digest."""
        space = cube.name.split("/cubes/")[0]
        request = s.TransformCubeRequest(parent=space, names=[cube.name], target_type=cube_pb2.MEMORY_TYPE_ACTIVATION)
        operation = self.scheduler.TransformCube(request)
        final = list(self.scheduler.WatchOperation(s.WatchOperationRequest(name=operation.name), timeout=120))[-1]
        assert final.state == s.Operation.STATE_SUCCEEDED, final
        return operation.name, self.vault.GetCube(v.GetCubeRequest(name=cube.name)).activation.blob.digest


@dataclass
class Removal:
    """What a removal must take from every store."""

    #: Strings no DuckDB row may hold afterwards: ids, names, words, digests of what was removed.
    markers: list[str]
    #: Spaces removed whole.
    spaces: list[str] = field(default_factory=list)
    #: Vector labels of removed cubes, per space (read before the removal).
    labels: dict[str, list[int]] = field(default_factory=dict)
    #: Words only the removed cubes held, and the spaces to look for them in.
    words: list[str] = field(default_factory=list)
    searched_spaces: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)


def labels_of(context: VaultContext, cubes: list[cube_pb2.MemCube]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    with context.database.read() as cursor:
        for cube in cubes:
            space_id, cube_id = parse_cube_name(cube.name)
            row = cursor.execute(
                "SELECT vec_id FROM cubes WHERE space_id = ? AND cube_id = ?", [space_id, cube_id]
            ).fetchone()
            assert row is not None and row[0] is not None
            found.setdefault(space_id, []).append(int(row[0]))
    return found


def leftovers(server: MemosServer, admin: Client, removal: Removal) -> set[tuple[str, str]]:
    """(store, what) for everything of ``removal`` some store still holds."""
    assert server.vault is not None
    context = server.vault.context
    found: set[tuple[str, str]] = set()
    with context.database.read() as cursor:
        tables = {
            str(name)
            for (name,) in cursor.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema IN ('main', 'public')"
            ).fetchall()
        }
        for table in sorted(tables - _KEPT_TABLES):
            for row in cursor.execute(f"SELECT * FROM {table}").fetchall():
                text = "\0".join(c.decode("latin-1") if isinstance(c, bytes) else str(c) for c in row)
                found.update(("database", f"{table}: {m}") for m in removal.markers if m in text)
    for space_id, labels in removal.labels.items():
        if space_id in removal.spaces:
            continue
        index = context.indexes.get(space_id)
        for label in labels:
            try:
                index.vectors([label])
            except RuntimeError:
                continue  # deleted: hnswlib no longer hands out its vector
            found.add(("vectors", f"{space_id}: {label}"))
        if context.catalog.live(space_id, labels, time.time(), lambda _: True):
            found.add(("catalog", space_id))
    context.indexes.flush()  # an index still open for a removed space would be written back now
    for space_id in removal.spaces:
        if space_id in context.indexes.existing_files():
            found.add(("index file", space_id))
        if context.catalog.has_space(space_id):
            found.add(("catalog", space_id))
    lexical = context.catalog.lexical
    assert lexical is not None
    lexical.refresh()  # commit what is pending, so the search below sees the index as it will stay
    for space_id in removal.searched_spaces:
        for word in removal.words:
            if lexical.search(space_id, word, 10):
                found.add(("bm25", f"{space_id}: {word}"))
    found.update(("blob file", d) for d in removal.digests if context.blobs.exists(d))
    for name in removal.operations:
        try:
            admin.scheduler.GetOperation(s.GetOperationRequest(name=name))
        except grpc.RpcError as error:
            assert reason_of(error) == "OPERATION_NOT_FOUND", error
            continue
        found.add(("operation", name))
    return found


def check_removes_everything(
    server: MemosServer, admin: Client, removal: Removal, remove: Callable[[], object], stores: frozenset[str] = STORES
) -> None:
    """Runs ``remove``: before it each of ``stores`` held some of ``removal`` (the search can see it), after it none."""
    before = leftovers(server, admin, removal)
    assert {store for store, _ in before} == stores, before
    remove()
    assert leftovers(server, admin, removal) == set()


def cube_id(cube: cube_pb2.MemCube) -> str:
    return parse_cube_name(cube.name)[1]


def test_erasure_leaves_nothing_of_the_principal_in_any_store(served: MemosServer) -> None:
    admin = Client(authorized_channel(served.address, admin_token(served)))
    admin.governance.CreatePrincipal(
        g.CreatePrincipalRequest(principal_id="leaver", principal=principal_pb2.Principal())
    )
    token = admin.governance.CreateCredential(g.CreateCredentialRequest(parent="principals/leaver")).token
    leaver = Client(authorized_channel(served.address, token))
    shared_bytes = b"adapter weights both principals uploaded"

    # A space the leaver alone owns: a cache it made, and a blob the admin's cube names too.
    leaver.governance.CreateSpace(g.CreateSpaceRequest(space_id="leavers"))
    own = leaver.text_cube("leavers", "zyxwaffle alice likes green tea")
    own_operation, own_cache = leaver.activate(own)  # texts differ in words the model knows: caches differ
    own_blob_cube = leaver.blob_cube("leavers", shared_bytes)
    # A space the admin owns, where the leaver edits: a cache of its own, and a transform it ran on the admin's cube.
    admin.governance.CreateSpace(g.CreateSpaceRequest(space_id="team"))
    admin.governance.SetAccessPolicy(
        g.SetAccessPolicyRequest(
            resource="spaces/team",
            policy=access_pb2.AccessPolicy(
                bindings=[
                    access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/admin"]),
                    access_pb2.AccessBinding(role=access_pb2.ROLE_EDITOR, members=["principals/leaver"]),
                ]
            ),
        )
    )
    theirs = leaver.text_cube("team", "quorbleflux bob prefers coffee in morning")
    their_operation, their_cache = leaver.activate(theirs)
    ours = admin.text_cube("team", "ordinary the cat sat on mat")
    on_ours, _ = leaver.activate(ours)
    kept = admin.blob_cube("team", shared_bytes)
    assert served.vault is not None
    removal = Removal(
        markers=[
            "leavers",
            "principals/leaver",
            *(cube_id(c) for c in (own, own_blob_cube, theirs)),
            "zyxwaffle",
            "quorbleflux",
            own_cache,
            their_cache,
        ],
        spaces=["leavers"],
        labels=labels_of(served.vault.context, [own, theirs]),
        words=["zyxwaffle", "quorbleflux"],
        searched_spaces=["leavers", "team"],
        digests=[own_cache, their_cache],
        operations=[own_operation, their_operation, on_ours],
    )

    def erase() -> None:
        report = admin.governance.ErasePrincipalData(g.ErasePrincipalDataRequest(name="principals/leaver"))
        assert (report.spaces_removed, report.cubes_removed, report.vectors_removed) == (1, 3, 2)
        assert (report.blobs_removed, report.roles_removed) == (2, 1)

    check_removes_everything(served, admin, removal, erase)

    # What the admin owns stays whole: its cube (transformed by the leaver), and the blob both named.
    assert admin.vault.GetCube(v.GetCubeRequest(name=ours.name)).type == cube_pb2.MEMORY_TYPE_ACTIVATION
    shared = b"".join(c.data for c in admin.vault.ReadPayload(v.ReadPayloadRequest(name=kept.name)))
    assert shared == shared_bytes
    lexical = admin.vault.SearchCubes(
        v.SearchCubesRequest(parent="spaces/team", text="ordinary cat", mode=v.SEARCH_MODE_LEXICAL)
    )
    assert [hit.cube.name for hit in lexical.results] == [ours.name]
    admin.channel.close()
    leaver.channel.close()


def test_deleting_a_space_leaves_nothing_of_it_in_any_store(served: MemosServer) -> None:
    admin = Client(authorized_channel(served.address, admin_token(served)))
    shared_bytes = b"adapter weights two spaces name"
    admin.governance.CreateSpace(g.CreateSpaceRequest(space_id="doomed"))
    admin.governance.CreateSpace(g.CreateSpaceRequest(space_id="keeper"))
    cube = admin.text_cube("doomed", "plumtwizzle my office is on floor three")
    operation, cache = admin.activate(cube)
    doomed_blob_cube = admin.blob_cube("doomed", shared_bytes)
    kept = admin.blob_cube("keeper", shared_bytes)
    assert served.vault is not None
    removal = Removal(
        markers=["doomed", cube_id(cube), cube_id(doomed_blob_cube), "plumtwizzle", cache],
        spaces=["doomed"],
        labels=labels_of(served.vault.context, [cube]),
        words=["plumtwizzle"],
        searched_spaces=["doomed"],
        digests=[cache],
        operations=[operation],
    )

    # The labels of a removed space go with its index: no "vectors" of a surviving space to look at.
    check_removes_everything(
        served,
        admin,
        removal,
        lambda: admin.governance.DeleteSpace(g.DeleteSpaceRequest(name="spaces/doomed", force=True)),
        STORES - {"vectors"},
    )
    shared = b"".join(c.data for c in admin.vault.ReadPayload(v.ReadPayloadRequest(name=kept.name)))
    assert shared == shared_bytes
    admin.channel.close()


def test_deleting_a_cube_leaves_nothing_of_it_in_any_store(served: MemosServer) -> None:
    admin = Client(authorized_channel(served.address, admin_token(served)))
    admin.governance.CreateSpace(g.CreateSpaceRequest(space_id="desk"))
    cube = admin.text_cube("desk", "snorkelgrape what does alice drink")
    operation, _ = admin.activate(cube)
    neighbour = admin.text_cube("desk", "the stapler lives on the desk")
    assert served.vault is not None
    # The cache blob is left out: the transform's upload record lets its caller name it again for
    # blob_grace_seconds, after which the sweeper takes both (tests/vault/test_retention.py).
    removal = Removal(
        markers=[cube_id(cube), "snorkelgrape"],
        labels=labels_of(served.vault.context, [cube]),
        words=["snorkelgrape"],
        searched_spaces=["desk"],
        operations=[operation],
    )
    # No space goes: its index file stays.
    check_removes_everything(
        served,
        admin,
        removal,
        lambda: admin.vault.DeleteCube(v.DeleteCubeRequest(name=cube.name)),
        STORES - {"index file", "blob file"},
    )
    assert admin.vault.GetCube(v.GetCubeRequest(name=neighbour.name)).plaintext.text == "the stapler lives on the desk"
    admin.channel.close()
