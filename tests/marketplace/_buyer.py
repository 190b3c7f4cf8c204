"""One node that is its own marketplace and its own buyer: the smallest real setup for the buyer's side.

A marketplace node names its own marketplace key and log policy in its trust root (without witnesses the policy's
quorum is ``none``), so a principal of the same node can acquire a license there and import the release into a
space of its own, and the node can follow its own log (``marketplace_follow`` is its own address, fixed so that a
restart on the same data directory keeps it). ``Shop`` holds the server, the admin, the listing's ``owner`` (who
exports each release from a space of its own, signed by the key the server keeps for it) and the buyer ``alice``
with a key registered to her; ``release(version, terms)`` publishes a release of listing ``weather`` under those
terms, and ``acquire`` and ``import_`` take it to a space of alice's. tests/marketplace/test_buyer.py runs the
same roles on four servers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from memos_test_support import admin_token, authorized_channel, start_server

from memos_grpc._proto.memos.v1 import cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import held_license_service_pb2 as h
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc._proto.memos.v1 import scheduler_service_pb2 as s
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.held_license_service_pb2_grpc import HeldLicenseServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub
from memos_grpc._proto.memos.v1.scheduler_service_pb2_grpc import SchedulerServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.embedding.embedder import Embedder
from memos_grpc.marketplace.terms import Terms
from memos_grpc.node import Node
from memos_grpc.server.app import MemosServer

ORIGIN = "shop.test/log"
LISTING = "listings/weather"
FACTS = ("Rain follows a falling barometer", "Fog forms over cold water at dawn", "Hail needs strong updrafts")


def terms(*permitted: str, count: dict[str, int] | None = None, prohibited: tuple[str, ...] = ()) -> str:
    """Terms JSON permitting ``permitted`` (``count``: a ``count lteq`` limit per action), within an hour online."""
    limits = count or {}
    permission: list[dict[str, Any]] = []
    for action in permitted:
        rule: dict[str, Any] = {"action": action}
        if action in limits:
            rule["constraint"] = [{"leftOperand": "count", "operator": "lteq", "rightOperand": limits[action]}]
        permission.append(rule)
    body: dict[str, Any] = {"license": "CC-BY-4.0", "permission": permission, "maxOfflineSeconds": 3600}
    if prohibited:
        body["prohibition"] = [{"action": action} for action in prohibited]
    return json.dumps(body)


@dataclass
class Shop:
    data_dir: Path
    embedder: Embedder
    address: str
    server: MemosServer
    tokens: dict[str, str]
    names: dict[str, str]
    alice_key: str = ""
    wares: str = ""
    #: Release name to its bundle.
    bundles: dict[str, bytes] = field(default_factory=dict)
    channels: dict[str, grpc.Channel] = field(default_factory=dict)

    # -- channels ------------------------------------------------------------------------------------------

    def channel(self, who: str) -> grpc.Channel:
        if who not in self.channels:
            self.channels[who] = authorized_channel(self.address, self.tokens[who])
        return self.channels[who]

    @property
    def admin(self) -> grpc.Channel:
        return self.channel("admin")

    @property
    def alice(self) -> grpc.Channel:
        return self.channel("alice")

    @property
    def vault(self) -> Node:
        assert self.server.vault is not None
        return self.server.vault

    # -- the marketplace side ------------------------------------------------------------------------------

    def release(self, version: str, terms_json: str, facts: tuple[str, ...] = FACTS, cached: str = "") -> str:
        """A release of ``weather`` under ``terms_json``: ``facts`` exported by the owner, published.

        ``cached``: the release also holds an activation cube (a payload of its own) recording that source text.
        """
        owner = self.channel("owner")
        if not self.wares:
            MarketplaceServiceStub(owner).CreateListing(
                m.CreateListingRequest(listing_id="weather", listing=m.Listing(title="Weather facts"))
            )
            GovernanceServiceStub(owner).CreateSigningKey(g.CreateSigningKeyRequest(parent=self.names["owner"]))
            self.wares = "wares"
        space = (
            GovernanceServiceStub(owner)
            .CreateSpace(g.CreateSpaceRequest(space_id="wares-" + version.replace(".", "-")))
            .name
        )
        VaultServiceStub(owner).BatchCreateCubes(
            v.BatchCreateCubesRequest(
                parent=space,
                requests=[
                    v.CreateCubeRequest(cube=cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text=fact)))
                    for fact in facts
                ],
            )
        )
        if cached:
            VaultServiceStub(owner).CreateCube(v.CreateCubeRequest(parent=space, cube=_cache(owner, space, cached)))
        info = i.ReleaseInfo(
            listing=LISTING,
            release=version,
            license=Terms.parse(terms_json.encode()).license,
            terms_digest="sha256:" + hashlib.sha256(terms_json.encode()).hexdigest(),
        )
        export = InterchangeServiceStub(owner).ExportBundle(i.ExportBundleRequest(parent=space, release=info))
        bundle = b"".join(r.chunk for r in export)
        request = m.PublishReleaseRequest(parent=LISTING, release_id=version, terms_json=terms_json, chunk=bundle)
        name = str(MarketplaceServiceStub(owner).PublishRelease(iter([request])).release.name)
        self.bundles[name] = bundle
        return name

    def acquire(self, release: str, **window: Any) -> m.License:
        """A license of ``release`` for alice's key, acquired by alice (``window``: not_before, not_after)."""
        wanted = m.License(release=release, licensee=self.names["alice"], licensee_key=self.alice_key, **window)
        reply: m.License = MarketplaceServiceStub(self.alice).AcquireLicense(m.AcquireLicenseRequest(license=wanted))
        return reply

    def revoke(self, license_: m.License) -> None:
        MarketplaceServiceStub(self.channel("owner")).RevokeLicense(
            m.RevokeLicenseRequest(name=license_.name, reason="unpaid")
        )

    # -- the buyer side ------------------------------------------------------------------------------------

    def space(self, space_id: str) -> str:
        return str(GovernanceServiceStub(self.alice).CreateSpace(g.CreateSpaceRequest(space_id=space_id)).name)

    def import_(self, space: str, license_: m.License) -> i.ImportBundleResponse:
        first = i.ImportBundleRequest(
            parent=space,
            license=i.ReleaseLicense(grant=license_.grant_envelope, proof=license_.tlog_proof),
            chunk=self.bundles[license_.release],
        )
        reply: i.ImportBundleResponse = InterchangeServiceStub(self.alice).ImportBundle(iter([first]))
        return reply

    def recall(self, space: str, channel: grpc.Channel | None = None) -> list[str]:
        plan = SchedulerServiceStub(channel or self.alice).Recall(
            s.RecallRequest(parent=space, query="what does the weather do", token_budget=1000)
        )
        return sorted(item.cube.plaintext.text for item in plan.items)

    def search(self, space: str) -> list[str]:
        reply = VaultServiceStub(self.alice).SearchCubes(v.SearchCubesRequest(parent=space, text="weather", top_k=10))
        return sorted(r.cube.plaintext.text for r in reply.results)

    def cubes(self, space: str) -> list[cube_pb2.MemCube]:
        return list(VaultServiceStub(self.alice).ListCubes(v.ListCubesRequest(parent=space, page_size=100)).cubes)

    def held(self, license_: m.License) -> h.HeldLicense:
        reply: h.HeldLicense = HeldLicenseServiceStub(self.alice).GetHeldLicense(
            h.GetHeldLicenseRequest(name=held_name(license_))
        )
        return reply

    def uses(self, license_: m.License) -> dict[str, int]:
        return {a.action: a.uses for a in self.held(license_).actions}

    def sync(self) -> h.FollowedLog:
        reply: h.FollowedLog = HeldLicenseServiceStub(self.admin).SyncMarketplaceLog(h.SyncMarketplaceLogRequest())
        return reply

    # -- life ----------------------------------------------------------------------------------------------

    def restart(self) -> None:
        """Stops the server and starts it again on the same data directory and address."""
        self.close_channels()
        self.server.stop(grace=1)
        self.server = _start(self.data_dir, self.embedder, self.address)

    def close_channels(self) -> None:
        for opened in self.channels.values():
            opened.close()
        self.channels.clear()

    def stop(self) -> None:
        self.close_channels()
        self.server.stop(grace=1)


