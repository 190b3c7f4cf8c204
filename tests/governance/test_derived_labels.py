"""Sensitivity labels follow what is derived from a cube: an adapter trained on it, a merge of it.

A derived cube carries the union of its sources' labels from the moment it is made; a label a source gains
later (UpdateCube, RollbackCube) reaches every cube derived from it, transitively, as a new version of each,
in the same transaction; and a viewer's redaction applies to the derived cubes at once. Runs against a real
server with a tiny model (tests/tiny_models.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from google.protobuf import field_mask_pb2
from memos_test_support import admin_token, authorized_channel, start_server
from tiny_models import save_llama

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, principal_pb2, space_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder

Rule = space_pb2.RedactionRule
Op = s.Operation
ACTIVATION, PARAMETRIC = cube_pb2.MEMORY_TYPE_ACTIVATION, cube_pb2.MEMORY_TYPE_PARAMETRIC
LABELS_MASK = field_mask_pb2.FieldMask(paths=["sensitivity_labels"])


@dataclass
class Clinic:
    vault: VaultServiceStub
    scheduler: SchedulerServiceStub
    viewer: VaultServiceStub
    space: str


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Clinic]:
    """A server with a tiny model and a space whose `secret` cubes are redacted for its viewer."""
    model_dir = save_llama(tmp_path_factory.mktemp("llama"))
    server = start_server(tmp_path_factory.mktemp("derived"), embedder, model_dir=str(model_dir))
    admin = authorized_channel(server.address, admin_token(server))
    governance = GovernanceServiceStub(admin)
    rules = [Rule(sensitivity_label="secret", action=Rule.ACTION_REDACT_TEXT, audience=Rule.AUDIENCE_VIEWERS)]
    space = governance.CreateSpace(
        g.CreateSpaceRequest(space_id="clinic", space=space_pb2.Space(redaction_rules=rules))
    ).name
    governance.CreatePrincipal(g.CreatePrincipalRequest(principal_id="viewer", principal=principal_pb2.Principal()))
    token = governance.CreateCredential(g.CreateCredentialRequest(parent="principals/viewer")).token
    bindings = [
        access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/admin"]),
        access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=["principals/viewer"]),
    ]
    governance.SetAccessPolicy(
        g.SetAccessPolicyRequest(resource=space, policy=access_pb2.AccessPolicy(bindings=bindings))
    )
    viewer = authorized_channel(server.address, token)
    yield Clinic(VaultServiceStub(admin), SchedulerServiceStub(admin), VaultServiceStub(viewer), space)
    viewer.close()
    admin.close()
    server.stop(grace=1)


def create(clinic: Clinic, cube_id: str, text: str, *labels: str) -> cube_pb2.MemCube:
    cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text), sensitivity_labels=list(labels))
    return clinic.vault.CreateCube(v.CreateCubeRequest(parent=clinic.space, cube_id=cube_id, cube=cube))


def get(clinic: Clinic, name: str) -> cube_pb2.MemCube:
    return clinic.vault.GetCube(v.GetCubeRequest(name=name))


def finish(clinic: Clinic, operation: Op) -> Op:
    seen = list(clinic.scheduler.WatchOperation(s.WatchOperationRequest(name=operation.name), timeout=300))
    assert seen and seen[-1].state == Op.STATE_SUCCEEDED, seen[-1:]
    return seen[-1]


def train(clinic: Clinic, names: list[str], cube_id: str, steps: int = 2) -> Op:
    request = s.TransformCubeRequest(
        parent=clinic.space,
        names=names,
        target_type=PARAMETRIC,
        cube_id=cube_id,
        training=s.LoraTraining(steps=steps, rank=2, seed=1),
    )
    return clinic.scheduler.TransformCube(request)


def merge(clinic: Clinic, names: list[str], cube_id: str, text: str, *labels: str) -> cube_pb2.MemCube:
    cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text), sensitivity_labels=list(labels))
    return clinic.vault.MergeCubes(v.MergeCubesRequest(parent=clinic.space, names=names, cube_id=cube_id, cube=cube))


def relabel(clinic: Clinic, name: str, *labels: str) -> cube_pb2.MemCube:
    cube = cube_pb2.MemCube(name=name, sensitivity_labels=list(labels))
    return clinic.vault.UpdateCube(v.UpdateCubeRequest(cube=cube, update_mask=LABELS_MASK))


def test_an_adapter_carries_the_labels_of_the_cubes_it_was_trained_on(clinic: Clinic) -> None:
    sources = [
        create(clinic, "a1", "ann has asthma", "pii"),
        create(clinic, "a2", "the door code is 4711", "secret", "pii"),
        create(clinic, "a3", "the ward opens at nine"),
    ]
    final = finish(clinic, train(clinic, [c.name for c in sources], "adapter-a"))
    adapter = get(clinic, final.cube)
    assert adapter.type == PARAMETRIC and sorted(adapter.sensitivity_labels) == ["pii", "secret"]
    # The viewer is not shown what the adapter learnt, nor finds it by it.
    assert clinic.viewer.GetCube(v.GetCubeRequest(name=adapter.name)).parametric.source_text == "[REDACTED]"
    found = clinic.viewer.SearchCubes(v.SearchCubesRequest(parent=clinic.space, text="the door code is 4711"))
    assert adapter.name not in [hit.cube.name for hit in found.results]


def test_a_cache_is_made_in_place_and_an_adapter_trained_on_it_carries_its_labels(clinic: Clinic) -> None:
    source = create(clinic, "b1", "bob takes insulin at noon", "secret")
    before = len(clinic.vault.ListCubes(v.ListCubesRequest(parent=clinic.space, page_size=1000)).cubes)
    cached = finish(
        clinic,
        clinic.scheduler.TransformCube(
            s.TransformCubeRequest(parent=clinic.space, names=[source.name], target_type=ACTIVATION)
        ),
    )
    # No new cube: the cache is the source itself, a new version with its own labels.
    assert cached.cube == source.name
    assert len(clinic.vault.ListCubes(v.ListCubesRequest(parent=clinic.space, page_size=1000)).cubes) == before
    cache = get(clinic, source.name)
    assert (cache.type, cache.version, list(cache.sensitivity_labels)) == (ACTIVATION, 2, ["secret"])
    adapter = get(clinic, finish(clinic, train(clinic, [source.name], "adapter-b")).cube)
    assert list(adapter.sensitivity_labels) == ["secret"]


def test_a_merged_cube_carries_its_own_labels_and_its_sources(clinic: Clinic) -> None:
    first = create(clinic, "c1", "carl is allergic to nuts", "pii")
    second = create(clinic, "c2", "carl's room is 12", "secret")
    merged = merge(clinic, [first.name, second.name], "c-merged", "carl: nut allergy, room 12", "internal")
    assert sorted(merged.sensitivity_labels) == ["internal", "pii", "secret"]
    assert sorted(get(clinic, merged.name).sensitivity_labels) == ["internal", "pii", "secret"]
    shown = clinic.viewer.GetCube(v.GetCubeRequest(name=merged.name))
    assert shown.plaintext.text == "[REDACTED]"


def test_a_label_added_to_a_source_reaches_every_cube_derived_from_it(clinic: Clinic) -> None:
    source = create(clinic, "d1", "dora walks with a cane")
    other = create(clinic, "d2", "dora likes the garden")
    adapter = get(clinic, finish(clinic, train(clinic, [source.name], "adapter-d")).cube)
    merged = merge(clinic, [adapter.name, other.name], "d-merged", "dora: cane, garden")
    extra = create(clinic, "d3", "dora's daughter visits on sunday")
    twice = merge(clinic, [merged.name, extra.name], "d-merged-twice", "dora's week")
    clinic.vault.FreezeCube(v.FreezeCubeRequest(name=twice.name))
    unrelated = create(clinic, "d4", "the garden is open until six")
    assert list(get(clinic, twice.name).sensitivity_labels) == []
    query = v.SearchCubesRequest(parent=clinic.space, text="dora: cane, garden", top_k=50)
    assert merged.name in [hit.cube.name for hit in clinic.viewer.SearchCubes(query).results]

    before = {c.name: get(clinic, c.name) for c in (adapter, merged, twice)}
    assert before[twice.name].state == cube_pb2.LIFECYCLE_STATE_FROZEN

    relabel(clinic, source.name, "secret")

    # Each derived cube, however far down, gains the label as one new version; frozen or not.
    for name, was in before.items():
        now = get(clinic, name)
        assert list(now.sensitivity_labels) == ["secret"], name
        assert now.version == was.version + 1 and now.state == was.state
        newest = clinic.vault.ListCubeVersions(v.ListCubeVersionsRequest(name=name)).versions[0]
        assert (newest.version, list(newest.sensitivity_labels)) == (now.version, ["secret"])
    assert list(get(clinic, other.name).sensitivity_labels) == []  # a source of a merge is not derived from it
    assert get(clinic, unrelated.name).version == 1
    # Redaction applies at once: the viewer no longer finds or reads the derived cubes.
    assert merged.name not in [hit.cube.name for hit in clinic.viewer.SearchCubes(query).results]
    assert clinic.viewer.GetCube(v.GetCubeRequest(name=twice.name)).plaintext.text == "[REDACTED]"
    # Nothing to add: no new version.
    relabel(clinic, source.name, "secret")
    assert get(clinic, merged.name).version == before[merged.name].version + 1


def test_rollback_passes_labels_on_and_never_drops_inherited_ones(clinic: Clinic) -> None:
    source = create(clinic, "e1", "eve's pin is 2468", "secret")
    relabel(clinic, source.name)  # version 2: no label
    other = create(clinic, "e2", "eve banks online")
    merged = merge(clinic, [get(clinic, source.name).name, other.name], "e-merged", "eve's banking")
    assert list(merged.sensitivity_labels) == []
    # The source's version 1 comes back with its label, which reaches the merged cube.
    clinic.vault.RollbackCube(v.RollbackCubeRequest(name=source.name, version=1))
    assert list(get(clinic, merged.name).sensitivity_labels) == ["secret"]
    # Rolling the merged cube back to before it inherited the label keeps the label.
    rolled = clinic.vault.RollbackCube(v.RollbackCubeRequest(name=merged.name, version=1))
    assert list(rolled.sensitivity_labels) == ["secret"]


def test_a_label_added_while_an_adapter_trains_reaches_the_adapter(clinic: Clinic) -> None:
    source = create(clinic, "f1", "frank's blood type is ab negative")
    operation = train(clinic, [source.name], "adapter-f", steps=400)
    # Training has begun once the operation reports its first step: WatchOperation streams each change.
    watch = clinic.scheduler.WatchOperation(s.WatchOperationRequest(name=operation.name), timeout=120)
    assert any(state.step >= 1 and not state.done for state in watch), "the training never reported a step"
    watch.cancel()
    relabel(clinic, source.name, "pii")
    adapter = get(clinic, finish(clinic, operation).cube)
    assert list(adapter.sensitivity_labels) == ["pii"]
