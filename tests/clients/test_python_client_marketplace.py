"""The Python client's marketplace calls against a real marketplace server: listings, releases, licenses, events,
the transparency log and a witness, with results checked the way a buyer checks them (proofs verified here)."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from memos_client import (
    AbortedError,
    InvalidArgumentError,
    MemosClient,
    MemosError,
    NotFoundError,
    PermissionDeniedError,
    release_info,
)
from memos_test_support import start_server

from memos_grpc.embedding.embedder import Embedder
from memos_grpc.marketplace import entries
from memos_grpc.marketplace.grants import verify_grant
from memos_grpc.primitives.keys import SigningKey, TrustedKey
from memos_grpc.server.app import MemosServer
from memos_grpc.transparency import merkle
from memos_grpc.transparency.checkpoint import Checkpoint
from memos_grpc.transparency.note import NoteVerifier, sign_note
from memos_grpc.transparency.policy import parse_policy
from memos_grpc.transparency.proof import verify_proof
from tests.memos_test_support import admin_token

TERMS = json.dumps(
    {
        "license": "CC-BY-4.0",
        "permission": [
            {"action": "import"},
            {"action": "recall", "constraint": [{"leftOperand": "count", "operator": "lteq", "rightOperand": 3}]},
        ],
        "maxOfflineSeconds": 86400,
    }
)
WITNESSED_ORIGIN = "client.test/witnessed"
LOG_KEY = SigningKey.generate()
BUYER_KEY = SigningKey.generate().key_id


@dataclass
class World:
    server: MemosServer
    admin: MemosClient
    owner: MemosClient
    buyer: MemosClient
    stranger: MemosClient
    names: dict[str, str]
    space: str = ""

    def bundle(self, tmp: Path, listing: str, version: str, terms: str = TERMS) -> Path:
        """A release bundle the owner exports from a space of its own, signed by a key the server keeps for it."""
        if not self.space:
            self.owner.create_signing_key(self.names["owner"])
            self.space = self.owner.create_space("wares").name
            self.owner.create_cube(self.space, "Rain follows a falling barometer")
        path = tmp / f"{listing}-{version}.bundle"
        self.owner.export_bundle_to_file(self.space, path, release=release_info(listing, version, terms))
        return path


@pytest.fixture
def world(tmp_path: Path, embedder: Embedder) -> Iterator[World]:
    server = start_server(
        tmp_path / "data",
        embedder,
        marketplace_enabled=True,
        marketplace_log_origin="client.test/log",
        witness_logs=NoteVerifier.for_key(WITNESSED_ORIGIN, LOG_KEY.public_key).vkey(),
        witness_name="w.client.test",
    )
    admin = MemosClient(server.address, token=admin_token(server), timeout=60.0)
    clients, names = {}, {}
    for who in ("owner", "buyer", "stranger"):
        principal = admin.create_principal(f"{who}-{uuid.uuid4().hex[:6]}")
        names[who] = principal.name
        clients[who] = MemosClient(server.address, token=admin.create_credential(principal.name).token, timeout=60.0)
    yield World(server, admin, clients["owner"], clients["buyer"], clients["stranger"], names)
    for client in (admin, *clients.values()):
        client.close()
    server.stop(grace=1)


def test_listings_are_created_got_listed_searched_and_updated(world: World) -> None:
    owner = world.owner
    created = owner.create_listing(
        "weather", "Weather facts", description="rain, wind and barometers", tags=["weather", "facts"]
    )
    assert (created.name, created.owner, created.tags) == (
        "listings/weather",
        world.names["owner"],
        ("weather", "facts"),
    )
    owner.create_listing("recipes", "Recipes", description="soups and stews", tags=["food"])
    assert owner.get_listing("weather") == world.buyer.get_listing("listings/weather") == created
    # Paging is followed: two pages of one, in name order.
    assert [x.name for x in world.buyer.list_listings(page_size=1)] == ["listings/recipes", "listings/weather"]
    assert [x.name for x in owner.list_listings(filter='tags:"food"')] == ["listings/recipes"]
    found = world.buyer.search_listings("wind", mode="lexical", top_k=1)
    assert [hit.listing.name for hit in found] == ["listings/weather"] and found[0].score > 0

    updated = owner.update_listing("weather", etag=created.etag, title="Weather facts, checked")
    assert (updated.title, updated.description) == ("Weather facts, checked", "rain, wind and barometers")
    with pytest.raises(AbortedError) as stale:
        owner.update_listing("weather", etag=created.etag, title="lost update")
    assert stale.value.reason == "ETAG_MISMATCH"
    with pytest.raises(PermissionDeniedError) as foreign:
        world.stranger.update_listing("weather", title="mine now")
    assert foreign.value.reason == "LISTING_OWNER_REQUIRED"
    with pytest.raises(NotFoundError) as missing:
        owner.get_listing("nowhere")
    assert missing.value.reason == "LISTING_NOT_FOUND"
    assert owner.get_listing("weather").title == "Weather facts, checked"


def test_a_release_is_published_from_a_file_listed_downloaded_and_yanked(world: World, tmp_path: Path) -> None:
    owner = world.owner
    owner.create_listing("weather", "Weather facts")
    path = world.bundle(tmp_path, "weather", "1.0.0")
    sizes: list[int] = []
    published = owner.publish_release("weather", "1.0.0", path, TERMS, progress=sizes.append)
    release = published.release
    data = path.read_bytes()
    assert sum(sizes) == len(data)
    assert (release.name, release.listing, release.release_id) == (
        "listings/weather/releases/1.0.0",
        *release.name.split("/releases/"),
    )
    assert (release.state, release.bundle_digest) == ("active", "sha256:" + hashlib.sha256(data).hexdigest())
    assert (release.license, release.terms.json, release.cube_count) == ("CC-BY-4.0", TERMS, 1)
    assert [p.action for p in release.terms.permissions] == ["import", "recall"]
    assert release.terms.permissions[1].constraints[0].count == 3
    assert published.verification.valid and published.tlog_proof.startswith("c2sp.org/tlog-proof@v1\n")
    # The same bytes again, as chunks: the same release, nothing new.
    again = owner.publish_release("weather", "1.0.0", (data[i : i + 1000] for i in range(0, len(data), 1000)), TERMS)
    assert again.release == release
    # Other bytes under a taken id: refused with its reason.
    other = world.bundle(tmp_path, "weather", "1.0.0", terms=TERMS.replace("86400", "3600"))
    with pytest.raises(MemosError) as taken:
        owner.publish_release("weather", "1.0.0", other, TERMS.replace("86400", "3600"))
    assert taken.value.reason == "RELEASE_ALREADY_EXISTS"

    assert [r.name for r in world.buyer.list_releases("weather")] == [release.name]
    assert world.buyer.get_release(release.name) == release
    # The owner downloads without a license, the buyer with one, a stranger not at all.
    out = tmp_path / "down.bundle"
    assert owner.download_release(release.name, out) == release and out.read_bytes() == data
    license = world.buyer.acquire_license(release.name, "principals/buyer", BUYER_KEY)
    sink = io.BytesIO()
    assert world.buyer.download_release(release.name, sink, license=license.name) == release
    assert sink.getvalue() == data
    refused = tmp_path / "refused.bundle"
    with pytest.raises(MemosError) as denied:
        world.stranger.download_release(release.name, refused)
    assert denied.value.reason == "LICENSE_REQUIRED"
    assert not refused.exists() and not Path(str(refused) + ".part").exists()

    yanked = owner.yank_release(release.name, "wrong units")
    assert yanked.yanked and yanked.yank is not None and yanked.yank.reason == "wrong units"
    assert list(world.buyer.list_releases("weather")) == []
    assert [r.name for r in world.buyer.list_releases("weather", show_yanked=True)] == [release.name]
    with pytest.raises(InvalidArgumentError) as bad:
        owner.publish_release("weather", "not-semver", path, TERMS)
    assert bad.value.reason


def test_licenses_verify_the_log_proves_them_and_a_subscriber_sees_every_event(world: World, tmp_path: Path) -> None:
    world.owner.create_listing("weather", "Weather facts", tags=["weather"])
    release = world.owner.publish_release("weather", "1.0.0", world.bundle(tmp_path, "weather", "1.0.0"), TERMS).release
    now = datetime.now(UTC)
    license = world.buyer.acquire_license(release.name, "principals/buyer", BUYER_KEY)
    assert (license.state, license.acquirer, license.release) == ("active", world.names["buyer"], release.name)
    # The grant verifies under the node's marketplace key, the proof under the node's policy.
    node = world.server.vault.marketplace if world.server.vault else None
    assert node is not None
    trusted = {node.marketplace_key.key_id: TrustedKey(node.marketplace_key.key_id, node.marketplace_key.public_key)}
    assert verify_grant(license.grant_envelope, trusted, "principals/buyer", BUYER_KEY, now + timedelta(seconds=5))
    policy = parse_policy(node.policy_text())
    entry = next(e for e in world.buyer.iter_log_entries(page_size=1) if e.index == license.log_index).data
    assert entries.parse(entry).statement == license.grant_digest
    assert verify_proof(entry, license.tlog_proof, node.log_verifier, policy, policy.witnesses, now, 600)

    checkpoint = world.buyer.get_checkpoint()
    assert (checkpoint.origin, checkpoint.size) == ("client.test/log", license.log_index + 1)
    assert Checkpoint.parse(checkpoint.note.split("\n\n")[0] + "\n").root == checkpoint.root_hash
    inclusion = world.buyer.get_inclusion_proof(license.log_index)
    assert inclusion.entry == entry and inclusion.checkpoint == checkpoint
    merkle.verify_inclusion(
        merkle.leaf_hash(entry), inclusion.index, inclusion.tree_size, inclusion.hashes, checkpoint.root_hash
    )
    assert verify_proof(entry, inclusion.tlog_proof, node.log_verifier, policy, policy.witnesses, now, 600)
    first = world.buyer.get_inclusion_proof(0, tree_size=1)
    consistency = world.buyer.get_consistency_proof(1)
    merkle.verify_consistency(
        1, checkpoint.size, merkle.leaf_hash(first.entry), checkpoint.root_hash, consistency.hashes
    )
    assert [e.index for e in world.buyer.iter_log_entries()] == list(range(checkpoint.size))
    with pytest.raises(InvalidArgumentError):
        world.buyer.get_inclusion_proof(checkpoint.size + 5)

    assert [x.name for x in world.owner.list_licenses()] == [license.name]
    assert list(world.stranger.list_licenses()) == []
    with pytest.raises(PermissionDeniedError) as not_owner:
        world.buyer.revoke_license(license.name, "no")
    assert not_owner.value.reason == "LISTING_OWNER_REQUIRED"
    yank = world.owner.yank_release(release.name, "wrong units").yank
    assert yank is not None
    revoked = world.owner.revoke_license(license.name.removeprefix("licenses/"), "refunded")
    assert revoked.revoked and revoked.revocation is not None and revoked.revocation.reason == "refunded"
    assert world.buyer.get_license(license.name) == revoked

    events = world.buyer.subscribe(start_index=0, tags=["weather"])
    seen = [next(events) for _ in range(3)]
    events.close()  # cancels the call
    assert [(e.type, e.log_index) for e in seen] == [
        ("publish", release.log_index),
        ("yank", yank.log_index),
        ("revoke", revoked.revocation.log_index),
    ]
    assert seen[2].license == license.name and seen[2].ref_index == license.log_index
    assert seen[0].release is not None and seen[0].release.yanked  # the release as it is now
    only_revokes = world.buyer.subscribe(start_index=0, types=["revoke"])
    assert next(only_revokes).type == "revoke"
    only_revokes.close()
    with pytest.raises(ValueError, match="unknown event type"):
        next(world.buyer.subscribe(types=["grant"]))


def test_a_witness_cosigns_through_the_client_and_reports_a_conflict(world: World) -> None:
    leaves = [merkle.leaf_hash(f"entry {n}".encode()) for n in range(3)]

    def note(size: int) -> str:
        return sign_note(
            Checkpoint(WITNESSED_ORIGIN, size, merkle.root_from_leaves(leaves[:size]), ()).body(),
            WITNESSED_ORIGIN,
            LOG_KEY,
        )

    # The witness answers without a credential: the log's signature authorizes the call.
    with MemosClient(world.server.address) as anyone:
        cosigned = anyone.add_checkpoint(note(2))
        assert cosigned.size == 2 and cosigned.cosignatures.startswith("\u2014 w.client.test ")
        with pytest.raises(AbortedError) as conflict:
            anyone.add_checkpoint(note(3))  # old_size 0, but the witness holds 2
        assert (conflict.value.reason, conflict.value.metadata["latest_size"]) == ("WITNESS_SIZE_CONFLICT", "2")
        assert conflict.value.code == grpc.StatusCode.ABORTED

        def node(level: int, index: int) -> bytes:
            return merkle.root_from_leaves(leaves[index << level : (index + 1) << level])

        grown = anyone.add_checkpoint(note(3), old_size=2, consistency_proof=merkle.consistency_proof(2, 3, node))
        assert grown.size == 3
