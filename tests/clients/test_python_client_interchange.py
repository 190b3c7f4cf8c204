"""The Python client's bundle, trust root and signing key calls against real in-process servers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from memos_client import InvalidArgumentError, MemosClient, NotFoundError
from memos_client.bundle_types import TrustedKey as RootKey
from memos_test_support import start_server

from memos_grpc.embedding.embedder import Embedder
from memos_grpc.interchange.dsse import Envelope, parse_envelope
from memos_grpc.interchange.trust import TRUST_ROOT_PAYLOAD_TYPE, Role, TrustRoot, parse_trust_root
from memos_grpc.primitives.keys import SigningKey, TrustedKey, key_id
from memos_grpc.server.app import MemosServer
from tests.memos_test_support import admin_token

TEXTS = ["the espresso machine is broken", "lunch is at noon on fridays", "the wifi password is on the fridge"]


@pytest.fixture
def client(server: MemosServer) -> Iterator[MemosClient]:
    with MemosClient(server.address, token=admin_token(server), timeout=60.0) as memos:
        yield memos


def _space(client: MemosClient, texts: list[str] = TEXTS) -> str:
    space_id = "x" + uuid.uuid4().hex[:12]
    client.create_space(space_id)
    client.batch_create_cubes(space_id, [{"text": t} for t in texts])
    return space_id


def _own_node_key(client: MemosClient) -> RootKey:
    """The server's own node key among those its root trusts for "node" (other tests add peers' keys too)."""
    own = client.get_principal("principals/node").key_ids[0]
    return next(key for key in client.get_trust_root().keys_for("node") if key.key_id == own)


def test_file_round_trip_verify_and_import(client: MemosClient, tmp_path: Path) -> None:
    source = _space(client)
    path = tmp_path / "notes.bundle"
    sizes: list[int] = []
    written = client.export_bundle_to_file(source, path, progress=sizes.append)
    assert written == path.stat().st_size == sum(sizes) > 0
    assert not path.with_name("notes.bundle.part").exists()

    report = client.verify_bundle_file(path)
    assert report and report.cube_count == 3 and report.role == "node" and report.threshold == 1
    assert report.statement_digest.startswith("sha256:") and report.bundle_bytes == written
    node = _own_node_key(client)
    counted = [s for s in report.signatures if s.counted]
    assert [s.key_id for s in counted] == [node.key_id] and counted[0].principal == "principals/node"

    target = _space(client, [])
    result = client.import_bundle_file(target, path)
    assert (result.created_count, result.skipped_count) == (3, 0) and result.verification.valid
    assert {c.action for c in result.cubes} == {"created"}
    assert sorted(c.text or "" for c in client.list_cubes(target)) == sorted(TEXTS)
    again = client.import_bundle_file(target, path, conflict_policy="new-version")
    assert again.new_version_count == 3 and {c.version for c in client.list_cubes(target)} == {2}


def test_streamed_export_of_named_cubes_imports_from_chunks(client: MemosClient) -> None:
    source = _space(client)
    wanted = next(c for c in client.list_cubes(source) if c.text == TEXTS[1])
    target = _space(client, [])
    result = client.import_bundle(target, client.export_bundle(source, names=[wanted.cube_id]))
    assert result.created_count == 1 and result.cubes[0].provenance_id == wanted.provenance_id
    assert [c.text for c in client.list_cubes(target)] == [TEXTS[1]]


def test_trust_policy_options_decide_validity(client: MemosClient) -> None:
    bundle = b"".join(client.export_bundle(_space(client, TEXTS[:1])))
    assert client.verify_bundle([bundle])
    as_publisher = client.verify_bundle([bundle], role="publisher")
    assert not as_publisher and as_publisher.reason == "BUNDLE_UNTRUSTED_SIGNER"
    assert as_publisher.signatures[0].status == "unknown_key"
    pinned = client.verify_bundle([bundle], required_key_ids=[SigningKey.generate().key_id])
    assert pinned.reason == "BUNDLE_REQUIRED_SIGNER_MISSING"
    with pytest.raises(ValueError, match="unknown role"):
        client.verify_bundle([bundle], role="nobody")


def test_tampered_bundle_is_refused_and_imports_nothing(client: MemosClient) -> None:
    bundle = bytearray(b"".join(client.export_bundle(_space(client))))
    at = bundle.index(b"espresso")
    bundle[at] ^= 0x20
    report = client.verify_bundle([bytes(bundle)])
    assert not report and report.reason == "BUNDLE_DIGEST_MISMATCH"
    target = _space(client, [])
    with pytest.raises(InvalidArgumentError) as caught:
        client.import_bundle(target, [bytes(bundle[i : i + 1000]) for i in range(0, len(bundle), 1000)])
    assert caught.value.reason == "BUNDLE_DIGEST_MISMATCH"
    assert list(client.list_cubes(target)) == []


def test_failed_export_leaves_no_part_file_and_keeps_the_old_one(client: MemosClient, tmp_path: Path) -> None:
    path = tmp_path / "old.bundle"
    path.write_bytes(b"an earlier export")
    with pytest.raises(NotFoundError) as caught:
        client.export_bundle_to_file("no-such-space-" + uuid.uuid4().hex[:8], path)
    assert caught.value.reason == "SPACE_NOT_FOUND"
    assert path.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.bundle"]


def test_signing_key_for_a_principal(client: MemosClient) -> None:
    principal = client.create_principal("signer-" + uuid.uuid4().hex[:8], kind="service")
    key = client.create_signing_key(principal.name)
    assert key.algorithm == "ed25519" and key.key_id == key_id(key.public_key)
    assert key.key_id in client.get_principal(principal.name).key_ids
    held = SigningKey.generate()  # one the principal holds itself
    registered = client.register_public_key(principal.name, held.public_key)
    assert registered.key_id == held.key_id
    assert set(client.get_principal(principal.name).key_ids) == {key.key_id, held.key_id}


def test_trust_root_update_then_pull_from_a_peer(
    server: MemosServer, client: MemosClient, embedder: Embedder, tmp_path: Path
) -> None:
    source = _space(client, TEXTS[:2])
    local = start_server(tmp_path / "local", embedder, allow_plaintext_peers=True)
    try:
        with MemosClient(local.address, token=admin_token(local), timeout=60.0) as here:
            target = _space(here, [])

            def pull() -> int:
                result = here.import_from_peer(target, server.address, admin_token(server), source, peer_plaintext=True)
                return result.created_count

            with pytest.raises(InvalidArgumentError) as caught:
                pull()
            assert caught.value.reason == "BUNDLE_UNTRUSTED_SIGNER"

            current = here.get_trust_root()
            assert current.version == 1 and current.roles["admin"].threshold == 1
            peer_node = _own_node_key(client)
            root = parse_trust_root(parse_envelope(current.signed_envelope).payload)
            keys = {**root.keys, peer_node.key_id: TrustedKey(peer_node.key_id, peer_node.public_key, "peer")}
            node = root.role("node")
            roles = {**root.roles, "node": Role((*node.key_ids, peer_node.key_id), node.threshold)}
            proposed = Envelope(TRUST_ROOT_PAYLOAD_TYPE, TrustRoot(2, root.expires, keys, roles).payload())
            updated = here.update_trust_root(proposed.to_json(), add_node_signature=True)
            assert updated.version == 2 and peer_node.key_id in updated.roles["node"].key_ids
            assert here.get_trust_root().version == 2
            with pytest.raises(InvalidArgumentError) as rollback:
                here.update_trust_root(proposed.to_json(), add_node_signature=True)
            assert rollback.value.reason == "TRUST_ROOT_ROLLBACK"

            assert pull() == 2
            assert sorted(c.text or "" for c in here.list_cubes(target)) == sorted(TEXTS[:2])
    finally:
        local.stop(grace=1)


def test_an_error_reading_the_chunks_surfaces_and_imports_nothing(client: MemosClient) -> None:
    bundle = b"".join(client.export_bundle(_space(client, TEXTS[:2])))

    def broken_source() -> Iterator[bytes]:
        yield bundle[: len(bundle) // 2]
        raise OSError("the disk went away")

    target = _space(client, [])
    with pytest.raises(OSError, match="the disk went away"):
        client.import_bundle(target, broken_source())
    assert list(client.list_cubes(target)) == []
