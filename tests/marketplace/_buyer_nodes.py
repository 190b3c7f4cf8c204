"""Two real servers for the buyer's client and command line: a marketplace M with no witness, and a buyer node B.

M is its own publisher: its owner exports a release of three facts from a space on M (signed by the key M keeps
for the owner) and publishes it there. B follows M's log (``marketplace_follow``, with a token of a principal of
M) and has a principal ``alice``, a principal of M too, who acquires licenses there. Her key on B and whether B
trusts M (its marketplace key and log policy in B's trust root) are left to the test: they are steps of the
buyer's flow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from memos_client import MemosClient, release_info
from memos_test_support import admin_token, start_server

from memos_grpc.embedding.embedder import Embedder
from memos_grpc.server.app import MemosServer

ORIGIN = "buyer.test/log"
FACTS = ("Rain follows a falling barometer", "Fog forms over cold water at dawn", "Hail needs strong updrafts")
#: Import and search freely, recall twice; a day offline at most.
TERMS = json.dumps(
    {
        "license": "CC-BY-4.0",
        "permission": [
            {"action": "import"},
            {"action": "recall", "constraint": [{"leftOperand": "count", "operator": "lteq", "rightOperand": 2}]},
            {"action": "search"},
        ],
        "maxOfflineSeconds": 86400,
    }
)
RELEASE = "listings/weather/releases/1.0.0"


@dataclass
class BuyerNodes:
    tmp: Path
    market: MemosServer
    buyer: MemosServer
    #: Token files: "market-admin", "buyer-admin", "owner" (on M), "alice-market" (on M), "alice" (on B).
    tokens: dict[str, Path]
    #: The release bundle file, as published on M.
    bundle: Path

    def client(self, who: str) -> MemosClient:
        server = self.market if who in ("market-admin", "owner", "alice-market") else self.buyer
        return MemosClient(server.address, token=self.tokens[who].read_text().strip(), timeout=60.0)


def _token_file(path: Path, token: str) -> Path:
    path.write_text(token)
    path.chmod(0o600)
    return path


@contextmanager
def buyer_nodes(tmp: Path, embedder: Embedder) -> Iterator[BuyerNodes]:
    servers: list[MemosServer] = []
    try:
        market = start_server(tmp / "market", embedder, marketplace_enabled=True, marketplace_log_origin=ORIGIN)
        servers.append(market)
        tokens = {"market-admin": _token_file(tmp / "market-admin.token", admin_token(market))}
        with MemosClient(market.address, token=admin_token(market), timeout=60.0) as admin:
            for who, principal in (("owner", "owner"), ("alice-market", "alice"), ("follower", "buyer-node")):
                name = admin.create_principal(principal).name
                tokens[who] = _token_file(tmp / f"{who}.token", admin.create_credential(name).token)
        buyer = start_server(
            tmp / "buyer",
            embedder,
            marketplace_follow=market.address,
            marketplace_follow_token_file=str(tokens["follower"]),
            marketplace_sync_seconds=3600,  # syncs happen when the test asks
            allow_plaintext_peers=True,
        )
        servers.append(buyer)
        tokens["buyer-admin"] = _token_file(tmp / "buyer-admin.token", admin_token(buyer))
        with MemosClient(buyer.address, token=admin_token(buyer), timeout=60.0) as admin:
            alice = admin.create_principal("alice").name
            tokens["alice"] = _token_file(tmp / "alice.token", admin.create_credential(alice).token)
        bundle = tmp / "weather-1.0.0.bundle"
        with MemosClient(market.address, token=tokens["owner"].read_text(), timeout=60.0) as owner:
            owner.create_signing_key("owner")
            space = owner.create_space("wares").name
            for fact in FACTS:
                owner.create_cube(space, fact)
            owner.export_bundle_to_file(space, bundle, release=release_info("weather", "1.0.0", TERMS))
            owner.create_listing("weather", "Weather facts", tags=["weather"])
            owner.publish_release("weather", "1.0.0", bundle, TERMS)
        yield BuyerNodes(tmp, market, buyer, tokens, bundle)
    finally:
        for server in reversed(servers):
            server.stop(grace=1)
