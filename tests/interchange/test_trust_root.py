"""The trust root through a real server: the first root, rotation, rollback, freeze, revocation, persistence, bounds."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from _trust import current_root, propose
from memos_test_support import admin_token, authorized_channel, reason_of, start_server

from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import trust_pb2
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.interchange.dsse import Envelope, parse_envelope, verify_envelope
from memos_grpc.interchange.trust import TRUST_ROOT_PAYLOAD_TYPE, Role, TrustRoot
from memos_grpc.primitives.keys import SigningKey, TrustedKey
from memos_grpc.server.app import MemosServer
from memos_grpc.transparency.cosignature import CosignatureVerifier
from memos_grpc.transparency.note import NoteVerifier


@pytest.fixture
def node(tmp_path: Path, embedder: Embedder) -> Iterator[tuple[MemosServer, GovernanceServiceStub]]:
    server = start_server(tmp_path / "data", embedder)
    channel = authorized_channel(server.address, admin_token(server))
    yield server, GovernanceServiceStub(channel)
    channel.close()
    server.stop(grace=1)


def signed(root: TrustRoot, *keys: SigningKey) -> bytes:
    envelope = Envelope(TRUST_ROOT_PAYLOAD_TYPE, root.payload())
    for key in keys:
        envelope = envelope.signed_by(key)
    return envelope.to_json()


def submit(governance: GovernanceServiceStub, envelope: bytes, node_signs: bool = False) -> trust_pb2.TrustRoot:
    return governance.UpdateTrustRoot(g.UpdateTrustRootRequest(signed_envelope=envelope, add_node_signature=node_signs))


def refused(governance: GovernanceServiceStub, envelope: bytes, node_signs: bool = False) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        submit(governance, envelope, node_signs)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    return reason_of(caught.value)


def test_the_first_root_trusts_the_node_key_and_verifies_offline(
    node: tuple[MemosServer, GovernanceServiceStub],
) -> None:
    server, governance = node
    message = governance.GetTrustRoot(g.GetTrustRootRequest())
    node_key = SigningKey.read(server.settings.key_dir / "node.key")
    assert message.version == 1 and [k.key_id for k in message.keys] == [node_key.key_id]
    assert {(r.role, tuple(r.key_ids), r.threshold) for r in message.roles} >= {
        (trust_pb2.KEY_ROLE_ADMIN, (node_key.key_id,), 1),
        (trust_pb2.KEY_ROLE_NODE, (node_key.key_id,), 1),
    }
    days = (message.expire_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC)).days
    assert 363 <= days <= 365
    envelope = parse_envelope(message.signed_envelope)
    trusted = {node_key.key_id: TrustedKey(node_key.key_id, node_key.public_key)}
    assert verify_envelope(envelope, trusted, 1, datetime.now(UTC))


def test_rotation_needs_old_and_new_admin_keys(node: tuple[MemosServer, GovernanceServiceStub]) -> None:
    _, governance = node
    first = current_root(governance)
    k1, k2, k3 = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    admins = {k.key_id: TrustedKey(k.key_id, k.public_key, f"admin {n}") for n, k in enumerate((k1, k2, k3))}
    roles = dict(first.roles)
    roles["admin"] = Role(tuple(admins), 2)  # 2 of 3 offline admin keys; the node key is no longer admin
    second = TrustRoot(2, first.expires, {**first.keys, **admins}, roles)

    assert refused(governance, signed(second), node_signs=True) == "TRUST_ROOT_THRESHOLD_NOT_MET"  # old only
    assert refused(governance, signed(second, k1, k2)) == "TRUST_ROOT_THRESHOLD_NOT_MET"  # new only
    assert refused(governance, signed(second, k1, k1), node_signs=True) == "TRUST_ROOT_THRESHOLD_NOT_MET"
    assert submit(governance, signed(second, k1, k3), node_signs=True).version == 2

    third = TrustRoot(3, first.expires, second.keys, second.roles)
    assert (
        refused(governance, signed(third), node_signs=True) == "TRUST_ROOT_THRESHOLD_NOT_MET"
    )  # node is not admin now
    assert refused(governance, signed(third, k2)) == "TRUST_ROOT_THRESHOLD_NOT_MET"
    assert submit(governance, signed(third, k2, k3)).version == 3


def test_rollback_and_freeze_are_refused(node: tuple[MemosServer, GovernanceServiceStub]) -> None:
    _, governance = node
    root = current_root(governance)
    second = TrustRoot(2, root.expires, root.keys, root.roles)
    submit(governance, signed(second), node_signs=True)
    assert refused(governance, signed(second), node_signs=True) == "TRUST_ROOT_ROLLBACK"
    assert refused(governance, signed(TrustRoot(1, root.expires, root.keys, root.roles)), True) == "TRUST_ROOT_ROLLBACK"
    stale = TrustRoot(3, datetime.now(UTC) - timedelta(minutes=1), root.keys, root.roles)
    assert refused(governance, signed(stale), node_signs=True) == "TRUST_ROOT_EXPIRED"
    assert refused(governance, b"{not json", node_signs=True) == "TRUST_ROOT_MALFORMED"
    assert governance.GetTrustRoot(g.GetTrustRootRequest()).version == 2


def export_verification(server: MemosServer, governance: GovernanceServiceStub) -> i.BundleVerification:
    channel = authorized_channel(server.address, admin_token(server))
    space = governance.CreateSpace(g.CreateSpaceRequest(space_id=f"s{time.time_ns()}")).name
    stub = InterchangeServiceStub(channel)
    bundle = b"".join(r.chunk for r in stub.ExportBundle(i.ExportBundleRequest(parent=space)))
    report = stub.VerifyBundle(iter([i.VerifyBundleRequest(chunk=bundle)])).verification
    channel.close()
    return report


def test_revocation_takes_a_key_out_from_its_time(node: tuple[MemosServer, GovernanceServiceStub]) -> None:
    server, governance = node
    assert export_verification(server, governance).valid
    root = current_root(governance)
    node_id = root.role("node").key_ids[0]
    old = root.keys[node_id]
    later = datetime.now(UTC) + timedelta(days=1)
    revoked_later = TrustedKey(old.key_id, old.public_key, old.name, revoked_at=later.replace(microsecond=0))
    submit(governance, signed(TrustRoot(2, root.expires, {node_id: revoked_later}, root.roles)), node_signs=True)
    assert export_verification(server, governance).valid  # revoked from tomorrow: still counts today
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    keys = {node_id: TrustedKey(old.key_id, old.public_key, old.name, revoked_at=now)}
    roles = dict(root.roles)
    # The node key stays admin through a second key, so this very root can still be replaced.
    spare = SigningKey.generate()
    keys[spare.key_id] = TrustedKey(spare.key_id, spare.public_key, "spare admin")
    roles["admin"] = Role((spare.key_id,), 1)
    submit(governance, signed(TrustRoot(3, root.expires, keys, roles), spare), node_signs=True)
    report = export_verification(server, governance)
    assert (report.valid, report.reason) == (False, "BUNDLE_SIGNER_REVOKED")
    assert [s.status for s in report.signatures] == [i.SignatureCheck.STATUS_KEY_REVOKED]


def test_an_expired_root_in_force_refuses_bundles_until_renewed(
    node: tuple[MemosServer, GovernanceServiceStub],
) -> None:
    server, governance = node
    root = current_root(governance)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    submit(governance, signed(TrustRoot(2, soon, root.keys, root.roles)), node_signs=True)
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.5)
    with pytest.raises(grpc.RpcError) as caught:
        export_verification(server, governance)
    assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.FAILED_PRECONDITION, "TRUST_ROOT_EXPIRED")
    propose(governance, TrustRoot(3, root.expires, root.keys, root.roles))
    assert export_verification(server, governance).valid


def test_the_root_in_force_survives_a_restart(tmp_path: Path, embedder: Embedder) -> None:
    server = start_server(tmp_path / "data", embedder)
    channel = authorized_channel(server.address, admin_token(server))
    governance = GovernanceServiceStub(channel)
    root = current_root(governance)
    propose(governance, TrustRoot(2, root.expires, root.keys, root.roles))
    channel.close()
    server.stop(grace=1)
    again = start_server(tmp_path / "data", embedder)
    channel = authorized_channel(again.address, admin_token(again))
    try:
        message = GovernanceServiceStub(channel).GetTrustRoot(g.GetTrustRootRequest())
        assert message.version == 2
        assert SigningKey.read(again.settings.key_dir / "node.key").key_id == message.keys[0].key_id
    finally:
        channel.close()
        again.stop(grace=1)


def _changed(root: TrustRoot, change: Callable[[dict[str, Any]], None]) -> bytes:
    """``root``'s next version with ``change`` made to its JSON document, unsigned (the node signs it)."""
    document = json.loads(TrustRoot(root.version + 1, root.expires, root.keys, root.roles).payload())
    change(document)
    return Envelope(TRUST_ROOT_PAYLOAD_TYPE, json.dumps(document).encode()).to_json()