def _cache(owner: grpc.Channel, space: str, source_text: str) -> cube_pb2.MemCube:
    """An activation cube of ``space`` whose payload is uploaded first, recording ``source_text``."""
    data = hashlib.sha256(source_text.encode()).digest() * 3  # 96 bytes: 24 float32 values, shape 1x2x3x4
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    upload = [v.WritePayloadRequest(parent=space, expected_digest=digest), v.WritePayloadRequest(data=data)]
    blob = VaultServiceStub(owner).WritePayload(iter(upload)).blob
    payload = cube_pb2.ActivationPayload(
        blob=blob, model_fingerprint="test-model", dtype="float32", shape=[1, 2, 3, 4], source_text=source_text
    )
    return cube_pb2.MemCube(activation=payload)


def held_name(license_: m.License) -> str:
    return "heldLicenses/" + license_.grant_digest.removeprefix("sha256:")


def _start(data_dir: Path, embedder: Embedder, address: str, **settings: object) -> MemosServer:
    return start_server(
        data_dir,
        embedder,
        listen=address,
        marketplace_enabled=True,
        marketplace_log_origin=ORIGIN,
        marketplace_follow=address,
        marketplace_follow_token_file=str(data_dir.parent / "follow.token"),
        marketplace_sync_seconds=3600,  # syncs happen when a test asks (SyncMarketplaceLog)
        allow_plaintext_peers=True,
        **settings,
    )


def open_shop(data_dir: Path, embedder: Embedder, port: int, **settings: object) -> Shop:
    """A started shop: its principals, alice's key, and the token the node follows its own log with."""
    address = f"127.0.0.1:{port}"
    server = _start(data_dir, embedder, address, **settings)
    shop = Shop(data_dir, embedder, address, server, {"admin": admin_token(server)}, {})
    governance = GovernanceServiceStub(shop.admin)
    for who in ("owner", "alice", "bob", "follower"):
        name = governance.CreatePrincipal(
            g.CreatePrincipalRequest(
                principal_id=who, principal=principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER)
            )
        ).name
        shop.names[who] = name
        shop.tokens[who] = governance.CreateCredential(g.CreateCredentialRequest(parent=name)).token
    token_file = data_dir.parent / "follow.token"
    token_file.write_text(shop.tokens["follower"])
    token_file.chmod(0o600)
    shop.alice_key = governance.CreateSigningKey(g.CreateSigningKeyRequest(parent=shop.names["alice"])).key_id
    return shop
