"""A marketplace server for the license and Subscribe tests: its principals, and releases to license.

``Market`` holds a real marketplace server, the stubs of its admin and three principals (``owner`` owns the
listings, ``buyer`` acquires, ``stranger`` neither), and ``release()``, which creates a listing over gRPC and
records a release of it the way a publish does: the publish entry appended to the log, then (while it is in flight)
the release row with the index the append returned.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
from memos_test_support import admin_token, authorized_channel

from memos_grpc._proto.memos.v1 import governance_service_pb2 as g
from memos_grpc._proto.memos.v1 import marketplace_service_pb2 as m
from memos_grpc._proto.memos.v1 import principal_pb2
from memos_grpc._proto.memos.v1.governance_service_pb2_grpc import GovernanceServiceStub
from memos_grpc._proto.memos.v1.marketplace_service_pb2_grpc import MarketplaceServiceStub
from memos_grpc.interchange.keys import SigningKey
from memos_grpc.marketplace.entries import Entry
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
    channels: list[grpc.Channel] = field(default_factory=list)
    publisher_key: SigningKey = field(default_factory=SigningKey.generate)

    @property
    def node(self) -> MarketplaceNode:
        assert self.server.vault is not None and self.server.vault.marketplace is not None
        return self.server.vault.marketplace

    def release(self, listing_id: str, version: str = "1.0.0", terms: str = TERMS, tags: tuple[str, ...] = ()) -> str:
        """A release of a listing of ``owner`` (created when new), recorded as a publish records it."""
        try:
            self.owner.CreateListing(
                m.CreateListingRequest(
                    listing_id=listing_id, listing=m.Listing(title=f"{listing_id} facts", tags=list(tags))
                )
            )
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        name = f"listings/{listing_id}/releases/{version}"
        statement_digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
        signed = "sha256:" + hashlib.sha256(b"signed " + name.encode()).hexdigest()
        entry = Entry("publish", statement_digest, signed, self.publisher_key.key_id).encode()
        parsed = Terms.parse(terms.encode())
        release = m.Release(
            name=name,
            state=m.Release.STATE_ACTIVE,
            statement_digest=statement_digest,
            bundle_digest="sha256:" + "0" * 64,
            license=parsed.license,
            terms=m.Terms(json=terms, digest=parsed.digest(), license=parsed.license),
            publisher=self.names["owner"],
        )
        now = datetime.now(UTC)
        release.create_time.FromDatetime(now)
        assert self.server.vault is not None

        def apply(cursor: object) -> None:
            cursor.execute(  # type: ignore[attr-defined]
                "INSERT INTO market_releases (listing_id, release_id, release_pb, bundle_digest, statement_digest, "
                "yanked, log_index, create_time, license, license_ids, memory_types) "
                "VALUES (?, ?, ?, ?, ?, FALSE, ?, ?, ?, ?, ?)",
                [
                    listing_id,
                    version,
                    release.SerializeToString(),
                    release.bundle_digest,
                    statement_digest,
                    index,
                    now,
                    parsed.license,
                    [parsed.license],
                    [],
                ],
            )

        with self.node.recording([entry]) as (index,):
            release.log_index = index
            self.server.vault.context.database.write(apply)
        self.node.wait_published(index + 1)
        return name

    def yank(self, name: str, reason: str) -> int:
        """Yanks a release as a yank does: the yank entry (ref: the publish entry), then the row; its index."""
        assert self.server.vault is not None
        _, listing_id, _, version = name.split("/")
        with self.server.vault.context.database.read() as cursor:
            row = cursor.execute(
                "SELECT release_pb FROM market_releases WHERE listing_id = ? AND release_id = ?", [listing_id, version]
            ).fetchone()
        assert row is not None
        release = m.Release.FromString(bytes(row[0]))
        statement = "sha256:" + hashlib.sha256(reason.encode()).hexdigest()
        entry = Entry("yank", release.statement_digest, statement, self.publisher_key.key_id, release.log_index)
        release.state = m.Release.STATE_YANKED
        release.yank.reason = reason

        def apply(cursor: object) -> None:
            cursor.execute(  # type: ignore[attr-defined]
                "UPDATE market_releases SET release_pb = ?, yanked = TRUE WHERE listing_id = ? AND release_id = ?",
                [release.SerializeToString(), listing_id, version],
            )

        with self.node.recording([entry.encode()]) as (index,):
            release.yank.log_index = index
            self.server.vault.context.database.write(apply)
        self.node.wait_published(index + 1)
        return index

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
        channels,
    )


def license_count(market: Market) -> int:
    assert market.server.vault is not None
    with market.server.vault.context.database.read() as cursor:
        row = cursor.execute("SELECT count(*) FROM market_licenses").fetchone()
    assert row is not None
    return int(row[0])
