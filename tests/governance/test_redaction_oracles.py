"""Redacted text answers no questions: a viewer's search and Recall never rank a cube on text redacted for it.

A viewer for whom a cube's text is redacted must not learn that text by asking: not by a lexical search for
a word of it (or of its search context), not by a dense search with the text or a paraphrase, not through
hybrid search or Recall, and not through the scores of the other cubes. An editor of the same space, for whom
nothing is redacted, finds the cube every way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import field_mask_pb2
from memos_test_support import admin_token, authorized_channel, start_server

from memos_grpc._proto.memos.v1 import access_pb2, cube_pb2, principal_pb2, space_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import MemosServer

Rule = space_pb2.RedactionRule
SPACE = "spaces/ward"
SECRET = "the door code of the pharmacy is 4711 zebracorn"
CONTEXT = "asked by the night nurse about quokka storage"
CODE = f"{SPACE}/cubes/code"
OTHERS = {
    "hours": "the ward opens at nine in the morning",
    "soup": "the cafeteria serves soup on friday",
    "door": "the door of the ward is painted red",
}
DENSE, LEXICAL, HYBRID = v.SEARCH_MODE_DENSE, v.SEARCH_MODE_LEXICAL, v.SEARCH_MODE_HYBRID


@dataclass
class Ward:
    server: MemosServer
    viewer: grpc.Channel
    editor: grpc.Channel


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Ward]:
    """A space whose `secret` cubes are redacted for viewers, with one viewer and one editor.

    The lexical index is committed when a test says so, never by the clock.
    """
    server = start_server(tmp_path_factory.mktemp("ward"), embedder, lexical_refresh_seconds=3600)
    admin = authorized_channel(server.address, admin_token(server))
    governance = GovernanceServiceStub(admin)
    rules = [Rule(sensitivity_label="secret", action=Rule.ACTION_REDACT_TEXT, audience=Rule.AUDIENCE_VIEWERS)]
    governance.CreateSpace(g.CreateSpaceRequest(space_id="ward", space=space_pb2.Space(redaction_rules=rules)))
    tokens = {}
    for name in ("viewer", "editor"):
        governance.CreatePrincipal(g.CreatePrincipalRequest(principal_id=name, principal=principal_pb2.Principal()))
        tokens[name] = governance.CreateCredential(g.CreateCredentialRequest(parent=f"principals/{name}")).token
    bindings = [
        access_pb2.AccessBinding(role=access_pb2.ROLE_OWNER, members=["principals/admin"]),
        access_pb2.AccessBinding(role=access_pb2.ROLE_EDITOR, members=["principals/editor"]),
        access_pb2.AccessBinding(role=access_pb2.ROLE_VIEWER, members=["principals/viewer"]),
    ]
    governance.SetAccessPolicy(
        g.SetAccessPolicyRequest(resource=SPACE, policy=access_pb2.AccessPolicy(bindings=bindings))
    )
    vault = VaultServiceStub(admin)
    secret = cube_pb2.MemCube(
        plaintext=cube_pb2.PlaintextPayload(text=SECRET, context=CONTEXT), sensitivity_labels=["secret"]
    )
    vault.CreateCube(v.CreateCubeRequest(parent=SPACE, cube_id="code", cube=secret))
    for cube_id, text in OTHERS.items():
        cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=text))
        vault.CreateCube(v.CreateCubeRequest(parent=SPACE, cube_id=cube_id, cube=cube))
    lexical = server.slot.get().context.catalog.lexical
    assert lexical is not None
    lexical.refresh()
    opened = Ward(
        server,
        authorized_channel(server.address, tokens["viewer"]),
        authorized_channel(server.address, tokens["editor"]),
    )
    yield opened
    for channel in (admin, opened.viewer, opened.editor):
        channel.close()
    server.stop(grace=1)


def search(channel: grpc.Channel, text: str, mode: int, filter_text: str = "") -> list[tuple[str, float]]:
    request = v.SearchCubesRequest(parent=SPACE, text=text, mode=mode, top_k=10, filter=filter_text)  # type: ignore[arg-type]
    return [(hit.cube.name, hit.score) for hit in VaultServiceStub(channel).SearchCubes(request).results]


def names(hits: list[tuple[str, float]]) -> list[str]:
    return [name for name, _ in hits]


@pytest.mark.parametrize("filter_text", ["", "priority >= 0", "-tags:absent"])
@pytest.mark.parametrize("word", ["zebracorn", "quokka"])  # a word of the text, a word of its search context
def test_a_lexical_search_for_a_hidden_word_finds_nothing_for_the_viewer(
    ward: Ward, word: str, filter_text: str
) -> None:
    assert names(search(ward.editor, word, LEXICAL, filter_text)) == [CODE]
    assert search(ward.viewer, word, LEXICAL, filter_text) == []


@pytest.mark.parametrize("filter_text", ["", "priority >= 0", "-tags:absent"])
def test_a_dense_search_with_the_hidden_text_does_not_confirm_it(ward: Ward, filter_text: str) -> None:
    (best, score), *_ = search(ward.editor, SECRET, DENSE, filter_text)
    assert best == CODE and score == pytest.approx(1.0, abs=1e-3)
    viewed = search(ward.viewer, SECRET, DENSE, filter_text)
    assert CODE not in names(viewed) and set(names(viewed)) == {f"{SPACE}/cubes/{c}" for c in OTHERS}


def test_a_dense_search_with_a_paraphrase_does_not_find_the_hidden_cube(ward: Ward) -> None:
    paraphrase = "which number opens the pharmacy door"
    assert names(search(ward.editor, paraphrase, DENSE))[0] == CODE
    assert CODE not in names(search(ward.viewer, paraphrase, DENSE))


@pytest.mark.parametrize("query", ["zebracorn", SECRET, "which number opens the pharmacy door"])
def test_hybrid_search_does_not_find_the_hidden_cube(ward: Ward, query: str) -> None:
    assert names(search(ward.editor, query, HYBRID))[0] == CODE
    assert CODE not in names(search(ward.viewer, query, HYBRID))


def test_the_hidden_cube_does_not_set_the_scale_of_the_viewers_scores(ward: Ward) -> None:
    # Lexical scores are divided by the best: were the hidden cube ranked, a visible hit's score would say how
    # much better the hidden text matched.
    query = "pharmacy door code 4711"
    assert names(search(ward.editor, query, LEXICAL))[0] == CODE
    assert search(ward.viewer, query, LEXICAL) == [(f"{SPACE}/cubes/door", 1.0)]


@pytest.mark.parametrize("query", [SECRET, "zebracorn", "which number opens the pharmacy door"])
def test_recall_does_not_plan_the_hidden_cube_nor_count_it(ward: Ward, query: str) -> None:
    def plan(channel: grpc.Channel) -> s.RecallPlan:
        request = s.RecallRequest(parent=SPACE, query=query, token_budget=1000)
        return SchedulerServiceStub(channel).Recall(request)

    editors = plan(ward.editor)
    assert editors.items[0].cube.name == CODE
    viewers = plan(ward.viewer)
    assert CODE not in [item.cube.name for item in viewers.items]
    assert viewers.candidate_count == editors.candidate_count - 1


def test_an_old_version_is_redacted_by_a_label_added_since(ward: Ward) -> None:
    admin = authorized_channel(ward.server.address, admin_token(ward.server))
    vault = VaultServiceStub(admin)
    cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="the safe opens with 0815"))
    created = vault.CreateCube(v.CreateCubeRequest(parent=SPACE, cube_id="safe", cube=cube))
    labelled = cube_pb2.MemCube(name=created.name, sensitivity_labels=["secret"])
    mask = field_mask_pb2.FieldMask(paths=["sensitivity_labels"])
    vault.UpdateCube(v.UpdateCubeRequest(cube=labelled, update_mask=mask))
    viewer = VaultServiceStub(ward.viewer)
    first = viewer.GetCube(v.GetCubeRequest(name=f"{created.name}/versions/1"))
    assert (first.name, first.plaintext.text) == (f"{created.name}/versions/1", "[REDACTED]")
    listed = viewer.ListCubeVersions(v.ListCubeVersionsRequest(name=created.name)).versions
    assert [(c.version, c.plaintext.text) for c in listed] == [(2, "[REDACTED]"), (1, "[REDACTED]")]
    editor = VaultServiceStub(ward.editor)
    assert editor.GetCube(v.GetCubeRequest(name=f"{created.name}/versions/1")).plaintext.text.endswith("0815")
    admin.close()
