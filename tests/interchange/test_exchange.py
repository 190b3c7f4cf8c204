"""Export and import through real servers: round trip, conflict policies, redaction, cross-LLM re-embedding, audit."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from _trust import trust_keys
from memos_test_support import admin_token, authorized_channel, reason_of, start_server

from memos_grpc._proto.memos.v1 import access_pb2, audit_pb2, cube_pb2, space_pb2, trust_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import NoEmbedder
from memos_grpc.primitives.keys import SigningKey
from memos_grpc.server.app import MemosServer

Action = i.ImportedCube.Action
Rule = space_pb2.RedactionRule


class Peer:
    """Stubs for one server, as its admin."""

    def __init__(self, server: MemosServer) -> None:
        self.server = server
        self.channel = authorized_channel(server.address, admin_token(server))
        self.vault = VaultServiceStub(self.channel)
        self.governance = GovernanceServiceStub(self.channel)
        self.interchange = InterchangeServiceStub(self.channel)

    def space(self, **fields: object) -> str:
        space_id = "s" + uuid.uuid4().hex[:12]
        request = g.CreateSpaceRequest(space_id=space_id, space=space_pb2.Space(**fields))
        return self.governance.CreateSpace(request).name

    def add(
        self, parent: str, texts: list[str], vectors: bool = False, context: str = "", **fields: object
    ) -> list[cube_pb2.MemCube]:
        requests = []
        for n, text in enumerate(texts):
            cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text, context=context), **fields)
            vector = v.Vector(values=[1.0 if d == n % 384 else 0.01 for d in range(384)]) if vectors else None
            requests.append(v.CreateCubeRequest(cube=cube, vector=vector))
        return list(self.vault.BatchCreateCubes(v.BatchCreateCubesRequest(parent=parent, requests=requests)).cubes)

    def cubes(self, parent: str) -> list[cube_pb2.MemCube]:
        return list(self.vault.ListCubes(v.ListCubesRequest(parent=parent)).cubes)

    def export(self, parent: str, **fields: object) -> bytes:
        return b"".join(r.chunk for r in self.interchange.ExportBundle(i.ExportBundleRequest(parent=parent, **fields)))

    def import_(self, parent: str, bundle: bytes, conflict: int = 0, chunk: int = 4096) -> i.ImportBundleResponse:
        def requests() -> Iterator[i.ImportBundleRequest]:
            yield i.ImportBundleRequest(parent=parent, conflict_policy=conflict)  # type: ignore[arg-type]
            for offset in range(0, len(bundle), chunk):
                yield i.ImportBundleRequest(chunk=bundle[offset : offset + chunk])

        return self.interchange.ImportBundle(requests())

    def verify(self, bundle: bytes) -> i.BundleVerification:
        return self.interchange.VerifyBundle(iter([i.VerifyBundleRequest(chunk=bundle)])).verification


@pytest.fixture
def peer(server: MemosServer) -> Iterator[Peer]:
    opened = Peer(server)
    yield opened
    opened.channel.close()


@pytest.fixture(scope="module")
def client_vector_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """A server without an embedder (embedder = none): clients send vectors."""
    running = start_server(tmp_path_factory.mktemp("none"), NoEmbedder(384))
    opened = Peer(running)
    yield opened
    opened.channel.close()
    running.stop(grace=1)


def test_a_bundle_round_trips_with_provenance_and_search(peer: Peer) -> None:
    source = peer.space()
    cubes = peer.add(source, ["the cat sat on the mat", "paris is the capital of france"], tags=["geo"])
    bundle = peer.export(source)
    report = peer.verify(bundle)
    assert report.valid, report.message
    assert (report.cube_count, report.blob_count, report.reason) == (2, 0, "")
    statement = json.loads(report.statement)
    assert statement["predicate"]["exporter"]["principal"] == "principals/admin"
    assert statement["predicate"]["cubeCounts"] == {"plaintext": 2}
    assert [s.status for s in report.signatures] == [i.SignatureCheck.STATUS_COUNTED]
    assert report.signatures[0].principal == "principals/node"

    target = peer.space()
    response = peer.import_(target, bundle)
    assert (response.created_count, response.reembedded_count) == (2, 0)  # same embedder: vectors reused
    imported = {c.provenance_id: c for c in peer.cubes(target)}
    assert set(imported) == {c.provenance_id for c in cubes}
    for original in cubes:
        copy = imported[original.provenance_id]
        assert copy.plaintext.text == original.plaintext.text and list(copy.tags) == ["geo"]
        assert copy.source == cube_pb2.SOURCE_IMPORT and copy.origin == report.statement_digest
        assert copy.access.owner == "principals/admin" and not copy.embedding
    hits = peer.vault.SearchCubes(v.SearchCubesRequest(parent=target, text="French capital city", top_k=1))
    assert hits.results[0].cube.plaintext.text == "paris is the capital of france"


def test_export_selects_by_name_and_filter(peer: Peer) -> None:
    source = peer.space()
    cubes = peer.add(source, ["alpha", "beta", "gamma"], priority=5)
    peer.vault.UpdateCube(
        v.UpdateCubeRequest(cube=cube_pb2.MemCube(name=cubes[2].name, priority=90), update_mask={"paths": ["priority"]})
    )
    assert peer.verify(peer.export(source, names=[cubes[0].name, cubes[1].name])).cube_count == 2
    assert peer.verify(peer.export(source, filter="priority > 50")).cube_count == 1
    with pytest.raises(grpc.RpcError) as caught:
        peer.export(source, names=["spaces/elsewhere/cubes/x"])
    assert reason_of(caught.value) == "PARENT_MISMATCH"


@pytest.mark.parametrize(
    ("conflict", "action", "field"),
    [
        (i.CONFLICT_POLICY_SKIP, Action.ACTION_SKIPPED, "skipped_count"),
        (i.CONFLICT_POLICY_NEW_VERSION, Action.ACTION_NEW_VERSION, "new_version_count"),
        (i.CONFLICT_POLICY_REPLACE, Action.ACTION_REPLACED, "replaced_count"),
    ],
    ids=["skip", "new-version", "replace"],
)
def test_conflict_policies(peer: Peer, conflict: int, action: int, field: str) -> None:
    source, target = peer.space(), peer.space()
    original = peer.add(source, ["the meeting is on monday"])[0]
    assert peer.import_(target, peer.export(source)).created_count == 1
    local = peer.cubes(target)[0]
    peer.vault.UpdateCube(  # the source changes its memory after the first exchange
        v.UpdateCubeRequest(
            cube=cube_pb2.MemCube(name=original.name, plaintext=cube_pb2.PlaintextPayload(text="moved to tuesday")),
            update_mask={"paths": ["plaintext.text"]},
        )
    )
    response = peer.import_(target, peer.export(source), conflict)
    assert getattr(response, field) == 1 and response.created_count == 0
    assert [c.action for c in response.cubes] == [action]
    after = peer.cubes(target)
    assert len(after) == 1 and after[0].name == local.name and after[0].provenance_id == original.provenance_id
    if action == Action.ACTION_SKIPPED:
        assert after[0].plaintext.text == "the meeting is on monday" and after[0].etag == local.etag
    else:
        assert after[0].plaintext.text == "moved to tuesday"
        assert after[0].version == (local.version + 1 if action == Action.ACTION_NEW_VERSION else 1)
        hits = peer.vault.SearchCubes(v.SearchCubesRequest(parent=target, text="tuesday", top_k=5))
        assert [h.cube.name for h in hits.results] == [local.name]  # the old vector is gone, the new one found


def test_a_frozen_cube_refuses_replacement_and_nothing_is_imported(peer: Peer, server: MemosServer) -> None:
    source, target = peer.space(), peer.space()
    peer.add(source, ["kept as it is"])
    peer.import_(target, peer.export(source))
    peer.add(source, ["a newcomer"])
    frozen = peer.cubes(target)[0]
    # No FreezeCube RPC yet (lifecycle work): freeze the row the way the lifecycle will.
    cube = cube_pb2.MemCube.FromString(frozen.SerializeToString())
    cube.state = cube_pb2.LIFECYCLE_STATE_FROZEN
    database = server.slot.get().context.database

    def freeze(cursor: object) -> None:
        cursor.execute(  # type: ignore[attr-defined]
            "UPDATE cubes SET cube_pb = ?, state = ? WHERE provenance_id = ? AND space_id = ?",
            [cube.SerializeToString(), cube.state, cube.provenance_id, target.split("/")[1]],
        )

    database.write(freeze)
    with pytest.raises(grpc.RpcError) as caught:
        peer.import_(target, peer.export(source), i.CONFLICT_POLICY_REPLACE)
    assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.FAILED_PRECONDITION, "CUBE_FROZEN")
    assert [c.plaintext.text for c in peer.cubes(target)] == ["kept as it is"]  # the newcomer did not get in either


def test_export_redaction_rules_apply_and_are_recorded(peer: Peer) -> None:
    rules = [
        Rule(sensitivity_label="secret", action=Rule.ACTION_WITHHOLD, audience=Rule.AUDIENCE_EXPORT),
        Rule(sensitivity_label="pii", action=Rule.ACTION_REDACT_TEXT, audience=Rule.AUDIENCE_EXPORT),
        Rule(sensitivity_label="internal", action=Rule.ACTION_WITHHOLD, audience=Rule.AUDIENCE_VIEWERS),
    ]
    source = peer.space(redaction_rules=rules)
    peer.add(source, ["public fact"])
    peer.add(source, ["the launch code is 1234"], sensitivity_labels=["secret"])
    peer.add(source, ["alice lives at 5 elm street"], context="bob: where does alice live?", sensitivity_labels=["pii"])
    peer.add(source, ["viewers-only rule, export keeps it"], sensitivity_labels=["internal"])
    bundle = peer.export(source)
    assert b"launch code" not in bundle and b"elm street" not in bundle
    assert b"where does alice live" not in bundle  # a redacted cube's search context quotes it too
    report = peer.verify(bundle)
    assert report.cube_count == 3
    assert sorted((r.sensitivity_label, r.action, r.cube_count) for r in report.redactions) == [
        ("pii", "REDACT_TEXT", 1),
        ("secret", "WITHHOLD", 1),
    ]
    target = peer.space()
    response = peer.import_(target, bundle)
    texts = sorted(c.plaintext.text for c in peer.cubes(target))
    assert texts == ["[REDACTED]", "public fact", "viewers-only rule, export keeps it"]
    # The redacted cube's vector was not exported (it would leak the text): only it was embedded anew.
    reembedded = {c.provenance_id for c in response.cubes if c.reembedded}
    assert reembedded == {c.provenance_id for c in peer.cubes(target) if c.plaintext.text == "[REDACTED]"}


def test_plaintext_from_another_embedder_is_embedded_again(peer: Peer, client_vector_peer: Peer) -> None:
    source = client_vector_peer.space()
    client_vector_peer.add(source, ["the harbour freezes in january", "bees make honey"], vectors=True)
    bundle = client_vector_peer.export(source)
    node = client_vector_peer.governance.GetTrustRoot(g.GetTrustRootRequest())
    trust_keys(peer.governance, node)
    target = peer.space()
    response = peer.import_(target, bundle)
    assert (response.created_count, response.reembedded_count) == (2, 2)
    fingerprint = peer.server.slot.get().context.embedder.fingerprint
    assert {c.embedding_fingerprint for c in peer.cubes(target)} == {fingerprint}
    hits = peer.vault.SearchCubes(v.SearchCubesRequest(parent=target, text="insects producing honey", top_k=1))
    assert hits.results[0].cube.plaintext.text == "bees make honey"


def test_a_server_without_embedder_refuses_text_it_cannot_embed(peer: Peer, client_vector_peer: Peer) -> None:
    rules = [Rule(sensitivity_label="pii", action=Rule.ACTION_REDACT_TEXT, audience=Rule.AUDIENCE_EXPORT)]
    source = peer.space(redaction_rules=rules)
    peer.add(source, ["an ordinary memory"])
    peer.add(source, ["bob's phone number"], sensitivity_labels=["pii"])  # exported without a vector
    trust_keys(client_vector_peer.governance, peer.governance.GetTrustRoot(g.GetTrustRootRequest()))
    target = client_vector_peer.space()
    with pytest.raises(grpc.RpcError) as caught:
        client_vector_peer.import_(target, peer.export(source))
    assert reason_of(caught.value) == "EMBEDDER_MISMATCH"
    assert client_vector_peer.cubes(target) == []
    assert (
        client_vector_peer.import_(target, peer.export(source, filter='NOT sensitivity_labels:"pii"')).created_count
        == 1
    )


def test_activation_cubes_keep_their_model_and_blob(peer: Peer) -> None:
    source, target = peer.space(), peer.space()
    data = bytes(range(256)) * 4096
    requests = [v.WritePayloadRequest(parent=source, media_type="application/vnd.safetensors")]
    requests += [v.WritePayloadRequest(data=data[o : o + 65536]) for o in range(0, len(data), 65536)]
    blob = peer.vault.WritePayload(iter(requests)).blob
    activation = cube_pb2.ActivationPayload(blob=blob, model_fingerprint="sha256:tiny-gpt2", dtype="float32", shape=[2])
    peer.vault.CreateCube(v.CreateCubeRequest(parent=source, cube=cube_pb2.MemCube(activation=activation)))
    bundle = peer.export(source)
    report = peer.verify(bundle)
    assert (report.blob_count, report.blob_bytes, list(report.model_fingerprints)) == (
        1,
        len(data),
        ["sha256:tiny-gpt2"],
    )
    response = peer.import_(target, bundle, chunk=100_000)
    assert response.created_count == 1 and response.reembedded_count == 0
    copy = peer.cubes(target)[0]
    assert copy.activation.model_fingerprint == "sha256:tiny-gpt2" and copy.activation.blob.digest == blob.digest
    read = b"".join(r.data for r in peer.vault.ReadPayload(v.ReadPayloadRequest(name=copy.name)))
    assert read == data


def test_every_import_is_audited_refused_or_not(peer: Peer) -> None:
    source, target = peer.space(), peer.space()
    peer.add(source, ["audited memory"])
    bundle = peer.export(source)
    peer.import_(target, bundle)
    broken = bundle[:-2000]
    with pytest.raises(grpc.RpcError):
        peer.import_(target, broken)
    events = peer.governance.ListAuditEvents(
        g.ListAuditEventsRequest(filter=f'resource = "{target}"', page_size=100)
    ).events
    imports = [(e.method.rsplit("/", 1)[1], e.outcome, e.reason) for e in events]
    assert imports == [
        ("ImportBundle", audit_pb2.AuditEvent.OUTCOME_OK, ""),
        ("ImportBundle", audit_pb2.AuditEvent.OUTCOME_FAILED, "BUNDLE_TRUNCATED"),
    ]
    exports = peer.governance.ListAuditEvents(
        g.ListAuditEventsRequest(
            filter=f'resource = "{source}" AND method = "/memos.v1.InterchangeService/ExportBundle"'
        )
    ).events
    assert [e.outcome for e in exports] == [audit_pb2.AuditEvent.OUTCOME_OK]


def test_the_node_key_is_private_and_published(server: MemosServer, peer: Peer) -> None:
    key_file = Path(server.settings.data_dir) / "keys" / "node.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    node_key = SigningKey.read(key_file).key_id
    node = peer.governance.GetPrincipal(g.GetPrincipalRequest(name="principals/node"))
    assert [k.key_id for k in node.public_keys] == [node_key]
    root = peer.governance.GetTrustRoot(g.GetTrustRootRequest())  # other tests may have added peers' keys
    assert node_key in {k for r in root.roles if r.role == trust_pb2.KEY_ROLE_ADMIN for k in r.key_ids}


def test_a_viewer_exports_only_what_it_may_read(peer: Peer, server: MemosServer) -> None:
    rules = [
        Rule(sensitivity_label="pii", action=Rule.ACTION_REDACT_TEXT, audience=Rule.AUDIENCE_VIEWERS),
        Rule(sensitivity_label="secret", action=Rule.ACTION_WITHHOLD, audience=Rule.AUDIENCE_VIEWERS),
    ]
    source = peer.space(redaction_rules=rules)
    peer.add(source, ["an open fact"])
    peer.add(source, ["carol's home address is 9 oak lane"], sensitivity_labels=["pii"])
    peer.add(source, ["the vault combination"], sensitivity_labels=["secret"])
    name = "v" + uuid.uuid4().hex[:10]
    viewer = peer.governance.CreatePrincipal(g.CreatePrincipalRequest(principal_id=name)).name
    token = peer.governance.CreateCredential(g.CreateCredentialRequest(parent=viewer)).token
    policy = access_pb2.AccessPolicy(
        bindings=[
            access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/admin"]),
            access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=[viewer]),
        ]
    )
    peer.governance.SetAccessPolicy(g.SetAccessPolicyRequest(resource=source, policy=policy))
    channel = authorized_channel(server.address, token)
    try:
        stub = InterchangeServiceStub(channel)
        bundle = b"".join(r.chunk for r in stub.ExportBundle(i.ExportBundleRequest(parent=source)))
    finally:
        channel.close()
    assert b"oak lane" not in bundle and b"vault combination" not in bundle
    report = peer.verify(bundle)
    assert report.valid and report.cube_count == 2
    assert [(r.sensitivity_label, r.action, r.cube_count) for r in report.redactions] == [("pii", "REDACT_TEXT", 1)]
    assert b"oak lane" in peer.export(source)  # the admin (no export rules here) exports it whole
