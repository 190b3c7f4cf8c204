"""Redaction for viewers: withheld cubes are absent, redacted ones lose their text, everywhere a viewer reads."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf import field_mask_pb2
from memos_test_support import admin_token, authorized_channel, share_with_viewer_and_editor, start_server

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, principal_pb2, space_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder

Rule = space_pb2.RedactionRule
SPACE = "spaces/clinic"


def unit(seed: int) -> v.Vector:
    vector = np.random.default_rng(seed).normal(size=384)
    return v.Vector(values=list(vector / np.linalg.norm(vector)))


def text_cube(text: str, *labels: str, context: str = "") -> cube_pb2.MemCube:
    plaintext = cube_pb2.PlaintextPayload(text=text, context=context)
    return cube_pb2.MemCube(plaintext=plaintext, sensitivity_labels=list(labels))


def seen(vault: VaultServiceStub) -> dict[str, str]:
    cubes = vault.ListCubes(v.ListCubesRequest(parent=SPACE)).cubes
    # Only plaintext cubes have vectors, so only they can be found by search.
    listed = {c.name.rsplit("/", 1)[1]: c.plaintext.text for c in cubes if c.HasField("plaintext")}
    # A redacted cube is listed, but never ranked: it has no text the caller may see to be ranked on.
    ranked = {cube_id: text for cube_id, text in listed.items() if text != "[REDACTED]"}
    # A filter resolved in DuckDB, and one resolved from the search catalog's postings.
    for filter_text in ("", "priority >= 0", "-tags:absent"):
        hits = vault.SearchCubes(v.SearchCubesRequest(parent=SPACE, vector=unit(1), top_k=10, filter=filter_text))
        assert {h.cube.name.rsplit("/", 1)[1]: h.cube.plaintext.text for h in hits.results} == ranked
    return listed


def test_viewers_get_withheld_and_redacted_cubes_editors_do_not(tmp_path: Path, embedder: Embedder) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, embedder)
    admin = authorized_channel(server.address, admin_token(server))
    governance = GovernanceServiceStub(admin)
    rules = [
        Rule(sensitivity_label="pii", action=Rule.ACTION_WITHHOLD, audience=Rule.AUDIENCE_VIEWERS),
        Rule(sensitivity_label="secret", action=Rule.ACTION_REDACT_TEXT, audience=Rule.AUDIENCE_VIEWERS),
        Rule(sensitivity_label="internal", action=Rule.ACTION_WITHHOLD, audience=Rule.AUDIENCE_EXPORT),
    ]
    governance.CreateSpace(g.CreateSpaceRequest(space_id="clinic", space=space_pb2.Space(redaction_rules=rules)))
    tokens = share_with_viewer_and_editor(governance, SPACE)
    owner_vault = VaultServiceStub(admin)
    for seed, (cube_id, cube) in enumerate(
        [
            ("plain", text_cube("the clinic opens at nine")),
            ("diagnosis", text_cube("Ann has asthma", "pii")),
            ("code", text_cube("the door code is 4711", "secret", context="which code opens the back door?")),
            ("memo", text_cube("staff memo", "internal")),
        ]
    ):
        owner_vault.CreateCube(v.CreateCubeRequest(parent=SPACE, cube_id=cube_id, cube=cube, vector=unit(seed)))
    blob = owner_vault.WritePayload(iter([v.WritePayloadRequest(parent=SPACE, data=b"weights")])).blob
    secret_adapter = cube_pb2.MemCube(
        parametric=cube_pb2.ParametricPayload(blob=blob, model_fingerprint="m@sha256:0"), sensitivity_labels=["secret"]
    )
    owner_vault.CreateCube(v.CreateCubeRequest(parent=SPACE, cube_id="adapter", cube=secret_adapter))

    everything = {
        "plain": "the clinic opens at nine",
        "diagnosis": "Ann has asthma",
        "code": "the door code is 4711",
        "memo": "staff memo",
    }
    for restart in (False, True):
        if restart:  # the rules come back from DuckDB with the space
            server.stop(grace=1)
            server = start_server(data_dir, embedder)
        viewer = VaultServiceStub(authorized_channel(server.address, tokens["viewer"]))
        editor = VaultServiceStub(authorized_channel(server.address, tokens["editor"]))
        assert seen(editor) == everything
        assert seen(viewer) == {"plain": "the clinic opens at nine", "code": "[REDACTED]", "memo": "staff memo"}
        with pytest.raises(grpc.RpcError) as withheld:
            viewer.GetCube(v.GetCubeRequest(name=f"{SPACE}/cubes/diagnosis"))
        assert withheld.value.code() == grpc.StatusCode.NOT_FOUND
        redacted = viewer.GetCube(v.GetCubeRequest(name=f"{SPACE}/cubes/code")).plaintext
        assert (redacted.text, redacted.context) == ("[REDACTED]", "")  # the context quotes what is around it
        assert editor.GetCube(v.GetCubeRequest(name=f"{SPACE}/cubes/code")).plaintext.context.startswith("which code")
        with pytest.raises(grpc.RpcError) as refused:
            b"".join(c.data for c in viewer.ReadPayload(v.ReadPayloadRequest(name=f"{SPACE}/cubes/adapter")))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        editor_bytes = editor.ReadPayload(v.ReadPayloadRequest(name=f"{SPACE}/cubes/adapter"))
        assert b"".join(c.data for c in editor_bytes) == b"weights"
    admin.close()
    server.stop(grace=1)


def test_bad_redaction_rules_are_refused(fresh_server: object) -> None:
    channel = authorized_channel(fresh_server.address, admin_token(fresh_server))  # type: ignore[attr-defined]
    bad = space_pb2.Space(redaction_rules=[Rule(sensitivity_label="", action=Rule.ACTION_WITHHOLD)])
    with pytest.raises(grpc.RpcError) as refused:
        GovernanceServiceStub(channel).CreateSpace(g.CreateSpaceRequest(space_id="bad", space=bad))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel.close()


def test_rules_and_ttl_change_with_update_space(fresh_server: object) -> None:
    channel = authorized_channel(fresh_server.address, admin_token(fresh_server))  # type: ignore[attr-defined]
    governance, vault = GovernanceServiceStub(channel), VaultServiceStub(channel)
    created = governance.CreateSpace(g.CreateSpaceRequest(space_id="evolving"))
    rule = Rule(sensitivity_label="pii", action=Rule.ACTION_WITHHOLD, audience=Rule.AUDIENCE_VIEWERS)
    change = space_pb2.Space(name=created.name, etag=created.etag, redaction_rules=[rule], display_name="ignored")
    change.default_ttl.FromSeconds(3600)
    updated = governance.UpdateSpace(
        g.UpdateSpaceRequest(
            space=change, update_mask=field_mask_pb2.FieldMask(paths=["redaction_rules", "default_ttl"])
        )
    )
    assert [r.sensitivity_label for r in updated.redaction_rules] == ["pii"] and updated.default_ttl.seconds == 3600
    assert updated.display_name == "" and updated.etag != created.etag
    cube = vault.CreateCube(v.CreateCubeRequest(parent=created.name, cube=text_cube("x"), vector=unit(9)))
    assert cube.expire_time.seconds - cube.create_time.seconds in (3599, 3600)
    with pytest.raises(grpc.RpcError) as stale:
        governance.UpdateSpace(
            g.UpdateSpaceRequest(space=change, update_mask=field_mask_pb2.FieldMask(paths=["default_ttl"]))
        )
    assert stale.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.RpcError) as bad:
        governance.UpdateSpace(
            g.UpdateSpaceRequest(
                space=space_pb2.Space(name=created.name), update_mask=field_mask_pb2.FieldMask(paths=["owner"])
            )
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel.close()


def test_a_redacted_cache_shows_viewers_no_source_text_and_recalls_as_redacted_text(
    tmp_path: Path, embedder: Embedder
) -> None:
    server = start_server(tmp_path / "data", embedder)
    try:
        admin = authorized_channel(server.address, admin_token(server))
        governance = GovernanceServiceStub(admin)
        rules = [Rule(sensitivity_label="secret", action=Rule.ACTION_REDACT_TEXT, audience=Rule.AUDIENCE_VIEWERS)]
        governance.CreateSpace(g.CreateSpaceRequest(space_id="clinic", space=space_pb2.Space(redaction_rules=rules)))
        governance.CreatePrincipal(g.CreatePrincipalRequest(principal_id="viewer", principal=principal_pb2.Principal()))
        token = governance.CreateCredential(g.CreateCredentialRequest(parent="principals/viewer")).token
        policy = access_pb2.AccessPolicy(
            bindings=[
                access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/admin"]),
                access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=["principals/viewer"]),
            ]
        )
        governance.SetAccessPolicy(g.SetAccessPolicyRequest(resource=SPACE, policy=policy))
        owner = VaultServiceStub(admin)
        blob = owner.WritePayload(iter([v.WritePayloadRequest(parent=SPACE, data=b"cache")])).blob
        fingerprint = "llama@sha256:" + "1" * 64
        cache = cube_pb2.ActivationPayload(
            blob=blob, model_fingerprint=fingerprint, token_count=7, source_text="the door code is 4711"
        )
        created = owner.CreateCube(
            v.CreateCubeRequest(parent=SPACE, cube=cube_pb2.MemCube(activation=cache, sensitivity_labels=["secret"]))
        )
        assert created.embedding_fingerprint  # embedded by its source text, so search and Recall find it

        viewer_channel = authorized_channel(server.address, token)
        viewer = VaultServiceStub(viewer_channel)
        assert viewer.GetCube(v.GetCubeRequest(name=created.name)).activation.source_text == "[REDACTED]"
        assert owner.GetCube(v.GetCubeRequest(name=created.name)).activation.source_text == "the door code is 4711"

        def recall(channel: grpc.Channel) -> list[s.RecallItem]:
            request = s.RecallRequest(parent=SPACE, query="door code", token_budget=100, model_fingerprint=fingerprint)
            return list(SchedulerServiceStub(channel).Recall(request).items)

        (mine,), theirs = recall(admin), recall(viewer_channel)
        assert (mine.kind, mine.tokens) == (s.RecallItem.KIND_ACTIVATION, 7)
        # The viewer may not read the cache, nor its text, and is not handed a cube ranked on that text.
        assert theirs == []
        viewer_channel.close()
        admin.close()
    finally:
        server.stop(grace=1)
