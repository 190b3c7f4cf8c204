"""The Python client on a buyer's node, against real servers: a marketplace M (no witness) and a buyer B.

A release acquired on M is imported into B with ``import_release`` (the license as ``acquire_license`` returned
it) and with ``import_bundle_file(..., grant=, proof=)``; the cubes carry their ``CubeLicense``; the held licenses
come back as typed ``HeldLicense``s (state, ``ActionUse`` per action, paging), B follows M's log
(``sync_marketplace_log``, ``list_followed_logs``) and a revocation read there shows in the held license.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from marketplace._buyer_nodes import FACTS, ORIGIN, RELEASE, BuyerNodes, buyer_nodes
from memos_client import (
    ActionUse,
    CubeLicense,
    FailedPreconditionError,
    FollowedLog,
    HeldLicense,
    MemosClient,
    NotFoundError,
    PermissionDeniedError,
)

from memos_grpc.embedding.embedder import Embedder
from memos_grpc.interchange.dsse import Envelope, parse_envelope
from memos_grpc.interchange.trust import TRUST_ROOT_PAYLOAD_TYPE, Role, TrustRoot, parse_trust_root


@pytest.fixture
def nodes(tmp_path: Path, embedder: Embedder) -> Iterator[BuyerNodes]:
    with buyer_nodes(tmp_path, embedder) as built:
        yield built


def _trust_the_marketplace(market: MemosClient, buyer: MemosClient) -> None:
    """B's admin copies M's marketplace key and log policy (``log_policies``) into B's next root."""
    published = market.get_trust_root()
    assert published.log_policies and published.keys_for("marketplace")
    theirs = parse_trust_root(parse_envelope(published.signed_envelope).payload)
    ours = parse_trust_root(parse_envelope(buyer.get_trust_root().signed_envelope).payload)
    ids = theirs.role("marketplace").key_ids
    root = TrustRoot(
        ours.version + 1,
        ours.expires,
        {**ours.keys, **{k: theirs.keys[k] for k in ids}},
        {**ours.roles, "marketplace": Role(ids, 1)},
        published.log_policies,
    )
    updated = buyer.update_trust_root(
        Envelope(TRUST_ROOT_PAYLOAD_TYPE, root.payload()).to_json(), add_node_signature=True
    )
    assert updated.log_policies == published.log_policies


