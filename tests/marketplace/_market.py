"""A marketplace server for the license and Subscribe tests: its principals, and releases to license.

``Market`` holds a real marketplace server, the stubs of its admin and three principals (``owner`` owns the
listings, ``buyer`` acquires, ``stranger`` neither), ``release()``, which creates a listing over gRPC and
publishes a release of it: a bundle the owner exports from a space of its own on the same server (signed by the
key the server keeps for it, registered to it), sent to PublishRelease; and ``yank()``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field

import grpc
from memos_test_support import admin_token, authorized_channel

from memos_grpc._proto.memos.v1 import cube_pb2, principal_pb2
from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import interchange_service_pb2 as i
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc._proto.memos.v1 import vault_service_pb2 as v
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.interchange_service_pb2_grpc import InterchangeServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub
from memos_grpc._proto.memos.v1.vault_service_pb2_grpc import VaultServiceStub
from memos_grpc.marketplace.node import MarketplaceNode
from memos_grpc.marketplace.terms import Terms
from memos_grpc.server.app import MemosServer

#: Terms whose earliest end is 30 days after a grant's start (recall's elapsedTime).
TERMS = json.dumps(
    {
        "license": "CC-BY-4.0",
        "permission": [
            {"action": "import"},
            {
                "action": "recall",
                "constraint": [
                    {"leftOperand": "count", "operator": "lteq", "rightOperand": 3},
                    {"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": "P30D"},
                ],
            },
        ],
        "maxOfflineSeconds": 86400,
    }
)
#: Terms that set no end at all.
OPEN_TERMS = json.dumps({"license": "MIT", "permission": [{"action": "import"}], "maxOfflineSeconds": 3600})


@dataclass
class Market:
    server: MemosServer
    admin: MarketplaceServiceStub
    owner: MarketplaceServiceStub
    buyer: MarketplaceServiceStub
    stranger: MarketplaceServiceStub
    names: dict[str, str]
    owner_channel: grpc.Channel
    channels: list[grpc.Channel] = field(default_factory=list)
    space: str = ""

    @property
    def node(self) -> MarketplaceNode:
        assert self.server.vault is not None and self.server.vault.marketplace is not None
        return self.server.vault.marketplace

    def release(self, listing_id: str, version: str = "1.0.0", terms: str = TERMS, tags: tuple[str, ...] = ()) -> str:
        """A release of a listing of ``owner`` (created when new), exported and published as the owner."""
        listing = f"listings/{listing_id}"
        try:
            self.owner.CreateListing(
                m.CreateListingRequest(
                    listing_id=listing_id, listing=m.Listing(title=f"{listing_id} facts", tags=list(tags))
                )
            )
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        info = i.ReleaseInfo(
            listing=listing,
            release=version,
            license=Terms.parse(terms.encode()).license,
            terms_digest="sha256:" + hashlib.sha256(terms.encode()).hexdigest(),
        )
        export = InterchangeServiceStub(self.owner_channel).ExportBundle(
            i.ExportBundleRequest(parent=self._space(), release=info)
        )
        bundle = b"".join(r.chunk for r in export)
        request = m.PublishReleaseRequest(parent=listing, release_id=version, terms_json=terms, chunk=bundle)
        return str(self.owner.PublishRelease(iter([request])).release.name)

    def yank(self, name: str, reason: str) -> int:
        """Yanks a release as its owner; the yank entry's index."""
        return int(self.owner.YankRelease(m.YankReleaseRequest(name=name, reason=reason)).yank.log_index)

    def _space(self) -> str:
        """The owner's space the releases are exported from, with a cube and a key the server keeps (once)."""
        if not self.space:
            governance = GovernanceServiceStub(self.owner_channel)
            governance.CreateSigningKey(g.CreateSigningKeyRequest(parent=self.names["owner"]))
            self.space = governance.CreateSpace(g.CreateSpaceRequest(space_id="wares")).name
            cube = cube_pb2.MemCube(plaintext=cube_pb2.PlaintextPayload(text="Rain follows a falling barometer"))
            VaultServiceStub(self.owner_channel).CreateCube(v.CreateCubeRequest(parent=self.space, cube=cube))
        return self.space

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


def open_market(server: MemosServer) -> Market:
    admin = authorized_channel(server.address, admin_token(server))
    governance = GovernanceServiceStub(admin)
    channels, stubs, names = [admin], {}, {}
    for who in ("owner", "buyer", "stranger"):
        name = governance.CreatePrincipal(
            g.CreatePrincipalRequest(
                principal_id=f"{who}-{uuid.uuid4().hex[:6]}",
                principal=principal_pb2.Principal(kind=principal_pb2.Principal.KIND_USER),
            )
        ).name
        token = governance.CreateCredential(g.CreateCredentialRequest(parent=name)).token
        channel = authorized_channel(server.address, token)
        channels.append(channel)
        stubs[who], names[who] = MarketplaceServiceStub(channel), name
    return Market(
        server,
        MarketplaceServiceStub(admin),
        stubs["owner"],
        stubs["buyer"],
        stubs["stranger"],
        names,
        channels[1],
        channels,
    )


def license_count(market: Market) -> int:
    assert market.server.vault is not None
    with market.server.vault.context.database.read() as cursor:
        row = cursor.execute("SELECT count(*) FROM market_licenses").fetchone()
    assert row is not None
    return int(row[0])
