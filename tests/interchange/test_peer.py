"""ImportFromPeer between two real TLS servers on 127.0.0.1: server B pulls a bundle from server A and imports it.

Covers the happy path (cubes and a blob arrive intact, provenance kept, audited), a principal's server-kept key
as a second signature trusted as a publisher, refusals (untrusted signer, bad token, no peer, plaintext, bad TLS),
and a tampering proxy that flips single bytes of A's stream or cuts it short: B must refuse and keep nothing.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator

import grpc
import pytest
from memos_test_support import start_server

from memos_grpc._proto.memos.v1 import (
    access_pb2,
    audit_pb2,
    governance_service_pb2,
    interchange_service_pb2,
    principal_pb2,
    trust_pb2,
    vault_service_pb2,
)
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.interchange.bundle import ENVELOPE_NAME, MARKER_NAME
from tests.interchange._peers import (
    BLOCK,
    TIMEOUT,
    Peers,
    Plan,
    Stubs,
    Tampering,
    TamperingProxy,
    add_activation,
    add_texts,
    error_info,
    export,
    flip,
    free_port,
    list_cubes,
    new_space,
    other_base64,
    rewrite_header,
    set_trust,
    tar_layout,
    tls_stubs,
    trusted,
)
from tests.memos_test_support import admin_token
from tests.server._certs import Pki, make_pki

Check = interchange_service_pb2.SignatureCheck
Outcome = audit_pb2.AuditEvent
IMPORT_FROM_PEER = "/memos.v1.InterchangeService/ImportFromPeer"
TEXTS = [
    "The quarterly report is due on the first Friday of March.",
    "Alice prefers her coffee black, no sugar.",
    "The staging cluster runs in eu-west-1.",
]


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Peers]:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    tls = {"tls_cert_file": str(pki.server.cert), "tls_key_file": str(pki.server.key)}
    a = start_server(tmp_path_factory.mktemp("a"), embedder, node_name="server-a", **tls)
    try:
        b = start_server(tmp_path_factory.mktemp("b"), embedder, node_name="server-b", **tls)
    except BaseException:
        a.stop(grace=1)
        raise
    admin_a = tls_stubs(a.address, pki.ca.cert_pem(), admin_token(a))
    admin_b = tls_stubs(b.address, pki.ca.cert_pem(), admin_token(b))
    try:
        yield Peers(pki, a, b, admin_a, admin_b)
    finally:
        admin_a.channel.close()
        admin_b.channel.close()
        a.stop(grace=1)
        b.stop(grace=1)


def audit(stubs: Stubs, method: str, resource: str) -> list[audit_pb2.AuditEvent]:
    request = governance_service_pb2.ListAuditEventsRequest(
        filter=f'method = "{method}" AND resource = "{resource}"', page_size=100
    )
    return list(stubs.governance.ListAuditEvents(request, timeout=TIMEOUT).events)


def add_principal(stubs: Stubs, source: str, role: int) -> tuple[str, str]:
    """A non-admin principal on the server with ``role`` on space ``source``; returns its name and a token."""
    governance = stubs.governance
    principal = governance.CreatePrincipal(
        governance_service_pb2.CreatePrincipalRequest(
            principal_id="p" + uuid.uuid4().hex[:12],
            principal=principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER),
        )
    )
    token = governance.CreateCredential(governance_service_pb2.CreateCredentialRequest(parent=principal.name)).token
    if role:
        policy = governance.GetAccessPolicy(governance_service_pb2.GetAccessPolicyRequest(resource=source))
        policy.bindings.add(role=role, members=[principal.name])
        governance.SetAccessPolicy(governance_service_pb2.SetAccessPolicyRequest(resource=source, policy=policy))
    return str(principal.name), str(token)


# -- 1. the happy path --------------------------------------------------------------------------


def test_import_from_a_trusted_peer_brings_cubes_and_blob_over_tls(peers: Peers) -> None:
    a, b = peers.admin_a, peers.admin_b
    source = new_space(a)
    texts = {c.provenance_id: c.plaintext.text for c in add_texts(a, source, TEXTS)}
    blob = os.urandom(200_000)
    activation = add_activation(a, source, blob)
    a_node = peers.a_node()
    trust = set_trust(b, node=[a_node])
    assert a_node.key_id in next(r.key_ids for r in trust.roles if r.role == trust_pb2.KEY_ROLE_NODE)
    target = new_space(b)

    # peer_tls_server_name picks the certificate's other name; the default (127.0.0.1) is checked in other tests.
    response = peers.pull(target, source, peer_tls_server_name="localhost")

    verification = response.verification
    assert verification.valid and verification.reason == ""
    assert [(s.key_id, s.status) for s in verification.signatures] == [(a_node.key_id, Check.STATUS_COUNTED)]
    assert verification.exporter_node == a_node.key_id
    assert verification.exporter_principal == "principals/admin"
    assert verification.source_server == "server-a"
    assert (verification.cube_count, verification.blob_count, verification.blob_bytes) == (4, 1, len(blob))
    assert (response.created_count, response.skipped_count, response.reembedded_count) == (4, 0, 0)

    imported = {c.provenance_id: c for c in list_cubes(b, target)}
    assert set(imported) == {*texts, activation.provenance_id}
    assert {p: imported[p].plaintext.text for p in texts} == texts
    for cube in imported.values():
        assert cube.name.startswith(target + "/cubes/")
        assert cube.origin == verification.statement_digest
    copy = imported[activation.provenance_id]
    assert copy.activation.blob.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    read = b.vault.ReadPayload(vault_service_pb2.ReadPayloadRequest(name=copy.name), timeout=TIMEOUT)
    assert b"".join(r.data for r in read) == blob
    assert peers.b.vault is not None
    assert b"".join(peers.b.vault.context.blobs.read(copy.activation.blob.digest, chunk_bytes=len(blob))) == blob

    found = b.vault.SearchCubes(
        vault_service_pb2.SearchCubesRequest(parent=target, text="how does Alice take her coffee?", top_k=1)
    ).results
    assert [r.cube.plaintext.text for r in found] == [TEXTS[1]]

    events = audit(b, IMPORT_FROM_PEER, target)
    assert [(e.outcome, e.status_code, e.principal) for e in events] == [(Outcome.OUTCOME_OK, "OK", "principals/admin")]
    # A recorded the export to B's token holder: memory left A, and A's log says so.
    exported = audit(a, "/memos.v1.InterchangeService/ExportBundle", source)
    assert [(e.outcome, e.principal) for e in exported] == [(Outcome.OUTCOME_OK, "principals/admin")]


# -- 2. a principal's server-kept key as a publisher ---------------------------------------------


def test_bundle_signed_by_an_exporting_principal_is_trusted_as_publisher(peers: Peers) -> None:
    a, b = peers.admin_a, peers.admin_b
    source = new_space(a)
    texts = {c.provenance_id: c.plaintext.text for c in add_texts(a, source, TEXTS[:2])}
    exporter, token = add_principal(a, source, access_pb2.ROLE_VIEWER)
    key = a.governance.CreateSigningKey(governance_service_pb2.CreateSigningKeyRequest(parent=exporter))
    publisher = trusted(key, exporter)
    a_node = peers.a_node()
    publisher_policy = interchange_service_pb2.TrustPolicy(role=trust_pb2.KEY_ROLE_PUBLISHER)

    # B trusts A's node as a node, but nobody as a publisher: the publisher policy finds no signer it trusts.
    set_trust(b, node=[a_node])
    refused = peers.refused(new_space(b), source, token=token, trust_policy=publisher_policy)
    assert (refused.code(), error_info(refused).reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "BUNDLE_UNTRUSTED_SIGNER",
    )

    set_trust(b, publisher=[publisher])
    target = new_space(b)
    response = peers.pull(target, source, token=token, trust_policy=publisher_policy)
    verification = response.verification
    assert verification.valid and verification.role == trust_pb2.KEY_ROLE_PUBLISHER
    # Both signed: the node (not a publisher here, so not counted) and the principal's kept key (counted).
    assert [(s.key_id_hint, s.status) for s in verification.signatures] == [
        (a_node.key_id, Check.STATUS_UNKNOWN_KEY),
        (publisher.key_id, Check.STATUS_COUNTED),
    ]
    assert verification.exporter_principal == exporter
    assert verification.exporter_node == a_node.key_id
    assert {c.provenance_id: c.plaintext.text for c in list_cubes(b, target)} == texts


# -- 3. an untrusted peer -----------------------------------------------------------------------


def test_peer_whose_node_key_is_not_trusted_is_refused_and_audited(peers: Peers) -> None:
    a, b = peers.admin_a, peers.admin_b
    source = new_space(a)
    add_texts(a, source, TEXTS)
    add_activation(a, source, os.urandom(5000))
    trust = set_trust(b)  # as B started: only its own node key is a node
    assert peers.a_node().key_id not in {k.key_id for k in trust.keys}
    target = new_space(b)

    refused = peers.refused(target, source)

    assert (refused.code(), error_info(refused).reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BUNDLE_UNTRUSTED_SIGNER")
    events = audit(b, IMPORT_FROM_PEER, target)
    assert [(e.outcome, e.status_code, e.reason) for e in events] == [
        (Outcome.OUTCOME_FAILED, "INVALID_ARGUMENT", "BUNDLE_UNTRUSTED_SIGNER")
    ]


# -- 4. the connection to the peer --------------------------------------------------------------


@pytest.fixture
def trusted_source(peers: Peers) -> str:
    """A space on A with cubes, B trusting A: so only the connection can make a pull fail."""
    source = new_space(peers.admin_a)
    add_texts(peers.admin_a, source, TEXTS)
    set_trust(peers.admin_b, node=[peers.a_node()])
    return source


def _revoked_token(peers: Peers, source: str) -> str:
    governance = peers.admin_a.governance
    credential = governance.CreateCredential(governance_service_pb2.CreateCredentialRequest(parent="principals/admin"))
    governance.RevokeCredential(governance_service_pb2.RevokeCredentialRequest(name=credential.name))
    return str(credential.token)


@pytest.mark.parametrize(
    ("token", "peer_code"),
    [
        (lambda peers, source: "not-a-token-" + uuid.uuid4().hex, "UNAUTHENTICATED"),
        (_revoked_token, "UNAUTHENTICATED"),
        # Valid on A, but its principal has no role on the space: A hides the space.
        (lambda peers, source: add_principal(peers.admin_a, source, 0)[1], "NOT_FOUND"),
    ],
    ids=["wrong", "revoked", "no-access"],
)
def test_peer_that_refuses_the_token_is_peer_refused(
    peers: Peers, trusted_source: str, token: Callable[[Peers, str], str], peer_code: str
) -> None:
    refused = peers.refused(new_space(peers.admin_b), trusted_source, token=token(peers, trusted_source))
    info = error_info(refused)
    assert (refused.code(), info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PEER_REFUSED")
    assert info.metadata["peer_code"] == peer_code


def test_missing_target_space_fails_before_the_peer_is_dialled(peers: Peers, trusted_source: str) -> None:
    missing = "spaces/s" + uuid.uuid4().hex[:12]
    with pytest.raises(grpc.RpcError) as caught:
        peers.pull(missing, trusted_source)
    assert (caught.value.code(), error_info(caught.value).reason) == (grpc.StatusCode.NOT_FOUND, "SPACE_NOT_FOUND")
    # A was never asked for a bundle: no export of the source is in its audit log.
    assert audit(peers.admin_a, "/memos.v1.InterchangeService/ExportBundle", trusted_source) == []


def test_peer_that_is_not_listening_is_unavailable(peers: Peers, trusted_source: str) -> None:
    refused = peers.refused(new_space(peers.admin_b), trusted_source, target=f"127.0.0.1:{free_port()}")
    assert (refused.code(), error_info(refused).reason) == (grpc.StatusCode.UNAVAILABLE, "PEER_UNAVAILABLE")


def test_plaintext_peer_is_refused_unless_allowed(peers: Peers, trusted_source: str) -> None:
    refused = peers.refused(new_space(peers.admin_b), trusted_source, peer_plaintext=True)
    assert (refused.code(), error_info(refused).reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "PLAINTEXT_PEER_REFUSED",
    )


@pytest.mark.parametrize(
    "tls",
    [
        lambda pki: {"peer_ca_certificates": b""},  # B has no peer_ca_file: the system roots do not know the test CA
        lambda pki: {"peer_ca_certificates": pki.rogue_ca.cert_pem()},
        lambda pki: {"peer_tls_server_name": "elsewhere.example"},  # A's certificate names 127.0.0.1 and localhost
    ],
    ids=["no-ca", "other-ca", "wrong-name"],
)
def test_peer_certificate_that_does_not_verify_is_unavailable(
    peers: Peers, trusted_source: str, tls: Callable[[Pki], dict[str, object]]
) -> None:
    refused = peers.refused(new_space(peers.admin_b), trusted_source, **tls(peers.pki))
    assert (refused.code(), error_info(refused).reason) == (grpc.StatusCode.UNAVAILABLE, "PEER_UNAVAILABLE")


# -- 5. a tampering man in the middle -----------------------------------------------------------


@pytest.fixture(scope="module")
def tampering(peers: Peers) -> Iterator[Tampering]:
    a = peers.admin_a
    source = new_space(a)
    add_texts(a, source, TEXTS[:2])
    blob = os.urandom(3 * BLOCK + 100)  # several blocks, with padding
    digest = add_activation(a, source, blob).activation.blob.digest
    bundle = export(a, source)
    layout = tar_layout(bundle)
    assert [m.name for m in layout][:2] == [MARKER_NAME, ENVELOPE_NAME]
    assert [m.name.split("/", 1)[0] for m in layout[2:]] == ["cubes"] * 3 + ["blobs"]
    proxy = TamperingProxy(peers.a.address, peers.pki)
    try:
        yield Tampering(peers, proxy, source, bundle, layout, digest)
    finally:
        proxy.stop()


TAMPERS: dict[str, tuple[Plan, str]] = {
    "marker-version": (flip(lambda t: t.member(MARKER_NAME).data), "BUNDLE_VERSION_UNSUPPORTED"),
    "envelope-json": (flip(lambda t: t.member(ENVELOPE_NAME).data), "BUNDLE_ENVELOPE_MALFORMED"),
    "payload-type": (
        flip(lambda t: t.find(t.member(ENVELOPE_NAME), b'"payloadType":"', 20)),
        "BUNDLE_PAYLOAD_TYPE_INVALID",
    ),
    "payload": (
        flip(lambda t: t.find(t.member(ENVELOPE_NAME), b'"payload":"', 200), other_base64),
        "BUNDLE_SIGNATURE_INVALID",
    ),
    "signature": (
        flip(lambda t: t.find(t.member(ENVELOPE_NAME), b'"sig":"', 40), other_base64),
        "BUNDLE_SIGNATURE_INVALID",
    ),
    "marker-padding": (flip(lambda t: t.member(MARKER_NAME).end + 100), "BUNDLE_MALFORMED"),
    "cube-header-size": (flip(lambda t: t.member("cubes/").header + 124 + 10), "BUNDLE_MALFORMED"),
    "cube-header-name": (flip(lambda t: t.member("cubes/").header + 8), "BUNDLE_MALFORMED"),
    "cube-data": (flip(lambda t: t.member("cubes/").data + t.member("cubes/").size // 2), "BUNDLE_DIGEST_MISMATCH"),
    "blob-data": (flip(lambda t: t.member("blobs/").data + 700), "BUNDLE_DIGEST_MISMATCH"),
    "blob-last-byte": (flip(lambda t: t.member("blobs/").end - 1), "BUNDLE_DIGEST_MISMATCH"),
    "end-of-archive": (flip(lambda t: len(t.bundle) - 1), "BUNDLE_MALFORMED"),
    # Not one byte: a consistent header rewrite (checksum fixed), so the statement check is what catches it.
    "header-size-rewritten": (rewrite_header(lambda n: n, lambda s: s - 1), "BUNDLE_SIZE_MISMATCH"),
    "header-name-rewritten": (
        rewrite_header(lambda n: n.replace("cubes/", "cubes/x", 1), lambda s: s),
        "BUNDLE_UNLISTED_ENTRY",
    ),
}


def test_untampered_relay_imports(tampering: Tampering) -> None:
    """The control: the proxy itself is faithful, so the failures below are the edits' doing.

    It relays a space shaped like the tampered one but with its own blob, which must never reach B.
    """
    peers = tampering.peers
    source = new_space(peers.admin_a)
    add_texts(peers.admin_a, source, TEXTS[:2])
    blob = os.urandom(3 * BLOCK + 100)
    add_activation(peers.admin_a, source, blob)
    set_trust(peers.admin_b, node=[peers.a_node()])
    tampering.proxy.tamper({})
    target = new_space(peers.admin_b)
    response = peers.pull(target, source, target=tampering.proxy.address)
    assert response.verification.valid and response.created_count == 3
    assert response.verification.bundle_bytes == len(tampering.bundle)
    copy = next(c for c in list_cubes(peers.admin_b, target) if c.HasField("activation"))
    read = peers.admin_b.vault.ReadPayload(vault_service_pb2.ReadPayloadRequest(name=copy.name), timeout=TIMEOUT)
    assert b"".join(r.data for r in read) == blob


@pytest.mark.parametrize(
    "cut_at",
    [
        lambda t: t.member(ENVELOPE_NAME).data + 100,
        lambda t: t.member("blobs/").data + 1000,
        lambda t: len(t.bundle) - BLOCK,
    ],
    ids=["in-envelope", "in-blob", "in-end-of-archive"],
)
def test_stream_cut_short_is_truncated_and_leaves_nothing(
    tampering: Tampering, cut_at: Callable[[Tampering], int]
) -> None:
    """The peer (or a man in the middle) ends the stream early but with status OK: only the bundle can tell."""
    peers = tampering.peers
    set_trust(peers.admin_b, node=[peers.a_node()])
    tampering.proxy.tamper({}, cut_at=cut_at(tampering))

    refused = peers.refused(new_space(peers.admin_b), tampering.source, target=tampering.proxy.address)

    assert tampering.proxy.applied == 1
    assert (refused.code(), error_info(refused).reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BUNDLE_TRUNCATED")
    assert not tampering.blob_stored(peers.b)


@pytest.mark.parametrize(("edits", "reason"), list(TAMPERS.values()), ids=list(TAMPERS))
def test_tampered_stream_is_refused_and_leaves_nothing(tampering: Tampering, edits: Plan, reason: str) -> None:
    peers = tampering.peers
    set_trust(peers.admin_b, node=[peers.a_node()])
    planned = edits(tampering)
    assert planned and all(0 <= offset < len(tampering.bundle) for offset in planned)
    tampering.proxy.tamper(planned)

    refused = peers.refused(new_space(peers.admin_b), tampering.source, target=tampering.proxy.address)

    assert tampering.proxy.applied == len(planned)
    assert (refused.code(), error_info(refused).reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert not tampering.blob_stored(peers.b)