def test_licensed_imports_held_licenses_and_the_followed_log(nodes: BuyerNodes) -> None:
    with (
        nodes.client("market-admin") as market_admin,
        nodes.client("buyer-admin") as admin,
        nodes.client("owner") as owner,
        nodes.client("alice-market") as shopper,
        nodes.client("alice") as alice,
    ):
        _trust_the_marketplace(market_admin, admin)
        key = alice.create_signing_key("alice").key_id
        first = shopper.acquire_license(RELEASE, "principals/alice", key)
        # Another grant of the same release: a narrower window makes another statement (the same one is the same).
        assert first.not_before is not None
        second = shopper.acquire_license(
            RELEASE, "principals/alice", key, not_after=first.not_before + timedelta(days=7)
        )
        assert second.grant_digest != first.grant_digest
        bought, more = alice.create_space("bought").name, alice.create_space("more").name

        # import_release takes the license as acquire_license returned it.
        imported = alice.import_release(bought, nodes.bundle, first)
        assert imported.created_count == len(FACTS)
        cubes = list(alice.list_cubes(bought))
        held_name = "heldLicenses/" + first.grant_digest.removeprefix("sha256:")
        assert {c.license for c in cubes} == {CubeLicense(held_name, RELEASE, "CC-BY-4.0", first.grant_digest)}
        held = alice.get_held_license(first.grant_digest)
        assert isinstance(held, HeldLicense) and held.name == held_name and held.grant_digest == first.grant_digest
        assert (held.state, held.state_reason, held.release, held.license) == ("active", "", RELEASE, "CC-BY-4.0")
        assert (held.licensee, held.licensee_key_id, held.log_origin) == ("principals/alice", key, ORIGIN)
        assert held.grant == first.grant_envelope and held.grant_log_index == first.log_index
        assert held.cube_count == len(FACTS) and not held.release_yanked and held.import_time is not None
        assert json.loads(held.terms)["license"] == "CC-BY-4.0"
        assert held.action("import") == ActionUse("import", 1, 0, True, "")
        assert held.action("recall") == ActionUse("recall", 0, 2, True, "")
        # import_bundle_file with the grant and proof themselves.
        alice.import_bundle_file(more, nodes.bundle, grant=second.grant_envelope, proof=second.tlog_proof)
        second_name = "heldLicenses/" + second.grant_digest.removeprefix("sha256:")
        assert {c.license.held_license for c in alice.list_cubes(more) if c.license} == {second_name}
        assert alice.get_held_license(second_name).cube_count == len(FACTS)
        assert alice.get_held_license(held_name).cube_count == len(FACTS)

        # Recall is counted: twice, then refused with its reason.
        for _ in range(3):
            alice.recall(bought, "what does the weather do", 1000)
        assert alice.get_held_license(held_name).action("recall") == ActionUse(
            "recall", 2, 2, False, "LICENSE_LIMIT_REACHED"
        )

        # Paging: one license per page, both come, in name order.
        listed = [h.name for h in alice.list_held_licenses(page_size=1)]
        assert listed == sorted([held_name, second_name])

        # The owner revokes the first on M; B acts on it once it has followed the log.
        owner.revoke_license(first.name, "unpaid")
        assert alice.get_held_license(held_name).state == "active"
        followed = admin.sync_marketplace_log()
        assert isinstance(followed, FollowedLog)
        assert (followed.origin, followed.tree_size) == (ORIGIN, owner.get_checkpoint().size)
        assert followed.fresh_time is not None and followed.sync_time is not None and followed.last_error_reason == ""
        assert followed.checkpoint.startswith(f"{ORIGIN}\n{followed.tree_size}\n")
        assert admin.list_followed_logs() == [followed]
        revoked = alice.get_held_license(held_name)
        assert (revoked.state, revoked.state_reason) == ("revoked", "LICENSE_REVOKED")
        assert alice.get_held_license(second.grant_digest).state == "active"


def test_the_client_refuses_half_a_license_and_the_server_what_it_cannot_verify(nodes: BuyerNodes) -> None:
    with (
        nodes.client("market-admin") as market_admin,
        nodes.client("buyer-admin") as admin,
        nodes.client("alice-market") as shopper,
        nodes.client("alice") as alice,
    ):
        key = alice.create_signing_key("alice").key_id
        license = shopper.acquire_license(RELEASE, "principals/alice", key)
        space = alice.create_space("bought").name
        # A grant without its proof (or the reverse) is the caller's mistake: nothing is sent.
        with pytest.raises(ValueError, match="both the grant and its proof"):
            alice.import_bundle_file(space, nodes.bundle, grant=license.grant_envelope)
        with pytest.raises(ValueError, match="both the grant and its proof"):
            alice.import_bundle(space, [nodes.bundle.read_bytes()], proof=license.tlog_proof)
        # B does not trust M yet: the grant's signer is unknown.
        with pytest.raises(FailedPreconditionError) as refused:
            alice.import_release(space, nodes.bundle, license)
        assert refused.value.reason == "GRANT_UNTRUSTED_SIGNER"
        _trust_the_marketplace(market_admin, admin)
        # Another principal of B is not the licensee.
        bob = admin.create_principal("bob").name
        admin.create_signing_key(bob)
        with MemosClient(nodes.buyer.address, token=admin.create_credential(bob).token) as bob_client:
            other = bob_client.create_space("other").name
            with pytest.raises(FailedPreconditionError) as refused:
                bob_client.import_release(other, nodes.bundle, license)
            assert refused.value.reason.startswith("GRANT_")
            assert list(bob_client.list_cubes(other)) == []
        assert list(alice.list_cubes(space)) == [] and list(alice.list_held_licenses()) == []
        # A held license nobody holds, and following the log, are refused with their reasons.
        with pytest.raises(NotFoundError) as missing:
            alice.get_held_license("0" * 64)
        assert missing.value.reason == "HELD_LICENSE_NOT_FOUND"
        with pytest.raises(PermissionDeniedError) as denied:
            alice.sync_marketplace_log()
        assert denied.value.reason == "ADMIN_REQUIRED"