def _node_role(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["roles"]["node"].__setitem__(field, value)


def _first_key_name(value: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: next(iter(document["keys"].values())).__setitem__("name", value)


#: The roots an outside fuzz run got in (or answered INTERNAL for): each is malformed and changes nothing.
OUT_OF_RANGE: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("version 2^80", lambda document: document.__setitem__("version", 2**80)),
    ("version 2^63-1", lambda document: document.__setitem__("version", 2**63 - 1)),
    ("version 2^53", lambda document: document.__setitem__("version", 2**53)),
    ("node threshold 2^31", _node_role("threshold", 2**31)),
    ("node threshold over its keys", _node_role("threshold", 2)),
    ("unknown role", lambda document: document["roles"].__setitem__("auditor", document["roles"]["node"])),
    ("key name with a lone surrogate", _first_key_name("\ud800")),
    ("expires after 9999 in UTC", lambda document: document.__setitem__("expires", "9999-12-31T23:59:59-01:00")),
]


@pytest.mark.parametrize("change", [c[1] for c in OUT_OF_RANGE], ids=[c[0] for c in OUT_OF_RANGE])
def test_a_root_out_of_bounds_is_malformed_and_changes_nothing(
    node: tuple[MemosServer, GovernanceServiceStub], change: Callable[[dict[str, Any]], None]
) -> None:
    server, governance = node
    root = current_root(governance)
    assert refused(governance, _changed(root, change), node_signs=True) == "TRUST_ROOT_MALFORMED"
    assert governance.GetTrustRoot(g.GetTrustRootRequest()).version == 1  # still answers, still version 1
    assert export_verification(server, governance).valid
    assert submit(governance, _changed(root, lambda document: None), node_signs=True).version == 2  # no lockout


def test_a_root_must_be_the_next_version(node: tuple[MemosServer, GovernanceServiceStub]) -> None:
    _, governance = node
    root = current_root(governance)
    skipping = TrustRoot(3, root.expires, root.keys, root.roles)
    assert refused(governance, signed(skipping), node_signs=True) == "TRUST_ROOT_VERSION_SKIPPED"
    assert submit(governance, signed(TrustRoot(2, root.expires, root.keys, root.roles)), node_signs=True).version == 2
    assert submit(governance, signed(skipping), node_signs=True).version == 3


def _log_policy(log_key: SigningKey, origin: str, witness_key: SigningKey) -> str:
    log = NoteVerifier.for_key(origin, log_key.public_key)
    witness = CosignatureVerifier.for_key("witness.example/w1", witness_key.public_key)
    return f"log {log.vkey()}\nwitness w1 {witness.vkey()}\ngroup witnesses 1 w1\nquorum witnesses\n"


def test_a_buyer_root_names_the_marketplace_log_and_its_policy(
    node: tuple[MemosServer, GovernanceServiceStub],
) -> None:
    """The marketplace key in its role and the log's tlog-policy in marketplaceLogs, rotated by root versions."""
    _, governance = node
    first = current_root(governance)
    market, log_key, witness_key = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    keys = {**first.keys, market.key_id: TrustedKey(market.key_id, market.public_key, "market.example")}
    roles = {**first.roles, "marketplace": Role((market.key_id,), 1)}
    policy = _log_policy(log_key, "market.example/log", witness_key)
    shown = submit(governance, signed(TrustRoot(2, first.expires, keys, roles, (policy,))), node_signs=True)
    assert (shown.version, list(shown.log_policies)) == (2, [policy])
    again = governance.GetTrustRoot(g.GetTrustRootRequest())
    assert list(again.log_policies) == [policy]
    stored = current_root(governance)  # from the signed envelope, as a buyer checks it offline
    assert stored.marketplace_logs == (policy,) and stored.keys_for("marketplace").keys() == {market.key_id}
    found = stored.log_policy("market.example/log")
    assert found is not None and found[1].public_key == log_key.public_key
    assert [w.public_key for w in found[0].witnesses.values()] == [witness_key.public_key]

    # A policy that does not parse (no quorum line) is refused whole, and the root in force stays.
    broken = policy.replace("quorum witnesses\n", "")
    assert refused(governance, signed(TrustRoot(3, first.expires, keys, roles, (broken,))), True) == (
        "TRUST_ROOT_MALFORMED"
    )
    unknown = json.loads(TrustRoot(3, first.expires, keys, roles, (policy,)).payload())
    unknown["marketplaceLogs"][0]["url"] = "https://market.example"
    envelope = Envelope(TRUST_ROOT_PAYLOAD_TYPE, json.dumps(unknown).encode()).to_json()
    assert refused(governance, envelope, node_signs=True) == "TRUST_ROOT_MALFORMED"
    unchanged = governance.GetTrustRoot(g.GetTrustRootRequest())
    assert (unchanged.version, list(unchanged.log_policies)) == (2, [policy])

    # Rotation: the next version names the log's new key; the old one is trusted no more.
    new_log_key = SigningKey.generate()
    rotated = _log_policy(new_log_key, "market.example/log", witness_key)
    third = submit(governance, signed(TrustRoot(3, first.expires, keys, roles, (rotated,))), node_signs=True)
    assert list(third.log_policies) == [rotated]
    found = current_root(governance).log_policy("market.example/log")
    assert found is not None and found[1].public_key == new_log_key.public_key
